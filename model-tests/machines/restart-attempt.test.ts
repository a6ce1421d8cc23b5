import { describe, expect, it } from 'vitest';
import type { Effect } from '../../machines/effects.js';
import type { MoveInput } from '../../machines/migration/checkpoint.js';
import type { MoveContext, MoveEvent } from '../../machines/migration/move-setup.js';
import { unitMoveMachine } from '../../machines/migration/unit-move.machine.js';
import { start, step } from '../../machines/step.js';

/**
 * A restart never goes back below an attempt the machine has acted on
 * (move-setup.ts, `beginNextAttempt`). Table 1 copies again under a new
 * attempt when the destination refuses a commit, and sends that attempt's
 * dual writes before its stage is durable; the destination follows it. A
 * failure before that stage is durable then restarts the move from the
 * checkpoint, and a restart at the checkpoint's attempt + 1 would ask the
 * destination to commit an attempt it refuses as old, for ever (a swarm
 * random walk found it; the kept counterexample of that walk no longer
 * reaches the restart, so this is the fix's guard).
 */
type MoveSnapshot = { value: unknown; context: MoveContext; matches(value: string): boolean };

const input: MoveInput = { pageKey: { volume: 'v', page: 0 }, kind: 'unit', source: 'A', destination: 'B', pieceCount: 1, epoch: 1, forwardingPointer: false, progressTimeoutMs: 100 };

function play(events: readonly MoveEvent[]): { snapshot: MoveSnapshot; effects: Effect[] } {
  let [snapshot, effects] = start(unitMoveMachine, input) as [MoveSnapshot, Effect[]];
  for (const event of events) [snapshot, effects] = step(unitMoveMachine, snapshot as never, event as never) as [MoveSnapshot, Effect[]];
  return { snapshot, effects };
}

/** A unit move copied and durable at Finish Move (attempt 1), interrupted while committing, restarted into the commit as attempt 2. */
const committingAgain: readonly MoveEvent[] = [
  { type: 'move.begin' },
  { type: 'stage.persisted', stage: 2, attempt: 1 },
  { type: 'piece.copied', piece: 0, attempt: 1 },
  { type: 'stage.persisted', stage: 3, attempt: 1 },
  { type: 'destination.failed', attempt: 1 },
  { type: 'restart' },
];

describe('a restart after a copy again that never became durable', () => {
  it('keeps the copy again\'s attempt, which the destination follows, rather than the checkpoint\'s attempt + 1', () => {
    const restarted = play(committingAgain).snapshot;
    expect(restarted.matches({ moving: 'committing' } as never)).toBe(true);
    expect(restarted.context.attempt).toBe(2);

    // The destination refuses attempt 2 (its copy is stale): the page is copied again as attempt 3, whose stage 2
    // record is written; its dual writes already carry attempt 3. It fails before that record is durable.
    const copyingAgain = play([...committingAgain, { type: 'destination.stale', attempt: 2, destinationAttempt: 1 }]).snapshot;
    expect(copyingAgain.context.attempt).toBe(3);
    expect(copyingAgain.context.pending?.attempt).toBe(3);
    const interrupted = play([...committingAgain, { type: 'destination.stale', attempt: 2, destinationAttempt: 1 }, { type: 'destination.failed', attempt: 3 }]).snapshot;
    expect(interrupted.matches('interrupted')).toBe(true);
    expect(interrupted.context.checkpoint.attempt).toBe(1);

    const { snapshot: again, effects } = play([
      ...committingAgain, { type: 'destination.stale', attempt: 2, destinationAttempt: 1 }, { type: 'destination.failed', attempt: 3 }, { type: 'restart' },
    ]);
    // Back into the commit (the durable checkpoint is Finish Move) at attempt 3, not 2: the destination follows 3.
    expect(again.matches({ moving: 'committing' } as never)).toBe(true);
    expect(again.context.attempt).toBe(3);
    expect(effects.filter((effect) => effect.type === 'commit.request')).toMatchObject([{ destination: 'B', attempt: 3 }]);
  });
});
