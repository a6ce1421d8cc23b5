import { describe, expect, it } from 'vitest';
import type { BlockOperation, PeerMessage } from '../../machines/node/messages.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeEffect } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, nodeStep } from '../../machines/node/node.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';

/**
 * A write whose forward timed out is failed only once its target has
 * cancelled that try (request-routing.machine.ts, `cancelling`): told EIO, a
 * client writes the block again, and a forward still waiting in a paused
 * owner's socket must not land over that. Here, both ends in the node: the
 * forwarding server asks and waits, and the owner answers what it knows and
 * refuses a cancelled try that arrives afterwards. The explorer's
 * `fail-write-while-forward-may-run` variant is the trace without it.
 */
const alpha: VolumeDefinition = { name: 'alpha', pageCount: 1, pageSizeBlocks: 4, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1'] };
const write: BlockOperation = { kind: 'write', pageKey: { volume: 'alpha', page: 0 }, offsetBlocks: 0, lengthBlocks: 1, fua: false };

function started(self: string, members = ['s1', 's2']): NodeState {
  const [state] = nodeStep(emptyNodeState(defaultNodeConfig(self, members), 1), { type: 'node.start', durable: initialDurableRecords([alpha], self) });
  return state;
}

function fromS2(state: NodeState, message: PeerMessage): [NodeState, NodeEffect[]] {
  const [next, effects] = nodeStep(state, { type: 'peer.message', from: 's2', message });
  return [next, effects as NodeEffect[]];
}

const sentTo = (effects: readonly NodeEffect[], type: PeerMessage['type']) => effects.flatMap((effect) => (effect.type === 'peer.send' && effect.message.type === type ? [effect.message] : []));
const forward: PeerMessage = { type: 'request.forward', requestId: 'c:w1', hopCount: 1, retry: 0, operation: write, dataToken: 'write-data', senderIncarnation: 0 };
const cancel: PeerMessage = { type: 'request.cancel', requestId: 'c:w1', retry: 0, hopCount: 1 };

describe('cancelling a forwarded write that timed out', () => {
  it('the forwarding server asks its target to cancel, again at each time-out, and answers its client only with the answer', () => {
    let state = started('s2');
    let effects: NodeEffect[];
    [state, effects] = nodeStep(state, { type: 'client.request', requestId: 'w1', connectionId: 'test', operation: write }) as [NodeState, NodeEffect[]];
    expect(sentTo(effects, 'request.forward')).toHaveLength(1);
    const timerOf = (prefix: string) => effects.flatMap((effect) => (effect.type === 'timer.set' && effect.timerId.startsWith(prefix) ? [effect.timerId] : []))[0];
    const forwardTimer = timerOf('request|');
    expect(forwardTimer).toBeDefined();
    [state, effects] = nodeStep(state, { type: 'timer.fired', timerId: forwardTimer! }) as [NodeState, NodeEffect[]];
    expect(sentTo(effects, 'request.cancel')).toEqual([{ type: 'request.cancel', requestId: 'c:w1', retry: 0, hopCount: 1 }]);
    expect(effects.some((effect) => effect.type === 'client.reply')).toBe(false);
    const cancelTimer = timerOf('request|');
    [state, effects] = nodeStep(state, { type: 'timer.fired', timerId: cancelTimer! }) as [NodeState, NodeEffect[]];
    expect(sentTo(effects, 'request.cancel')).toHaveLength(1);
    expect(effects.some((effect) => effect.type === 'client.reply')).toBe(false);
    [, effects] = nodeStep(state, { type: 'peer.message', from: 's1', message: { type: 'request.answer', requestId: 'c:w1', retry: 0, outcome: { status: 'error', errno: 110, reason: 'forward timed out' }, dataToken: null, holders: [] } }) as [NodeState, NodeEffect[]];
    expect(effects).toContainEqual({ type: 'client.reply', requestId: 'w1', outcome: { status: 'error', errno: 110, reason: 'forward timed out' }, dataToken: null });
  });

  it('the owner remembers a try cancelled before it arrived, answers it cancelled, and never runs it', () => {
    let state = started('s1');
    let effects: NodeEffect[];
    // A try unknown here: an earlier incarnation may have passed it on, so the answer waits for s2 to confirm this
    // incarnation's fence (incarnation-fence.ts), and s2 asks again at its next time-out.
    [state, effects] = fromS2(state, cancel);
    expect(sentTo(effects, 'request.answer')).toEqual([]);
    expect(sentTo(effects, 'fence.raise')).toEqual([{ type: 'fence.raise', incarnation: 1, hopCountMin: 2 }]);
    [state] = fromS2(state, { type: 'fence.confirmed', incarnation: 1, hopCountMin: 2 });
    [state, effects] = fromS2(state, cancel);
    expect(sentTo(effects, 'fence.raise')).toEqual([]);
    expect(sentTo(effects, 'request.answer')).toEqual([expect.objectContaining({ requestId: 'c:w1', retry: 0, outcome: { status: 'error', errno: 110, reason: 'forward timed out' } })]);
    [state, effects] = fromS2(state, forward);
    expect(effects.some((effect) => effect.type === 'data.write')).toBe(false);
    expect(sentTo(effects, 'request.answer')).toEqual([expect.objectContaining({ outcome: expect.objectContaining({ status: 'error' }) })]);
    expect(state.requests.size).toBe(0);
    // Another try of the same request (after a stale answer elsewhere) is not the one cancelled: it runs.
    [, effects] = fromS2(state, { ...forward, retry: 1 });
    expect(effects.some((effect) => effect.type === 'data.write')).toBe(true);
  });

  it('the owner answers the cancel of a write it ran with that write\'s outcome, and one in hand when it is done', () => {
    let state = started('s1');
    let effects: NodeEffect[];
    [state, effects] = fromS2(state, forward);
    const written = effects.find((effect) => effect.type === 'data.write');
    expect(written).toBeDefined();
    // In hand (its write not done): the answer comes when it is.
    [state, effects] = fromS2(state, cancel);
    expect(effects.filter((effect) => effect.type === 'peer.send')).toEqual([]);
    [state, effects] = nodeStep(state, { type: 'io.done', completionId: (written as { completionId: string }).completionId, ok: true }) as [NodeState, NodeEffect[]];
    expect(sentTo(effects, 'request.answer')).toEqual([expect.objectContaining({ requestId: 'c:w1', outcome: { status: 'ok' } })]);
    // Ran: a cancel asked again (the answer was lost) is answered ok again, and nothing is remembered as cancelled.
    [, effects] = fromS2(state, cancel);
    expect(sentTo(effects, 'request.answer')).toEqual([expect.objectContaining({ requestId: 'c:w1', retry: 0, outcome: { status: 'ok' } })]);
  });

  it('a write forwarded to a server that has since left the group fails at its time-out without asking: the try cannot run there', () => {
    let state = started('s2', ['s2', 's3']);
    let effects: NodeEffect[];
    [state, effects] = nodeStep(state, { type: 'client.request', requestId: 'w1', connectionId: 'test', operation: write }) as [NodeState, NodeEffect[]];
    expect(sentTo(effects, 'request.forward')).toEqual([expect.objectContaining({ requestId: 'c:w1' })]);
    const forwardTimer = effects.flatMap((effect) => (effect.type === 'timer.set' && effect.timerId.startsWith('request|') ? [effect.timerId] : []))[0];
    [, effects] = nodeStep(state, { type: 'timer.fired', timerId: forwardTimer! }) as [NodeState, NodeEffect[]];
    expect(sentTo(effects, 'request.cancel')).toEqual([]);
    expect(effects).toContainEqual({ type: 'client.reply', requestId: 'w1', outcome: { status: 'error', errno: 110, reason: 'forward timed out' }, dataToken: null });
  });

  it('the owner remembers a try it refused, so a copy the network delivers again later does not run (a review\'s duplicated forward)', () => {
    // One request in flight at most: the forward is refused (EAGAIN), its sender fails the write, and a later copy of
    // the same try, once the owner has room, used to run over whatever the client wrote since.
    let state = started('s1');
    state = { ...state, config: { ...state.config, requestsInFlightMax: 1 } };
    let effects: NodeEffect[];
    [state] = nodeStep(state, { type: 'client.request', requestId: 'busy', connectionId: 'test', operation: { ...write, offsetBlocks: 1 } }) as [NodeState, NodeEffect[]];
    expect(state.requests.size).toBe(1);
    [state, effects] = fromS2(state, forward);
    expect(sentTo(effects, 'request.answer')).toEqual([expect.objectContaining({ outcome: expect.objectContaining({ status: 'error', errno: 11 }) })]);
    state = { ...state, config: { ...state.config, requestsInFlightMax: 8 } };
    [, effects] = fromS2(state, forward);
    expect(effects.some((effect) => effect.type === 'data.write')).toBe(false);
    expect(sentTo(effects, 'request.answer')).toEqual([expect.objectContaining({ outcome: expect.objectContaining({ status: 'error' }) })]);
  });

  it('the owner still refuses a cancelled try that comes late after more forwarded writes ran than it remembers', () => {
    // The writes done and the tries ended were one memory of 4,096: at some thousands of forwarded writes a second, a
    // cancelled try was pushed out within a fraction of a second, and a late copy of it would then have run.
    let state = started('s1');
    state = { ...state, config: { ...state.config, forwardedWritesRememberedMax: 4, forwardedTriesEndedRememberedMax: 4 } };
    let effects: NodeEffect[];
    [state] = fromS2(state, { type: 'fence.confirmed', incarnation: 1, hopCountMin: 2 });
    [state, effects] = fromS2(state, cancel);
    expect(sentTo(effects, 'request.answer')).toEqual([expect.objectContaining({ requestId: 'c:w1', outcome: expect.objectContaining({ status: 'error' }) })]);
    for (let index = 0; index < 10; index += 1) {
      const other: PeerMessage = { ...forward, requestId: `c:other${index}`, dataToken: `other-data${index}` } as PeerMessage;
      [state, effects] = fromS2(state, other);
      const written = effects.find((effect) => effect.type === 'data.write') as { completionId: string } | undefined;
      expect(written, `forwarded write ${index} runs`).toBeDefined();
      [state] = nodeStep(state, { type: 'io.done', completionId: written!.completionId, ok: true }) as [NodeState, NodeEffect[]];
    }
    [, effects] = fromS2(state, forward);
    expect(effects.some((effect) => effect.type === 'data.write')).toBe(false);
    expect(sentTo(effects, 'request.answer')).toEqual([expect.objectContaining({ outcome: expect.objectContaining({ status: 'error', errno: 110 }) })]);
  });
});
