import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AllocationConfig } from '../../machines/allocation/allocation-config.js';
import { defaultAllocationConfig } from '../../machines/allocation/allocation-config.js';
import { imbalance, maxOverMeanRatio, serverLoads } from '../../machines/allocation/load-sample.js';
import { runCount, runSeed } from '../random/run-seed.js';
import type { WorldSetup, WorldState } from './allocation-world.js';
import { freshSample, initialWorld, sampleOf, settle, tick } from './allocation-world.js';

/**
 * Random groups (2-4 servers, unequal capacity weights, up to 12 pages of
 * stable heat) driven by random schedules of samples, move outcomes and
 * clock ticks. Every run prints its seed; replay with
 * `BLOCKSHIFT_SEED=<seed> npx vitest run model-tests/allocation`.
 */
const tickMs = 5_000;

const setupArbitrary = fc.record({
  weights: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 2, maxLength: 4 }),
  heats: fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 2, maxLength: 12 }),
  ownerSeeds: fc.array(fc.nat(), { minLength: 12, maxLength: 12 }),
  samplesMin: fc.integer({ min: 1, max: 3 }),
  concurrentMovesMax: fc.integer({ min: 1, max: 3 }),
  slack: fc.constantFrom(0, 0.5, 1),
}).map(({ weights, heats, ownerSeeds, samplesMin, concurrentMovesMax, slack }): WorldSetup => {
  const servers = weights.map((capacityWeight, index) => ({ id: `s${index + 1}`, capacityWeight }));
  const config: AllocationConfig = {
    ...defaultAllocationConfig(null), overShareSamplesMin: samplesMin, concurrentMovesMax, movesPerSampleMax: concurrentMovesMax,
    overShareFloorLoad: 5, pageCooldownMs: 30_000, sampleAgeMaxMs: tickMs, moveTimeoutMs: 10 * 60_000, pageCountSlackRelative: slack,
  };
  return { config, servers, heats, owners: heats.map((_, page) => servers[ownerSeeds[page]! % servers.length]!.id) };
});

type Command = { type: 'sample' } | { type: 'complete'; index: number } | { type: 'fail'; index: number } | { type: 'tick' };

const commandArbitrary: fc.Arbitrary<Command> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ type: 'sample' as const }) },
  { weight: 3, arbitrary: fc.nat(3).map((index) => ({ type: 'complete' as const, index })) },
  { weight: 1, arbitrary: fc.nat(3).map((index) => ({ type: 'fail' as const, index })) },
  { weight: 2, arbitrary: fc.constant({ type: 'tick' as const }) },
);

function run(setup: WorldSetup, commands: readonly Command[], failures: boolean): WorldState {
  let world = initialWorld(setup);
  for (const command of commands) {
    if (command.type === 'sample') world = freshSample(world, setup);
    else if (command.type === 'tick') world = tick(world, tickMs);
    else if (world.pending.length > 0) {
      const outcome = command.type === 'fail' && failures ? 'fail' : 'complete';
      world = settle(world, command.index % world.pending.length, outcome);
    }
    expect(Object.keys(world.snapshot.context.inFlight).length).toBeLessThanOrEqual(setup.config.concurrentMovesMax);
  }
  return world;
}

function checkCooldown(world: WorldState, cooldownMs: number): void {
  const last = new Map<string, number>();
  for (const request of world.requests) {
    const page = `${request.pageKey.volume}/${request.pageKey.page}`;
    const previousMs = last.get(page);
    if (previousMs !== undefined) expect(request.atMs - previousMs, `${page} requested again within its cool-down`).toBeGreaterThanOrEqual(cooldownMs);
    last.set(page, request.atMs);
  }
}

describe('allocation properties', () => {
  const seed = runSeed();
  const numRuns = runCount(150);
  console.log(`allocation properties: seed ${seed}, ${numRuns} runs (replay: BLOCKSHIFT_SEED=${seed})`);

  it('never exceeds the concurrent-move bound and never moves a page within its cool-down', () => {
    fc.assert(fc.property(setupArbitrary, fc.array(commandArbitrary, { maxLength: 80 }), (setup, commands) => {
      checkCooldown(run(setup, commands, true), setup.config.pageCooldownMs);
    }), { seed, numRuns });
  });

  it('no ping-pong under stable load: without failures no page ever returns to a server it left', () => {
    fc.assert(fc.property(setupArbitrary, fc.array(commandArbitrary, { maxLength: 80 }), (setup, commands) => {
      const world = run(setup, commands, false);
      const left = new Map<string, Set<string>>();
      for (const move of world.history) {
        expect(left.get(move.page)?.has(move.to) ?? false, `${move.page} came back to ${move.to}`).toBe(false);
        left.set(move.page, (left.get(move.page) ?? new Set()).add(move.from));
      }
    }), { seed, numRuns });
  });

  it('converges toward the capacity shares: imbalance never grows, and at rest no over-share server has an improving move', () => {
    fc.assert(fc.property(setupArbitrary, (setup) => {
      let world = initialWorld(setup);
      const before = sampleOf(setup, world.owners, 0);
      const beforeLoads = serverLoads(before, setup.config);
      let previousImbalance = imbalance(beforeLoads, setup.servers);
      // An ideal schedule: samples until the hysteresis confirms, every move completes, then time passes the cool-down.
      for (let round = 0; round < 40; round += 1) {
        for (let sample = 0; sample < setup.config.overShareSamplesMin; sample += 1) world = freshSample(world, setup);
        while (world.pending.length > 0) world = settle(world, 0, 'complete');
        for (let waited = 0; waited < setup.config.pageCooldownMs; waited += tickMs) world = tick(world, tickMs);
        const loads = serverLoads(sampleOf(setup, world.owners, world.nowMs), setup.config);
        const now = imbalance(loads, setup.servers);
        expect(now).toBeLessThanOrEqual(previousImbalance + 1e-6);
        previousImbalance = now;
      }
      const requestsAtRest = world.requests.length;
      for (let sample = 0; sample < setup.config.overShareSamplesMin + 1; sample += 1) world = freshSample(world, setup);
      expect(world.requests.length, 'the allocator came to rest within 40 rounds').toBe(requestsAtRest);
      // The allocator minimises the sum of load squared over weight, not max/mean: at rest that sum is no worse than at
      // the start. (A random seed found max/mean rising 1.102 → 1.120 while the sum fell; the bench measures max/mean.)
      const afterLoads = serverLoads(sampleOf(setup, world.owners, world.nowMs), setup.config);
      expect(imbalance(afterLoads, setup.servers)).toBeLessThanOrEqual(imbalance(beforeLoads, setup.servers) + 1e-6);
    }), { seed, numRuns });
  });
});
