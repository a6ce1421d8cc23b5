import { createTestModel } from 'xstate/graph';
import { describe, expect, it } from 'vitest';
import { defaultAllocationConfig } from '../../machines/allocation/allocation-config.js';
import type { AllocationEffect } from '../../machines/allocation/allocation-effects.js';
import { startAllocation, stepAllocation } from '../../machines/allocation/allocation-effects.js';
import type { AllocationContext, AllocationEvent, AllocationInput } from '../../machines/allocation/allocation.machine.js';
import { allocationMachine } from '../../machines/allocation/allocation.machine.js';
import { CoverageRecorder } from '../machines/coverage.js';
import { sampleOf } from './allocation-world.js';
import type { WorldSetup } from './allocation-world.js';

type Snapshot = { value: unknown; context: AllocationContext };

const config = { ...defaultAllocationConfig(null), overShareSamplesMin: 2, overShareFloorLoad: 5, pageCooldownMs: 20_000, sampleAgeMaxMs: 5_000, moveTimeoutMs: 30_000 };
const servers = [{ id: 'A', capacityWeight: 1 }, { id: 'B', capacityWeight: 1 }];
const hot: WorldSetup = { config, servers, heats: [60, 20], owners: ['A', 'A'] };
const even: WorldSetup = { config, servers, heats: [20, 20], owners: ['A', 'B'] };

/**
 * Events worth trying in a state: samples that are over share, balanced or stale, every in-flight move's outcomes,
 * time passing, the switch, and the hot page arriving by someone else's move (its cool-down must then hold too).
 */
function possibleEvents(snapshot: Snapshot): AllocationEvent[] {
  const { context } = snapshot;
  const owners = Object.fromEntries(['v/0', 'v/1'].map((page, index) => [page, context.inFlight[page]?.from ?? hot.owners[index]!]));
  const events: AllocationEvent[] = [
    { type: 'load.sample', sample: sampleOf(hot, owners, context.nowMs) },
    { type: 'load.sample', sample: sampleOf(even, { 'v/0': 'A', 'v/1': 'B' }, context.nowMs) },
    { type: 'load.sample', sample: sampleOf(hot, owners, context.nowMs - config.sampleAgeMaxMs - 1) },
    { type: 'clock.tick', nowMs: context.nowMs + 10_000 },
    { type: 'balancing.enable' },
    { type: 'balancing.disable' },
    { type: 'page.moved', pageKey: { volume: 'v', page: 0 } },
  ];
  for (const move of Object.values(context.inFlight)) {
    events.push({ type: 'move.completed', pageKey: move.pageKey }, { type: 'move.failed', pageKey: move.pageKey, reason: 'test' });
  }
  return events;
}

describe('allocation machine', () => {
  it('covers every state and transition; moves are requested only for over-share servers, within the bound and outside the cool-down', () => {
    const recorder = new CoverageRecorder(allocationMachine);
    let pathCount = 0;
    for (const enabled of [true, false]) {
      const input: AllocationInput = { config: { ...config, enabled }, nowMs: 0 };
      const paths = createTestModel(allocationMachine).getShortestPaths({
        allowDuplicatePaths: true, input,
        events: (snapshot) => possibleEvents(snapshot as never),
        serializeState: (snapshot) => {
          const { value, context } = snapshot as Snapshot;
          return JSON.stringify([value, context.nowMs, context.overStreaks, Object.keys(context.inFlight), context.lastMovedAtMs, context.placementChangedAtMs]);
        },
        stopWhen: (snapshot) => (snapshot as Snapshot).context.nowMs > 20_000,
        limit: 20_000,
      });
      pathCount += paths.length;
      const extended = paths.flatMap((path) => possibleEvents(path.state as never).map((event) => [...path.steps.map((pathStep) => pathStep.event as AllocationEvent), event]));
      for (const events of extended) {
        recorder.replay(input, events);
        let [snapshot] = startAllocation(allocationMachine, input) as [Snapshot, AllocationEffect[]];
        for (const event of events) {
          const before = snapshot.context;
          let effects: AllocationEffect[];
          [snapshot, effects] = stepAllocation(allocationMachine, snapshot as never, event) as [Snapshot, AllocationEffect[]];
          const after = snapshot.context;
          expect(Object.keys(after.inFlight).length).toBeLessThanOrEqual(config.concurrentMovesMax);
          for (const effect of effects) {
            const page = `${effect.pageKey.volume}/${effect.pageKey.page}`;
            expect(event.type).toBe('load.sample');
            expect(JSON.stringify(snapshot.value)).not.toBe('"off"');
            const lastMs = before.lastMovedAtMs[page];
            if (lastMs !== undefined) expect(after.nowMs - lastMs).toBeGreaterThanOrEqual(config.pageCooldownMs);
            expect(before.inFlight[page]).toBeUndefined();
          }
        }
      }
    }
    console.log(`${recorder.report()} by ${pathCount} shortest paths`);
    expect(recorder.missingStates()).toEqual([]);
    expect(recorder.missingTransitions()).toEqual([]);
  });
});
