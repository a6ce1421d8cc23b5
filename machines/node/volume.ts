import type { PageKey, ServerId } from '../identifiers.js';
import { assert } from '../identifiers.js';

/**
 * A volume: a run of blocks cut into pages, each page cut into pieces for
 * piecewise moves. Pages start spread round-robin over the volume's servers
 * (FIG. 9: one volume over three servers, one over two).
 */
export interface VolumeDefinition {
  readonly name: string;
  readonly pageCount: number;
  readonly pageSizeBlocks: number;
  readonly blockSizeBytes: number;
  readonly piecesPerPage: number;
  readonly servers: readonly ServerId[];
}

export const defaultPageSizeBlocks = 8192;
export const defaultBlockSizeBytes = 512;
/**
 * Bounds on a volume's geometry. Every page has its records on every server
 * (routes are persistent maps, measured to 262,144 pages in
 * `bench:page-records`); 10^8 pages took one request's worth of memory past
 * the heap and ended the server (a review found it). A block is what NBD
 * advertises as the minimum block size: a power of two of at most 64 KiB.
 */
export const volumePagesMax = 262_144;
export const pageBytesMax = 2 ** 30;
export const blockSizeBytesMin = 512;
export const blockSizeBytesMax = 64 * 1024;

export function validateVolume(volume: VolumeDefinition): string | null {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(volume.name)) return `volume name ${JSON.stringify(volume.name)} must be 1-64 letters, digits, '.', '_' or '-'`;
  // The node keeps volumes, and records per volume, in plain objects: `__proto__` would set a prototype, and the other
  // names of Object.prototype's members read as members of every such record.
  if (Object.hasOwn(Object.prototype, volume.name)) return `volume name ${volume.name} is reserved`;
  if (!Number.isSafeInteger(volume.pageCount) || volume.pageCount < 1 || volume.pageCount > volumePagesMax) return `pageCount must be an integer from 1 to ${volumePagesMax}`;
  if (!Number.isSafeInteger(volume.blockSizeBytes) || volume.blockSizeBytes < blockSizeBytesMin || volume.blockSizeBytes > blockSizeBytesMax || (volume.blockSizeBytes & (volume.blockSizeBytes - 1)) !== 0) {
    return `blockSizeBytes must be a power of two from ${blockSizeBytesMin} to ${blockSizeBytesMax}`;
  }
  if (!Number.isSafeInteger(volume.pageSizeBlocks) || volume.pageSizeBlocks < 1 || volume.pageSizeBlocks * volume.blockSizeBytes > pageBytesMax) {
    return `pageSizeBlocks must be a positive integer, with pages of at most ${pageBytesMax} bytes`;
  }
  if (!Number.isSafeInteger(volume.piecesPerPage) || volume.piecesPerPage < 1 || volume.pageSizeBlocks % volume.piecesPerPage !== 0) {
    return 'piecesPerPage must divide pageSizeBlocks';
  }
  if (volume.servers.length < 1 || new Set(volume.servers).size !== volume.servers.length) return 'servers must be a non-empty list without repeats';
  return null;
}

export function initialOwner(volume: VolumeDefinition, page: number): ServerId {
  const owner = volume.servers[page % volume.servers.length];
  assert(owner !== undefined, 'volume has servers');
  return owner;
}

/** The blocks in one granule: the volume's split granularity (a move of `piecesPerPage` pieces moves one granule per piece). */
export function pieceSizeBlocks(volume: VolumeDefinition): number {
  return movePieceSizeBlocks(volume, volume.piecesPerPage);
}

export function pieceOfBlock(volume: VolumeDefinition, offsetBlocks: number): number {
  return movePieceOfBlock(volume, volume.piecesPerPage, offsetBlocks);
}

/**
 * The piece count of one move is chosen per move (`blockshift move --pieces
 * N`), while the volume's `piecesPerPage` stays the *split granularity*: the
 * front end cuts every request at granule boundaries, so each request part
 * lies in one granule. A move's N must divide the granularity, so every
 * granule — and hence every request part — lies within exactly one piece of
 * the move, whatever N the move chose. Without that, a part straddling two
 * move pieces would need two different sets of read/write targets (Table 2),
 * which the node cannot give one operation. A move that wants pieces finer
 * than the granularity would need the front end to split at the finer
 * boundary for that page only while it moves; coupling the NBD split to move
 * state was judged not worth it, so the granularity bounds N from above.
 */
export function movePieceCountProblem(volume: VolumeDefinition, kind: 'unit' | 'piecewise', pieceCount: number): string | null {
  if (!Number.isSafeInteger(pieceCount) || pieceCount < 1) return `a move's piece count must be a positive integer, not ${pieceCount}`;
  if (kind === 'unit') return pieceCount === 1 ? null : 'a unit move copies the page as one piece (pieces must be 1)';
  if (volume.piecesPerPage % pieceCount !== 0) {
    const divisors = Array.from({ length: volume.piecesPerPage }, (_, index) => index + 1).filter((candidate) => volume.piecesPerPage % candidate === 0);
    return `pieces ${pieceCount} must divide volume ${volume.name}'s ${volume.piecesPerPage} pieces per page (one of ${divisors.join(', ')})`;
  }
  return null;
}

/** The blocks in one piece of a move of `pieceCount` pieces. */
export function movePieceSizeBlocks(volume: VolumeDefinition, pieceCount: number): number {
  assert(Number.isSafeInteger(pieceCount) && pieceCount >= 1 && volume.pageSizeBlocks % pieceCount === 0, `a move's ${pieceCount} pieces divide the page`);
  return volume.pageSizeBlocks / pieceCount;
}

/**
 * The chunks a piece of a move is copied in: consecutive runs of blocks, each
 * at most `chunkBytesMax` long (at least one block), as [offsetBlocks,
 * lengthBlocks]. A piece no longer than `chunkBytesMax` is one chunk.
 */
export function copyChunksOf(volume: VolumeDefinition, pieceCount: number, piece: number, chunkBytesMax: number): Array<[number, number]> {
  const sizeBlocks = movePieceSizeBlocks(volume, pieceCount);
  const chunkBlocks = Math.max(1, Math.floor(chunkBytesMax / volume.blockSizeBytes));
  const chunks: Array<[number, number]> = [];
  for (let offsetBlocks = piece * sizeBlocks; offsetBlocks < (piece + 1) * sizeBlocks; offsetBlocks += chunkBlocks) {
    chunks.push([offsetBlocks, Math.min(chunkBlocks, (piece + 1) * sizeBlocks - offsetBlocks)]);
  }
  return chunks;
}

/** The piece of a move of `pieceCount` pieces that holds `offsetBlocks`. */
export function movePieceOfBlock(volume: VolumeDefinition, pieceCount: number, offsetBlocks: number): number {
  return Math.floor(offsetBlocks / movePieceSizeBlocks(volume, pieceCount));
}

export function pageKeysOf(volume: VolumeDefinition): PageKey[] {
  return Array.from({ length: volume.pageCount }, (_, page) => ({ volume: volume.name, page }));
}
