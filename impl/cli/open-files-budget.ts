/**
 * The open files a server may need at once, checked against the process's
 * soft limit (`ulimit -n`) before it starts serving.
 *
 * Every NBD connection, peer link and cached page-file handle is a file
 * descriptor. A server whose `nbdConnectionsMax` exceeds what the limit
 * leaves would fail at the busiest moment: `accept` returns EMFILE and a page
 * file cannot be opened, so a write fails with EIO mid-move. Refusing at start,
 * naming the numbers, turns that into a configuration error the operator can
 * fix (raise the limit or lower the bound).
 */
import { readFileSync } from 'node:fs';

/** Files a server holds besides connections and page handles: stdio, lmdb, listening sockets, admin and balance calls, the trace. */
export const openFilesReserved = 64;
/** Per peer: its link each way, and a reconnect overlapping the old socket's close. */
export const openFilesPerPeer = 4;

export interface OpenFilesDemand {
  readonly nbdConnectionsMax: number;
  readonly pageHandlesMax: number;
  readonly peerCount: number;
}

export function openFilesNeeded(demand: OpenFilesDemand): number {
  return demand.nbdConnectionsMax + demand.pageHandlesMax + openFilesPerPeer * demand.peerCount + openFilesReserved;
}

/** The soft "Max open files" of a `/proc/<pid>/limits` text; null if absent or unlimited. */
export function openFilesSoftLimitOf(procLimitsText: string): number | null {
  const line = procLimitsText.split('\n').find((candidate) => candidate.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  if (soft === undefined || soft === 'unlimited') return null;
  const limit = Number(soft);
  return Number.isInteger(limit) && limit > 0 ? limit : null;
}

/** This process's soft limit on open files, or null where it cannot be read (not Linux). */
export function readOpenFilesSoftLimit(): number | null {
  try {
    return openFilesSoftLimitOf(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return null;
  }
}

/** Why the server cannot start under `softLimit`, or null. */
export function openFilesProblem(demand: OpenFilesDemand, softLimit: number | null): string | null {
  if (softLimit === null) return null;
  const needed = openFilesNeeded(demand);
  if (needed <= softLimit) return null;
  return `this server may need ${needed} open files (nbdConnectionsMax ${demand.nbdConnectionsMax}, ${demand.pageHandlesMax} page-file handles, `
    + `${demand.peerCount} peers, ${openFilesReserved} for itself) but the open-file limit is ${softLimit}: raise it (ulimit -n) or lower nbdConnectionsMax`;
}
