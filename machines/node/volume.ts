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

export function validateVolume(volume: VolumeDefinition): string | null {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(volume.name)) return `volume name ${JSON.stringify(volume.name)} must be 1-64 letters, digits, '.', '_' or '-'`;
  if (!Number.isSafeInteger(volume.pageCount) || volume.pageCount < 1) return 'pageCount must be a positive integer';
  if (!Number.isSafeInteger(volume.pageSizeBlocks) || volume.pageSizeBlocks < 1) return 'pageSizeBlocks must be a positive integer';
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

export function pieceSizeBlocks(volume: VolumeDefinition): number {
  return volume.pageSizeBlocks / volume.piecesPerPage;
}

export function pieceOfBlock(volume: VolumeDefinition, offsetBlocks: number): number {
  return Math.floor(offsetBlocks / pieceSizeBlocks(volume));
}

export function pageKeysOf(volume: VolumeDefinition): PageKey[] {
  return Array.from({ length: volume.pageCount }, (_, page) => ({ volume: volume.name, page }));
}
