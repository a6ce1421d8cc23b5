import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deepBound, deepConfigArbitrary } from './deep-bounds.js';
import type { WalkFailure, WalkInput, WalkOptions } from './random-walk.js';
import { runWalk, walkArbitrary } from './random-walk.js';
import { replayActions } from './replay-trace.js';
import { runSeed } from './run-seed.js';
import { reduceWalkFailure } from './trace-reducer.js';

const options: WalkOptions = { completionStepsMax: 3_000, routingAgreement: true };
const seed = runSeed();

/** A failing walk of the broken variant as fast-check first finds it, before any shrinking: long and full of noise. */
function unshrunkFailure(variant: string): WalkFailure {
  const details = fc.check(fc.property(walkArbitrary(deepConfigArbitrary({ ...deepBound, variant }), 120), (input) => runWalk(input, options) === null), {
    seed, numRuns: 5_000, endOnFailure: true,
  });
  if (!details.failed || !details.counterexample) throw new Error(`${variant} was not caught in ${details.numRuns} walks (seed=${seed})`);
  const failure = runWalk(details.counterexample[0] as WalkInput, options);
  if (!failure) throw new Error('the counterexample does not fail when run again');
  return failure;
}

function replays(failure: WalkFailure, actions: WalkFailure['actions']): boolean {
  return replayActions(failure.config, actions, options)?.property === failure.property;
}

describe('the trace reducer', () => {
  it('reduces a failing walk to a 1-minimal walk that fails the same property, and the result is a fixpoint', () => {
    console.log(`trace reducer seed=${seed}`);
    const original = unshrunkFailure('flip-before-copy-durable');
    const { failure, replays: replayCount, cutShort } = reduceWalkFailure(original, options);
    const walk = failure.actions.slice(0, failure.walkStepCount);
    console.log(`trace reducer: ${original.walkStepCount} random steps reduced to ${walk.length} in ${replayCount} replays`);
    expect(cutShort).toBe(false);
    expect(failure.property).toBe(original.property);
    expect(walk.length).toBeLessThanOrEqual(original.walkStepCount);
    expect(replays(original, walk)).toBe(true);
    // 1-minimal: leaving out any one remaining step no longer reproduces the failure.
    walk.forEach((_, index) => expect(replays(original, walk.filter((__, kept) => kept !== index)), `step ${index + 1} can go`).toBe(false));
    const again = reduceWalkFailure(failure, options);
    expect(again.failure.actions).toEqual(failure.actions);
  });

  it('stops at its bound on replays and says so', () => {
    const original = unshrunkFailure('serve-from-invalid-copy');
    const { replays: replayCount, cutShort } = reduceWalkFailure(original, options, 2);
    expect(replayCount).toBeLessThanOrEqual(2);
    expect(cutShort).toBe(original.walkStepCount >= 2);
  });

  it('refuses a failure that does not reproduce from its own walk', () => {
    const original = unshrunkFailure('flip-before-copy-durable');
    expect(() => reduceWalkFailure({ ...original, property: 'a property nothing breaks' }, options)).toThrow(/does not reproduce/);
  });
});
