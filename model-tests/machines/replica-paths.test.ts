import { createTestModel } from 'xstate/graph';
import { describe, expect, it } from 'vitest';
import type { Effect } from '../../machines/effects.js';
import type { ReplicaRecord } from '../../machines/replica/replica-record.js';
import type { ReplicaContext, ReplicaEvent, ReplicaInput } from '../../machines/replica/replica.machine.js';
import { replicaMachine } from '../../machines/replica/replica.machine.js';
import { start, step } from '../../machines/step.js';
import { CoverageRecorder } from './coverage.js';
import { replicaEvents as possibleEvents } from './event-alphabets.js';

type ReplicaSnapshot = { value: unknown; context: ReplicaContext };


const startingRecords: (ReplicaRecord | null)[] = [
  null,
  { status: 'valid', epoch: 1 },
  { status: 'receiving', source: 'A', attempt: 1, epoch: 2 },
  { status: 'invalid', epoch: 2, owner: 'B', forwardTo: 'B' },
];

describe('replica machine', () => {
  it('covers every state and transition; every change is persisted before it counts; epochs never shrink', () => {
    const recorder = new CoverageRecorder(replicaMachine);
    let pathCount = 0;
    for (const record of startingRecords) {
      const input: ReplicaInput = { pageKey: { volume: 'v', page: 0 }, record };
      const paths = createTestModel(replicaMachine).getShortestPaths({ allowDuplicatePaths: true,
        input,
        events: (snapshot) => possibleEvents(snapshot as never),
        serializeState: (snapshot) => JSON.stringify([(snapshot as ReplicaSnapshot).value, (snapshot as ReplicaSnapshot).context.record]),
        limit: 1000,
        stopWhen: (snapshot) => {
          const current = (snapshot as ReplicaSnapshot).context.record;
          return (current?.epoch ?? 0) > 3 || (current?.status === 'receiving' && current.attempt > 2);
        },
      });
      pathCount += paths.length;
      // Each shortest path, extended by every event possible at its end, reaches every transition.
      // A path ending in a final state (no event possible there) is kept as it is.
      const extended = paths.flatMap((path) => {
        const prefix = path.steps.map((pathStep) => pathStep.event);
        const ends = possibleEvents(path.state as never);
        return ends.length === 0 ? [prefix] : ends.map((event) => [...prefix, event]);
      });
      for (const pathEvents of extended) {
        const events = pathEvents.map((event) => event as ReplicaEvent);
        recorder.replay(input, events);
        let [snapshot] = start(replicaMachine, input) as [ReplicaSnapshot, Effect[]];
        for (const event of events) {
          const before = snapshot.context.record;
          let effects: Effect[];
          [snapshot, effects] = step(replicaMachine, snapshot as never, event) as [ReplicaSnapshot, Effect[]];
          const after = snapshot.context.record;
          if (after !== before) expect(effects).toEqual([{ type: 'replica.persist', pageKey: input.pageKey, record: after }]);
          else expect(effects).toEqual([]);
          if (before && after) expect(after.epoch).toBeGreaterThanOrEqual(before.epoch);
          // A copy turns valid only through a commit of the attempt it is receiving, creation, or a page declared lost
          // served empty (machines/node/lost-pages.ts), always at a newer epoch than any record it had.
          if (after?.status === 'valid' && before?.status !== 'valid') expect(['replica.commit', 'replica.create', 'replica.recreate']).toContain(event.type);
          if (event.type === 'replica.recreate' && after !== before) expect(before === null || after!.epoch > before.epoch).toBe(true);
          if (before?.status === 'valid') expect(event.type === 'replica.recreate' && after !== before).toBe(false);
        }
      }
    }
    console.log(`${recorder.report()} by ${pathCount} shortest paths`);
    expect(recorder.missingStates()).toEqual([]);
    expect(recorder.missingTransitions()).toEqual([]);
  });

  it('an invalid copy ignores a late commit and never becomes valid without a new move', () => {
    const input: ReplicaInput = { pageKey: { volume: 'v', page: 0 }, record: { status: 'invalid', epoch: 2, owner: 'B', forwardTo: null } };
    let [snapshot] = start(replicaMachine, input) as [ReplicaSnapshot, Effect[]];
    [snapshot] = step(replicaMachine, snapshot as never, { type: 'replica.commit', attempt: 1, epoch: 2 }) as [ReplicaSnapshot, Effect[]];
    [snapshot] = step(replicaMachine, snapshot as never, { type: 'replica.create', epoch: 3 }) as [ReplicaSnapshot, Effect[]];
    expect(snapshot.value).toBe('invalid');
  });
});
