import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BlockVersions } from '../../machines/node/block-versions.js';
import { applyBlockVersions, noBlockVersions } from '../../machines/node/block-versions.js';
import { runSeed } from '../random/run-seed.js';

/**
 * The destination's block versions used to be a per-block map, copied and
 * updated block by block for every copy chunk and dual write. The runs must
 * answer exactly as that map did: the same blocks written, the same version
 * per block afterwards, and (for the explorer's fingerprint) one canonical
 * form per map, so that equal maps are equal runs.
 */
const pageBlocks = 24;

interface Operation { readonly offsetBlocks: number; readonly lengthBlocks: number; readonly sequence: number }

/** The per-block map the runs replace (as node.ts had it: no entry for a block no data reached), as a plain array. */
type Reference = ReadonlyArray<number | undefined>;

function referenceApply(map: Reference, { offsetBlocks, lengthBlocks, sequence }: Operation): [Array<number | undefined>, Array<[number, number]>] {
  const versions = [...map];
  const runs: Array<[number, number]> = [];
  for (let block = offsetBlocks; block < offsetBlocks + lengthBlocks; block += 1) {
    if ((versions[block] ?? 0) > sequence) continue;
    versions[block] = sequence;
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === block) last[1] += 1;
    else runs.push([block, 1]);
  }
  return [versions, runs];
}

function perBlock(versions: BlockVersions): Array<number | undefined> {
  const map = Array<number | undefined>(pageBlocks).fill(undefined);
  for (const run of versions) for (let block = run.startBlock; block < run.endBlock; block += 1) map[block] = run.sequence;
  return map;
}

function isCanonical(versions: BlockVersions): boolean {
  return versions.every((run, index) => {
    const previous = versions[index - 1];
    return run.startBlock < run.endBlock && run.sequence >= 0 &&
      (previous === undefined || previous.endBlock < run.startBlock || (previous.endBlock === run.startBlock && previous.sequence !== run.sequence));
  });
}

const operation = fc.record({ offsetBlocks: fc.nat({ max: pageBlocks - 1 }), lengthBlocks: fc.integer({ min: 1, max: pageBlocks }), sequence: fc.integer({ min: 0, max: 6 }) })
  .map((drawn) => ({ ...drawn, lengthBlocks: Math.min(drawn.lengthBlocks, pageBlocks - drawn.offsetBlocks) }));

describe('block versions as runs equal a per-block map', () => {
  it('write the same blocks and hold the same versions, in canonical form, over random histories', () => {
    const seed = runSeed();
    console.log(`block-versions seed=${seed}`);
    fc.assert(fc.property(fc.array(operation, { maxLength: 30 }), (operations) => {
      let versions: BlockVersions = noBlockVersions;
      let reference: Reference = Array<number | undefined>(pageBlocks).fill(undefined);
      for (const applied of operations) {
        const [next, written] = applyBlockVersions(versions, applied.offsetBlocks, applied.lengthBlocks, applied.sequence);
        const [expected, expectedWritten] = referenceApply(reference, applied);
        expect(written).toEqual(expectedWritten);
        expect(perBlock(next)).toEqual(expected);
        expect(isCanonical(next)).toBe(true);
        // The value applied to is left as it was (the simulator keeps old states).
        expect(perBlock(versions)).toEqual(reference);
        versions = next;
        reference = expected;
      }
    }), { seed, numRuns: 500 });
  });

  it('keeps a whole piece copy as one run and a dual write inside it as at most three', () => {
    const [copied] = applyBlockVersions(noBlockVersions, 0, 8192, 10);
    expect(copied).toEqual([{ startBlock: 0, endBlock: 8192, sequence: 10 }]);
    const [dualWritten, written] = applyBlockVersions(copied, 64, 8, 11);
    expect(written).toEqual([[64, 8]]);
    expect(dualWritten).toHaveLength(3);
    // An older copy arriving late writes only the blocks no newer data holds.
    const [, late] = applyBlockVersions(dualWritten, 0, 8192, 10);
    expect(late).toEqual([[0, 64], [72, 8120]]);
  });
});
