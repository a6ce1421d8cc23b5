import { describe, expect, it } from 'vitest';
import { explore } from './explore.js';
import { referenceBound } from '../world/world-config.js';
import type { World } from '../world/world.js';

/**
 * The pinned configurations with `unawaitedCommitsLost` (explorer.test.ts)
 * hold every property; that means something only if the search reaches
 * worlds where a crash can take such a commit: a server that is up, holds a
 * pending commit nobody waits for, and may still crash. An exhaustive search
 * expands the crash in each of them. (A destination's receiving record is
 * awaited: it acknowledges no move data before the record is durable.)
 */
describe('commits nobody waits for, lost in a crash', () => {
  it('the search reaches crashes that would take a pending route or move-record removal', () => {
    const config = { ...referenceBound, servers: 2, writes: 1, reads: 0, crashes: 1, unawaitedCommitsLost: true };
    const kindsAtRisk = new Set<string>();
    let statesAtRisk = 0;
    const atRisk = (world: World): void => {
      if (world.budgets.crashes === 0) return;
      for (const server of world.servers) {
        if (!server.up) continue;
        const lazy = server.pendingMeta.filter((commit) => commit.completionId === null);
        if (lazy.length === 0) continue;
        statesAtRisk += 1;
        for (const commit of lazy) for (const write of commit.writes) kindsAtRisk.add(write.kind);
      }
    };
    const result = explore(config, { statesMax: 100_000, depthMax: 500, livenessSamples: 0, livenessEvery: 1, livenessStepsMax: 0, onNewState: atRisk });
    console.log(`${result.states} states, ${statesAtRisk} with a commit nobody waits for that a crash may take; kinds: ${[...kindsAtRisk].sort().join(', ')}`);
    expect(result.complete).toBe(true);
    expect(result.violation ?? null).toBeNull();
    expect(statesAtRisk).toBeGreaterThan(100);
    expect([...kindsAtRisk].sort()).toEqual(['move.delete', 'route']);
  });
});

/**
 * With two moves of the page, a crash may take the removal of a finished
 * move's record after its flip is durable; the page then moves on, and the
 * restarted source finds the move. It used to ask the destination to confirm
 * the commit again and wait for good (the move stayed `committing`); a move
 * rebuilt from its flip now finishes at once. These searches used to be cut
 * by depth; since a destination moves the page on only once it has learnt
 * the flip (26 Nov, evening), they end (1,206 and 886 states), and the
 * liveness check samples every other state. They count the worlds where a
 * restarted source holds such a record, so that the check cannot pass
 * vacuously. With the old restart rule both fail, within 2,000 states.
 */
describe('a move whose record outlived its flip, after a crash', () => {
  it.each([['piecewise'], ['unit']] as const)('%s moves: every sampled state settles', (kind) => {
    const config = { ...referenceBound, servers: 2, writes: 0, reads: 0, moves: 2, crashes: 1, moveKinds: [kind], unawaitedCommitsLost: true };
    let flippedRecordsFound = 0;
    const flippedRecordAfterRestart = (world: World): void => {
      for (const server of world.servers) {
        if (server.up && server.incarnation > 0 && Object.values(server.meta.moves).some((move) => move.checkpoint.owner === 'destination')) flippedRecordsFound += 1;
      }
    };
    const result = explore(config, { statesMax: 20_000, depthMax: 100, livenessSamples: 400, livenessEvery: 2, livenessStepsMax: 2_000, onNewState: flippedRecordAfterRestart });
    console.log(`${kind}: ${result.states} states (${result.complete ? "exhausted" : "cut"} at depth ${result.depth}), liveness checked from ${result.livenessChecked} states, ${flippedRecordsFound} with a restarted source holding a flipped move's record`);
    expect(result.violation ?? null).toBeNull();
    expect(result.livenessFailure ?? null).toBeNull();
    expect(result.livenessChecked).toBeGreaterThan(200);
    expect(flippedRecordsFound).toBeGreaterThan(0);
  });
});

/**
 * A metadata commit may fail (`commitFailures`): the store skips it and goes
 * on, and tells the node (`ok: false` for a commit it waits for,
 * `meta.failed` for one it does not). The search must
 * get to fail each kind of commit a move writes, or the pinned
 * configurations (explorer.test.ts) would pass without testing the failure
 * paths, including `meta.failed` for a commit nobody waits for. With two
 * moves, a finished move's record whose removal failed used to stay until the
 * next restart, and the group never settled; the node now removes it again.
 */
describe('metadata commits that fail', () => {
  it('the search fails every kind of commit a move writes', () => {
    const config = { ...referenceBound, servers: 2, writes: 1, reads: 0, crashes: 0, commitFailures: 1 };
    const kindsAtRisk = new Set<string>();
    let worldsAfterFailure = 0;
    const atRisk = (world: World): void => {
      if (world.budgets.commitFailures === 0) worldsAfterFailure += 1;
      else {
        for (const server of world.servers) {
          const first = server.up ? server.pendingMeta[0] : undefined;
          for (const write of first?.writes ?? []) kindsAtRisk.add(`${write.kind}:${first?.completionId === null ? 'unawaited' : 'awaited'}`);
        }
      }
    };
    const result = explore(config, { statesMax: 100_000, depthMax: 500, livenessSamples: 50, livenessEvery: 17, livenessStepsMax: 2_000, onNewState: atRisk });
    console.log(`${result.states} states, ${worldsAfterFailure} after a commit failed; kinds that could fail: ${[...kindsAtRisk].sort().join(', ')}`);
    expect(result.complete).toBe(true);
    expect(result.violation ?? null).toBeNull();
    expect(result.livenessFailure ?? null).toBeNull();
    expect(worldsAfterFailure).toBeGreaterThan(100);
    for (const kind of ['move:awaited', 'replica:awaited', 'move.delete:unawaited', 'route:unawaited']) expect([...kindsAtRisk]).toContain(kind);
  });

  it('two moves and a failed commit: the search ends, no state is stuck, and every sampled state settles', () => {
    const config = { ...referenceBound, servers: 2, writes: 0, reads: 0, moves: 2, crashes: 0, commitFailures: 1 };
    let removalsRetried = 0;
    const removalRetry = (world: World): void => {
      for (const server of world.servers) if (server.timers.some((timerId) => timerId.startsWith('move-removal|'))) removalsRetried += 1;
    };
    const result = explore(config, { statesMax: 50_000, depthMax: 500, livenessSamples: 400, livenessEvery: 2, livenessStepsMax: 2_000, onNewState: removalRetry });
    console.log(`${result.states} states, depth ${result.depth}, liveness checked from ${result.livenessChecked} states, ${removalsRetried} with a removal to try again`);
    expect(removalsRetried).toBeGreaterThan(0);
    expect(result.complete).toBe(true);
    expect(result.violation ?? null).toBeNull();
    expect(result.livenessFailure ?? null).toBeNull();
    expect(result.livenessChecked).toBeGreaterThan(100);
  });
});
