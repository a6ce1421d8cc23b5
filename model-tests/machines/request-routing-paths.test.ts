import { createTestModel } from 'xstate/graph';
import { describe, expect, it } from 'vitest';
import type { Effect } from '../../machines/effects.js';
import type { RequestRoutingContext, RequestRoutingEvent, RequestRoutingInput } from '../../machines/routing/request-routing.machine.js';
import { cancelTimerId, forwardTimedOut } from '../../machines/routing/request-routing.machine.js';
import { forwardTimerId, requestRoutingMachine } from '../../machines/routing/request-routing.machine.js';
import { start, step } from '../../machines/step.js';
import { CoverageRecorder } from './coverage.js';
import { routingEvents as possibleEvents } from './event-alphabets.js';

type RoutingSnapshot = { value: unknown; status: string; context: RequestRoutingContext };

const base: RequestRoutingInput = {
  requestId: 'r1', pageKey: { volume: 'v', page: 0 }, self: 'C', hopCount: 0, route: { owner: 'A', epoch: 1 },
  localCopy: 'absent', forwardTo: null, idempotent: true, retriesMax: 2, hopCountMax: 3, forwardTimeoutMs: 50,
};

/** Lookups FIG. 7 can start from: own copy, forward to owner, pointer, forwarded miss, hop limit, inconsistent table. */
const inputs: RequestRoutingInput[] = [
  { ...base, route: { owner: 'C', epoch: 1 }, localCopy: 'valid' },
  base,
  { ...base, hopCount: 1, localCopy: 'invalid', forwardTo: 'B', route: { owner: 'B', epoch: 2 } },
  { ...base, hopCount: 1, localCopy: 'invalid', route: { owner: 'B', epoch: 2 } },
  { ...base, hopCount: 3 },
  { ...base, route: { owner: 'C', epoch: 1 }, localCopy: 'absent' },
  { ...base, idempotent: false },
];


