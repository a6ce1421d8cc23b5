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
