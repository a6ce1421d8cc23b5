import { assert } from '../identifiers.js';

/**
 * Destination side of a move: per block of a receiving page, the write
 * sequence of the newest data applied there, so that a piece copy or a dual
 * write never rolls a block back. A block no data reached counts as 0 (and
 * takes data of any sequence, 0 included: the simulator's first incarnation
 * numbers its writes from 0).
 *
 * Theory of operation. The versions are kept as runs of consecutive blocks
 * that hold one sequence, sorted by first block, never overlapping, with no
 * run for blocks no data reached and no two touching runs of the same
 * sequence. That form is canonical: two pages whose blocks hold the same
 * versions have equal runs, so the explorer's fingerprint (which projects
 * them) tells states apart exactly as the per-block map it replaces did,
 * whose blocks no data reached had no entry. A piece copy of any size is one
 * run, and each dual write adds at most a few, so applying data costs in
 * proportion to the writes the move has seen rather than to the page's block
 * count, which a per-block map paid on every copy chunk and every dual write
 * (a 4 MiB page has 8,192 blocks to copy per change). Values are immutable: an
 * update returns new runs and leaves the old ones to states that hold them.
 *
 * Confirmed and claimed. A node keeps the versions of data written
 * (confirmed); data on its way to the disk holds a claim in its continuation.
 * New data is ordered against both (it overwrites only blocks no newer data
 * claims), but only confirmed data may stand in for older data that is
 * skipped: a write can fail (`newerOnlyOnItsWay`). Marked on receipt, as they
 * once were, a failed write's versions made an older write's retry be skipped
 * and answered written, then lost.
 */
export interface BlockVersionRun {
  readonly startBlock: number;
  /** One past the run's last block. */
  readonly endBlock: number;
  readonly sequence: number;
}

export type BlockVersions = readonly BlockVersionRun[];

export const noBlockVersions: BlockVersions = [];

/**
 * The version of a write a destination serves itself, for a block of a piece
 * already handed over to it (Table 2): newer than every version it holds, and
 * older than any write the source numbers from now on. The source's
 * sequences are whole numbers and only grow, and every version here came from
 * one the source had already handed out, so a source write that starts after
 * this one is answered is numbered above it and lands, while an older one (a
 * late duplicate, or a write concurrent with this one) does not take back
 * what this write set. Halves are exact for sequences below 2^52.
 */
export function directWriteSequence(versions: BlockVersions, sourceSequenceSeen: number): number {
  let newest = sourceSequenceSeen;
  for (const run of versions) newest = Math.max(newest, run.sequence);
  return Math.floor(newest) + 0.5;
}

/**
 * Applies data of write sequence `sequence` to blocks [offsetBlocks,
 * offsetBlocks + lengthBlocks): every block whose version is not newer takes
 * it. Returns the new versions and the runs of blocks the data may overwrite
 * (as [offsetBlocks, lengthBlocks], in block order).
 */
export function applyBlockVersions(versions: BlockVersions, offsetBlocks: number, lengthBlocks: number, sequence: number): [BlockVersions, Array<[number, number]>] {
  assert(Number.isSafeInteger(offsetBlocks) && offsetBlocks >= 0 && Number.isSafeInteger(lengthBlocks) && lengthBlocks >= 1, 'data covers at least one block');
  assert(Number.isSafeInteger(sequence * 2) && sequence >= 0, 'write sequences are whole numbers, or halves (a destination\'s own writes: directWriteSequence)');
  const endBlock = offsetBlocks + lengthBlocks;
  const next: BlockVersionRun[] = [];
  const written: Array<[number, number]> = [];
  const push = (run: BlockVersionRun) => {
    const last = next[next.length - 1];
    if (last && last.endBlock === run.startBlock && last.sequence === run.sequence) next[next.length - 1] = { ...last, endBlock: run.endBlock };
    else next.push(run);
  };
  const write = (startBlock: number, end: number) => {
    push({ startBlock, endBlock: end, sequence });
    const last = written[written.length - 1];
    if (last && last[0] + last[1] === startBlock) last[1] += end - startBlock;
    else written.push([startBlock, end - startBlock]);
  };
  // `cursor` is the first block of the range not yet decided.
  let cursor = offsetBlocks;
  for (const run of versions) {
    if (run.endBlock <= offsetBlocks || run.startBlock >= endBlock) {
      if (run.startBlock >= endBlock && cursor < endBlock) {
        write(cursor, endBlock);
        cursor = endBlock;
      }
      push(run);
      continue;
    }
    // The run overlaps the range: its part before the range stays, the gap before it in the range takes the data.
    if (run.startBlock < offsetBlocks) push({ ...run, endBlock: offsetBlocks });
    else if (cursor < run.startBlock) write(cursor, run.startBlock);
    const overlapStart = Math.max(run.startBlock, offsetBlocks);
    const overlapEnd = Math.min(run.endBlock, endBlock);
    if (run.sequence > sequence) push({ ...run, startBlock: overlapStart, endBlock: overlapEnd });
    else write(overlapStart, overlapEnd);
    cursor = overlapEnd;
    if (run.endBlock > endBlock) push({ ...run, startBlock: endBlock });
  }
  if (cursor < endBlock) write(cursor, endBlock);
  return [next, written];
}

/** The sequence of the newest data applied to `block`; undefined if none reached it. */
export function blockVersionAt(versions: BlockVersions, block: number): number | undefined {
  for (const run of versions) {
    if (run.startBlock > block) return undefined;
    if (run.endBlock > block) return run.sequence;
  }
  return undefined;
}

/**
 * Whether data of write sequence `sequence` over [offsetBlocks, offsetBlocks + lengthBlocks) must wait: some block
 * has newer data `claimed` (on its way to the disk) while what is `confirmed` there (written) is older than this
 * data. Skipped and answered written, the data would be lost if the newer write then failed; written, it would land
 * after the newer one and take it back. Once the newer write is done it either confirms the block (this data is then
 * skipped) or leaves no mark (this data is then written).
 */
export function newerOnlyOnItsWay(confirmed: BlockVersions, claimed: BlockVersions, offsetBlocks: number, lengthBlocks: number, sequence: number): boolean {
  if (claimed === confirmed) return false; // Nothing on its way (#versionsClaimed returns the confirmed versions as they are).
  for (let block = offsetBlocks; block < offsetBlocks + lengthBlocks; block += 1) {
    if ((blockVersionAt(claimed, block) ?? 0) > sequence && (blockVersionAt(confirmed, block) ?? 0) < sequence) return true;
  }
  return false;
}
