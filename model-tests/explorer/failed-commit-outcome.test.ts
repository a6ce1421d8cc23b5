import { describe, expect, it } from 'vitest';
import { explore } from './explore.js';
import { referenceBound } from '../world/world-config.js';

/**
 * The node takes a failed metadata commit for one not applied. The explorer
 * can also let a commit reported failed be durable all the same
 * (`failedCommitsDurable`, an fsync that failed after the disk took the
 * pages), and then finds a unit move that never ends: the destination's
 * valid record survives the "failed" commit, its node believes otherwise,
 * and after its restart the source copies to it for ever. lmdb reports a
 * failed write and a failed sync alike, so the runtime cannot tell the two
 * outcomes apart: a server whose commit fails stops and recovers from what
 * is durable (impl/runtime/server-runtime.ts, `onCommitOutcomeUnknown`),
 * where the crash model covers it. This test pins the finding, so that a node
 * taught to tolerate unknown outcomes is noticed (and the stop reconsidered).
 */
describe('a failed metadata commit that was durable all the same', () => {
  const unitMove = { ...referenceBound, servers: 2, pieces: 1, writes: 1, reads: 0, crashes: 1, moveKinds: ['unit'] as const, network: 'ordered' as const, commitFailures: 1 };

  it('is what the node cannot survive: a move that never ends, while with the failure not applied every property holds', () => {
    const options = { statesMax: 200_000, depthMax: 500, livenessSamples: 1_000_000, livenessEvery: 1, livenessStepsMax: 2_000 };
    const notApplied = explore(unitMove, options);
    expect(notApplied.complete).toBe(true);
    expect(notApplied.livenessFailure).toBeNull();
    const durable = explore({ ...unitMove, failedCommitsDurable: true }, options);
    console.log(`failed commit not applied: ${notApplied.states} states, exhausted; durable all the same: ${durable.states} states, ` +
      `liveness ${durable.livenessFailure?.reason ?? 'holds'} (${durable.livenessFailure?.length ?? 0} steps)`);
    expect(durable.livenessFailure?.reason).toMatch(/not settled after 2000 fair steps/);
    expect(durable.livenessFailure!.length).toBeLessThan(20);
  });
});
