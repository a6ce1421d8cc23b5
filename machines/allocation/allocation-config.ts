import type { MoveKind } from '../migration/checkpoint.js';
import type { ServerId } from '../identifiers.js';
import { membersMax } from '../membership/membership.js';

/**
 * The knobs of the allocation process, each with its unit last in its name.
 * One config object serves the pure machine, its tests and the balancer, so
 * the exhaustive check runs the very rules the servers run (with smaller
 * time constants).
 */
export interface AllocationConfig {
  /** The server whose pages this allocator may move away; `null` plans for the whole group (tests, simulations). */
  readonly self: ServerId | null;
  /** Automatic balancing starts on or off; `balancing.enable` / `balancing.disable` switch it at run time. */
  readonly enabled: boolean;
  /** A server is over its share when its load exceeds share × (1 + this). */
  readonly overShareRelative: number;
  /** ... and when that excess is at least this many load units (so an idle group never moves pages). */
  readonly overShareFloorLoad: number;
  /** Consecutive over-share samples before a server is rebalanced (hysteresis against bursts). */
  readonly overShareSamplesMin: number;
  /** Moves this allocator keeps in flight at once, swap halves included. */
  readonly concurrentMovesMax: number;
  /** Moves planned from one sample. */
  readonly movesPerSampleMax: number;
  /** No page is moved again within this long of its last move. */
  readonly pageCooldownMs: number;
  /** A sample taken longer ago than this is dropped as stale. */
  readonly sampleAgeMaxMs: number;
  /** A requested move not reported completed or failed within this long frees its slot (counted as failed). */
  readonly moveTimeoutMs: number;
  /** Load units per sequential-stream operation per second (a random operation counts 1): streams are cheap per request and move on by themselves. */
  readonly sequentialOpWeight: number;
  /** Bytes per second that count as one load unit, so large transfers weigh more than small ones. */
  readonly bytesPerLoadUnit: number;
  /** A server may hold up to its capacity share of the group's pages × (1 + this) (rounded up) before a move into it must swap a cold page back. */
  readonly pageCountSlackRelative: number;
  /** Kind of move requested. */
  readonly moveKind: MoveKind;
  /** Bounds on what one sample may carry; a larger sample is a programmer error. */
  readonly serversMax: number;
  readonly pagesMax: number;
}

export function defaultAllocationConfig(self: ServerId | null): AllocationConfig {
  return {
    self,
    enabled: true,
    overShareRelative: 0.1,
    overShareFloorLoad: 20,
    overShareSamplesMin: 3,
    // Four, not two: a hot spot on one server of three needs about ten moves, and with two per round the group took
    // 15-34 s to settle (bench:balance, one-server placement); with four, 11 s.
    concurrentMovesMax: 4,
    movesPerSampleMax: 4,
    pageCooldownMs: 60_000,
    sampleAgeMaxMs: 5_000,
    moveTimeoutMs: 60_000,
    sequentialOpWeight: 0.25,
    bytesPerLoadUnit: 1024 * 1024,
    pageCountSlackRelative: 0.5,
    moveKind: 'piecewise',
    // Every member may be in a sample: a group of more members than this crashed every balancer's tick on its assertion.
    serversMax: membersMax,
    pagesMax: 65_536,
  };
}

/** Returns a description of the first bad field, or null. */
export function allocationConfigProblem(config: AllocationConfig): string | null {
  const positive = ['overShareSamplesMin', 'concurrentMovesMax', 'movesPerSampleMax', 'bytesPerLoadUnit', 'serversMax', 'pagesMax'] as const;
  for (const name of positive) if (!(config[name] > 0)) return `${name} must be > 0`;
  const nonNegative = ['overShareRelative', 'overShareFloorLoad', 'pageCooldownMs', 'sampleAgeMaxMs', 'moveTimeoutMs', 'sequentialOpWeight', 'pageCountSlackRelative'] as const;
  for (const name of nonNegative) if (!(config[name] >= 0)) return `${name} must be >= 0`;
  // A view taken before a page's move must be too old to act on once the page may move again.
  if (config.pageCooldownMs > 0 && config.pageCooldownMs <= config.sampleAgeMaxMs) return 'pageCooldownMs must exceed sampleAgeMaxMs';
  return null;
}