describe('request routing machine (FIG. 7)', () => {
  it('covers every state and transition; every request ends with exactly one reply', () => {
    const recorder = new CoverageRecorder(requestRoutingMachine);
    let pathCount = 0;
    for (const input of inputs) {
      // A request served at once finishes in its first step: its only path is the empty one (xstate/graph would
      // send its init event to the finished actor and warn).
      const [initial] = start(requestRoutingMachine, input) as [RoutingSnapshot, Effect[]];
      const paths = initial.status === 'done' ? [{ steps: [], state: initial }] : createTestModel(requestRoutingMachine).getShortestPaths({ allowDuplicatePaths: true,
        input, events: (snapshot) => possibleEvents(snapshot as never), limit: 1000,
        // Retries that learnt a newer route are free, so epochs and tries grow without bound here (in a group, only as
        // far as the moves made meanwhile): the charged retries and the owner are what the paths must tell apart.
        serializeState: (snapshot) => JSON.stringify([(snapshot as RoutingSnapshot).value, (snapshot as RoutingSnapshot).context.retriesCharged, (snapshot as RoutingSnapshot).context.route.owner, (snapshot as RoutingSnapshot).context.forwardTo]),
      });
      pathCount += paths.length;
      // Each shortest path, extended by every event possible at its end, reaches every transition.
      // A path ending in a final state (no event possible there) is kept as it is.
      const extended = paths.flatMap((path) => {
        const prefix = path.steps.map((pathStep) => pathStep.event);
        // The events possible where the path's own steps lead (a path's `state` is one snapshot of its serialized
        // class, whose try may be another's: an answer naming another try is ignored).
        let [reached] = start(requestRoutingMachine, input) as [RoutingSnapshot, Effect[]];
        for (const event of prefix) if ((event.type as string) !== 'xstate.init' && reached.status === 'active') [reached] = step(requestRoutingMachine, reached as never, event as RequestRoutingEvent) as [RoutingSnapshot, Effect[]];
        const ends = possibleEvents(reached as never);
        return ends.length === 0 ? [prefix] : ends.map((event) => [...prefix, event]);
      });
      for (const pathEvents of extended) {
        const events = pathEvents.map((event) => event as RequestRoutingEvent);
        recorder.replay(input, events);
        let [snapshot, effects] = start(requestRoutingMachine, input) as [RoutingSnapshot, Effect[]];
        const replies = effects.filter((effect) => effect.type === 'request.reply');
        for (const event of events) {
          [snapshot, effects] = step(requestRoutingMachine, snapshot as never, event) as [RoutingSnapshot, Effect[]];
          replies.push(...effects.filter((effect) => effect.type === 'request.reply'));
          for (const effect of effects) {
            if (effect.type === 'request.forward') {
              expect(effect.to).not.toBe(input.self);
              expect(effect.hopCount).toBe(input.hopCount + 1);
            }
          }
          expect(snapshot.context.retriesCharged).toBeLessThanOrEqual(input.retriesMax);
        }
        expect(replies.length).toBe(snapshot.status === 'done' ? 1 : 0);
        // Only the server the client talks to retries: a forwarded request that misses answers stale.
        if (input.hopCount > 0 && input.forwardTo === null && input.localCopy !== 'valid' && input.hopCount < input.hopCountMax) {
          expect(replies[0]).toMatchObject({ outcome: { status: 'stale', owner: 'B', epoch: 2 } });
        }
      }
    }
    console.log(`${recorder.report()} by ${pathCount} shortest paths`);
    expect(recorder.missingStates()).toEqual([]);
    expect(recorder.missingTransitions()).toEqual([]);
  });

  it('a stale answer teaches the newer owner and the retry goes there', () => {
    let [snapshot, effects] = start(requestRoutingMachine, base) as [RoutingSnapshot, Effect[]];
    expect(effects[0]).toMatchObject({ type: 'request.forward', to: 'A', hopCount: 1 });
    [snapshot, effects] = step(requestRoutingMachine, snapshot as never, { type: 'forward.stale', retry: 0, owner: 'B', epoch: 2, localCopy: 'absent' }) as [RoutingSnapshot, Effect[]];
    expect(effects).toContainEqual({ type: 'routing.learn', pageKey: base.pageKey, owner: 'B', epoch: 2 });
    expect(effects).toContainEqual({ type: 'request.forward', requestId: 'r1', pageKey: base.pageKey, to: 'B', hopCount: 1 });
    [snapshot, effects] = step(requestRoutingMachine, snapshot as never, { type: 'forward.replied', retry: 1 }) as [RoutingSnapshot, Effect[]];
    expect(effects).toEqual([{ type: 'request.reply', requestId: 'r1', outcome: { status: 'ok' } }]);
    expect(snapshot.status).toBe('done');
  });

  it('a write whose forward times out is never sent again (it may have run at the owner), nor failed until the owner has cancelled it', () => {
    const write = { ...base, idempotent: false };
    let [snapshot, effects] = start(requestRoutingMachine, write) as [RoutingSnapshot, Effect[]];
    expect(effects.filter((effect) => effect.type === 'request.forward')).toHaveLength(1);
    [snapshot, effects] = step(requestRoutingMachine, snapshot as never, { type: 'timer.fired', timerId: forwardTimerId(snapshot.context) }) as [RoutingSnapshot, Effect[]];
    expect(effects.some((effect) => effect.type === 'request.forward' || effect.type === 'request.reply')).toBe(false);
    expect(effects).toContainEqual({ type: 'request.cancel', requestId: 'r1', pageKey: base.pageKey, to: 'A', hopCount: 1 });
    // Unanswered, the cancel is asked again at each time-out, and the client still waits.
    [snapshot, effects] = step(requestRoutingMachine, snapshot as never, { type: 'timer.fired', timerId: cancelTimerId(snapshot.context) }) as [RoutingSnapshot, Effect[]];
    expect(effects).toContainEqual({ type: 'request.cancel', requestId: 'r1', pageKey: base.pageKey, to: 'A', hopCount: 1 });
    expect(effects.some((effect) => effect.type === 'request.reply')).toBe(false);
    // The owner's answer to the cancel settles it: ok if the write ran after all, ETIMEDOUT if it never will.
    const [ranSnapshot, ranEffects] = step(requestRoutingMachine, snapshot as never, { type: 'forward.replied', retry: 0 }) as [RoutingSnapshot, Effect[]];
    expect(ranEffects).toEqual([{ type: 'request.reply', requestId: 'r1', outcome: { status: 'ok' } }]);
    expect(ranSnapshot.status).toBe('done');
    [snapshot, effects] = step(requestRoutingMachine, snapshot as never, { type: 'forward.failed', retry: 0, errno: 110, reason: forwardTimedOut }) as [RoutingSnapshot, Effect[]];
    expect(effects).toContainEqual({ type: 'request.reply', requestId: 'r1', outcome: { status: 'error', errno: 110, reason: 'forward timed out' } });
    expect(snapshot.status).toBe('done');
    // A read is sent again.
    let [readSnapshot] = start(requestRoutingMachine, base) as [RoutingSnapshot, Effect[]];
    let readEffects: Effect[];
    [readSnapshot, readEffects] = step(requestRoutingMachine, readSnapshot as never, { type: 'timer.fired', timerId: forwardTimerId(readSnapshot.context) }) as [RoutingSnapshot, Effect[]];
    expect(readEffects.some((effect) => effect.type === 'request.forward')).toBe(true);
  });

  it('a stale answer naming this server (a destination that missed the push) is served locally, not failed', () => {
    let [snapshot] = start(requestRoutingMachine, base) as [RoutingSnapshot, Effect[]];
    let effects: Effect[];
    [snapshot, effects] = step(requestRoutingMachine, snapshot as never, { type: 'forward.stale', retry: 0, owner: 'C', epoch: 2, localCopy: 'valid' }) as [RoutingSnapshot, Effect[]];
    expect(effects).toContainEqual({ type: 'request.serveLocal', requestId: 'r1', pageKey: base.pageKey });
    expect(effects.some((effect) => effect.type === 'request.forward')).toBe(false);
    [snapshot, effects] = step(requestRoutingMachine, snapshot as never, { type: 'request.served' }) as [RoutingSnapshot, Effect[]];
    expect(effects).toEqual([{ type: 'request.reply', requestId: 'r1', outcome: { status: 'ok' } }]);
  });
});
