import type { PageKey, ServerId } from '../identifiers.js';
import { pageKeyText } from '../identifiers.js';
import type { AllocationConfig } from './allocation-config.js';

/**
 * What the load monitors tell the allocation process: group-wide heat per
 * page (summed over every server that accepted requests for it, since any
 * server accepts any request) and who owns each page. A server's load is the
 * heat of the pages it owns: that is the load a move shifts, whichever server
 * the clients happen to connect to.
 */
export interface ServerCapacity {
  readonly id: ServerId;
  /** Relative share of the group's load this server should carry. */
  readonly capacityWeight: number;
  /**
   * A draining member may not receive pages, and its own pages are its drain's
   * to move (machines/membership/drain-plan.ts), not the allocation's: it is
   * neither a destination nor a source, and its weight and load stay out of
   * every share. Absent means an active member.
   */
  readonly draining?: boolean;
}

/** The servers the allocation balances among: the sample's members that are not draining. */
export function balancedServers(servers: readonly ServerCapacity[]): ServerCapacity[] {
  return servers.filter((server) => server.draining !== true);
}

export interface PageHeat {
  readonly pageKey: PageKey;
  readonly owner: ServerId;
  readonly randomOpsPerSecond: number;
  readonly sequentialOpsPerSecond: number;
  readonly bytesPerSecond: number;
}

export interface LoadSample {
  /** When the slowest report merged into this sample was measured: its age decides staleness. */
  readonly takenAtMs: number;
  readonly servers: readonly ServerCapacity[];
  readonly pages: readonly PageHeat[];
  /**
   * How many pages each server owns in all, when `pages` lists only some of
   * them: the hot ones, a few cold ones per server (swap candidates) and the
   * pages of moves in flight. A group of 262,144 pages listed one by one cost
   * the balancer up to a second of its server's event loop per tick. Absent,
   * `pages` lists every page.
   */
  readonly pageCounts?: Readonly<Record<ServerId, number>>;
}

/** The group's page count: the summary's when the sample has one, else the pages it lists. */
export function totalPageCount(sample: LoadSample): number {
  return sample.pageCounts ? Object.values(sample.pageCounts).reduce((sum, count) => sum + count, 0) : sample.pages.length;
}

/**
 * One page's load in load units. A random operation costs a seek and a
 * round trip; a sequential one is mostly merged and read ahead, so it counts
 * less; bytes count on top of operations.
 */
export function pageLoad(page: PageHeat, config: AllocationConfig): number {
  return page.randomOpsPerSecond + page.sequentialOpsPerSecond * config.sequentialOpWeight + page.bytesPerSecond / config.bytesPerLoadUnit;
}

/** A page driven mostly by a sequential stream: the stream moves on by itself, so such pages are moved last. */
export function isSequentialStream(page: PageHeat): boolean {
  return page.sequentialOpsPerSecond > page.randomOpsPerSecond;
}

export function pageText(page: PageHeat): string {
  return pageKeyText(page.pageKey);
}

/** Per-server load for the placement the sample names. */
export function serverLoads(sample: LoadSample, config: AllocationConfig): Map<ServerId, number> {
  const loads = new Map<ServerId, number>(sample.servers.map((server) => [server.id, 0]));
  for (const page of sample.pages) {
    const current = loads.get(page.owner);
    if (current !== undefined) loads.set(page.owner, current + pageLoad(page, config));
  }
  return loads;
}

/**
 * Σ load² / weight over the servers. For a fixed total it is smallest exactly
 * when every server's load is proportional to its weight, so the allocator
 * only makes moves that lower it: under a stable load no move can be undone
 * by a later one (that would raise it again), which rules out ping-pong.
 */
export function imbalance(loads: ReadonlyMap<ServerId, number>, servers: readonly ServerCapacity[]): number {
  let total = 0;
  for (const server of servers) total += (loads.get(server.id) ?? 0) ** 2 / server.capacityWeight;
  return total;
}

/** Max over servers of load / expected share; 1 is perfect balance. */
export function maxOverMeanRatio(loads: ReadonlyMap<ServerId, number>, servers: readonly ServerCapacity[]): number {
  const totalLoad = servers.reduce((sum, server) => sum + (loads.get(server.id) ?? 0), 0);
  const totalWeight = servers.reduce((sum, server) => sum + server.capacityWeight, 0);
  if (totalLoad <= 0) return 1;
  return Math.max(...servers.map((server) => (loads.get(server.id) ?? 0) / (totalLoad * server.capacityWeight / totalWeight)));
}
