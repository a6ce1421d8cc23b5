import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { brokenVariants } from '../explorer/broken-variants.js';
import { assertChecked, checkProperty } from './checked-run.js';
import { deepBound, deepConfigArbitrary } from './deep-bounds.js';
import type { WalkInput, WalkOptions } from './random-walk.js';
import { formatWalkFailure, runWalk, walkArbitrary } from './random-walk.js';
import { runCount, runSeed } from './run-seed.js';
import { reduceWalkFailure } from './trace-reducer.js';

/**
 * Random walks at bounds the explorer cannot exhaust (deep-bounds.ts). The
 * seed is printed before anything runs; replay a failure with
 * `BLOCKSHIFT_SEED=<seed> npx vitest run model-tests/random`, or paste the
 * trace file from the failure message into a file and run
 * `npm run check -- --replay FILE`. `BLOCKSHIFT_RUNS` lengthens the soak and
 * `BLOCKSHIFT_VERBOSE=1` makes fast-check list every failure it shrank through.
 */
const seed = runSeed();
const numRuns = runCount(2000);
const verbose = process.env['BLOCKSHIFT_VERBOSE'] ? fc.VerbosityLevel.Verbose : fc.VerbosityLevel.None;
const walkStepsMax = 120;
const options: WalkOptions = { completionStepsMax: 3_000, routingAgreement: true };
/** The 2,000 walks take 10-15 s on this host; the rest of the limit is for shrinking a failure. */
const timeLimitMs = 60_000;
/** Shrinking a caught variant stops after this long and reports the shortest trace found so far. */
const variantTimeLimitMs = 8_000;

const walkHolds = (input: WalkInput): void => {
  const failure = runWalk(input, options);
  if (failure) throw new Error(formatWalkFailure(failure));
};

describe('random walks over the group at deep bounds', () => {
  it('every step keeps the always properties, and once faults stop the group settles, passes the audit and routes to each owner', () => {
    console.log(`random walk seed=${seed} numRuns=${numRuns} walkStepsMax=${walkStepsMax} bounds=${JSON.stringify(deepBound)}`);
    // Half the walks are swarm walks (swarm-weights.ts): each leaves some kinds of action out and favours others.
    const run = checkProperty('random walk', fc.property(walkArbitrary(deepConfigArbitrary(), walkStepsMax, true), walkHolds), { seed, numRuns, verbose, timeLimitMs });
    const counterexample = run.details.counterexample?.[0];
    const failure = counterexample ? runWalk(counterexample, options) : null;
    if (failure) {
      const reduced = reduceWalkFailure(failure, options);
      console.log(`random walk failure reduced in ${reduced.replays} replays:\n${formatWalkFailure(reduced.failure)}`);
    }
    assertChecked(run, numRuns);
  });
});

describe('the random walk bites: it catches deliberately broken machines and shrinks to a short trace', () => {
  const variants = ['dual-write-one-side', 'flip-before-copy-durable', 'restart-one-piece-late', 'serve-from-invalid-copy', 'source-copy-stays-valid'];
  it.each(variants)('%s', (variant) => {
    console.log(`random walk seed=${seed} numRuns=${numRuns} variant=${variant}`);
    const { details } = checkProperty(`random walk on ${variant}`, fc.property(walkArbitrary(deepConfigArbitrary({ ...deepBound, variant }), walkStepsMax), walkHolds), {
      seed, numRuns, timeLimitMs: variantTimeLimitMs,
    });
    expect(details.failed, `${variant} was not caught in ${details.numRuns} walks`).toBe(true);
    const counterexample = details.counterexample?.[0];
    expect(counterexample).toBeDefined();
    const shrunk = runWalk(counterexample as WalkInput, options);
    expect(shrunk).not.toBeNull();
    if (!shrunk) return;
    // fast-check's shrink stops at its time limit, so how far it got depends on the host; the reduction that follows
    // is bounded by a count of replays, so the trace it ends with does not.
    const { failure, replays, cutShort } = reduceWalkFailure(shrunk, options);
    // The walk reports the first property it sees broken, which at these bounds need not be the one the explorer's
    // small bound reports; the real machines pass the same walk above, so any violation here is the variant's doing.
    console.log(`${variant}: shrunk trace ${shrunk.actions.length} steps (${shrunk.walkStepCount} random), reduced in ${replays} replays to ` +
      `${failure.actions.length} steps (${failure.walkStepCount} random, ${failure.actions.length - failure.walkStepCount} fair completion)` +
      `${cutShort ? ' (replay bound reached)' : ''}; found "${failure.property}: ${failure.detail}"; the explorer expects "${brokenVariants[variant]?.expectedProperty}"`);
    expect(failure.property).toBe(shrunk.property);
    expect(failure.actions.length).toBeLessThan(80);
  });
});
