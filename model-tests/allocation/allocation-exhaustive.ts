import type { ServerId } from '../../machines/identifiers.js';
import type { AllocationConfig } from '../../machines/allocation/allocation-config.js';
import { defaultAllocationConfig } from '../../machines/allocation/allocation-config.js';
import type { WorldSetup, WorldState } from './allocation-world.js';
import { freshSample, initialWorld, settle, staleSample, tick } from './allocation-world.js';

/**
 * Breadth-first search over every interleaving of samples, move outcomes and
 * clock ticks for a group of 2 servers and 2 pages, over every placement,
 * every pair of a handful of discrete heat levels and both an equal and an
 * unequal pair of capacity weights. The load is stable: each page's true
 * heat never changes. A sample is either exact, *noisy* (each page read one
 * level off its true heat — what a decaying window shows in practice), or
 * *stale* (taken before the last move completed and delivered within the
 * sample age bound).
 *
 * Always properties, checked on every transition:
 * - `cooldown`: no page completes two moves within the reference cool-down;
 * - `noPingPong`: with exact samples and no failed moves, no page ever
 *   returns to a server it left: each plan lowers Σ load²/weight of the
 *   placement it aims at, so no later plan aims back. (A failed move can
 *   force a detour in which a page does come back once other pages moved;
 *   with failures only the cool-down is claimed.)
 * Sometimes: at least one move completes somewhere, so a search cannot pass
 * by doing nothing.
 */
export const heatLevels = [0, 20, 40, 80] as const;
export const tickMs = 10_000;
export const horizonMs = 90_000;
/** Noise and failures multiply the interleavings; two cool-downs still show a page trying to come back. */
export const noisyHorizonMs = 60_000;
export const referenceCooldownMs = 30_000;
export const stateCountMax = 2_000_000;

export function exhaustiveConfig(variant: 'correct' | 'no-cooldown'): AllocationConfig {
  return {
    ...defaultAllocationConfig(null),
    overShareRelative: 0.1, overShareFloorLoad: 5, overShareSamplesMin: 2, concurrentMovesMax: 2, movesPerSampleMax: 2,
    pageCooldownMs: variant === 'correct' ? referenceCooldownMs : 0, // Longer than the horizon: a move given up on that still completes can bring a page back after its cool-down (a known limit, see README).
    sampleAgeMaxMs: tickMs, moveTimeoutMs: horizonMs + tickMs,
    pageCountSlackRelative: 0,
  };
}

export interface ExhaustiveResult {
  readonly setups: number;
  readonly states: number;
  readonly transitions: number;
  readonly movesCompleted: number;
  readonly violation: { property: string; setup: string; trace: string[] } | null;
}

interface Node {
  readonly world: WorldState;
  /** The node this one was reached from and by which event: the trace is rebuilt only for a violation. */
  readonly parent: number;
  readonly label: string;
}

function traceOf(nodes: readonly Node[], index: number, last: string): string[] {
  const trace = [last];
  for (let at = index; at > 0; at = nodes[at]!.parent) trace.unshift(nodes[at]!.label);
  return trace;
}

function serialize(world: WorldState): string {
  const context = world.snapshot.context;
  const last: Record<string, [ServerId, number, boolean]> = {};
  for (const move of world.history) last[move.page] = [move.from, move.atMs, move.ordinal === world.completedCount - 1];
  return JSON.stringify([
    world.snapshot.value, context.nowMs, context.overStreaks, Object.entries(context.inFlight).map(([page, move]) => [page, move.to, move.requestedAtMs]),
    context.lastMovedAtMs, context.placementChangedAtMs, world.owners, world.previousOwners, world.previousUntilMs, world.pending, world.nowMs, last,
  ]);
}

function lastMovePerPage(world: WorldState): WorldState['history'] {
  const last = new Map(world.history.map((move) => [move.page, move]));
  return [...last.values()];
}

function noisyReadings(heats: readonly number[]): number[][] {
  const shifted = (heat: number, by: number) => {
    const index = heatLevels.indexOf(heat as never);
    return heatLevels[Math.min(heatLevels.length - 1, Math.max(0, index + by))]!;
  };
  // One page read one level off at a time: enough to reorder two pages' heats, small enough to exhaust.
  const readings: number[][] = [];
  for (const by of [-1, 1]) {
    readings.push([shifted(heats[0]!, by), heats[1]!]);
    readings.push([heats[0]!, shifted(heats[1]!, by)]);
  }
  return readings.filter((reading) => reading[0] !== heats[0] || reading[1] !== heats[1]);
}

function successors(world: WorldState, setup: WorldSetup, mode: SampleMode): Array<[string, WorldState]> {
  const next: Array<[string, WorldState]> = [[`sample exact @${world.nowMs}`, freshSample(world, setup)]];
  if (mode === 'noisy') for (const reading of noisyReadings(setup.heats)) next.push([`sample noisy ${reading.join('/')} @${world.nowMs}`, freshSample(world, setup, reading)]);
  const stale = staleSample(world, setup);
  if (stale) next.push([`sample stale (before ${world.previousUntilMs}) @${world.nowMs}`, stale]);
  world.pending.forEach((move, index) => {
    const label = `${move.pageKey.volume}/${move.pageKey.page} ${move.from}→${move.to}`;
    next.push([`complete ${label} @${world.nowMs}`, settle(world, index, 'complete')]);
    if (mode === 'noisy') next.push([`fail ${label} @${world.nowMs}`, settle(world, index, 'fail')]);
  });
  if (world.nowMs + tickMs <= (mode === 'stable' ? horizonMs : noisyHorizonMs)) next.push([`tick → ${world.nowMs + tickMs}`, tick(world, tickMs)]);
  return next;
}

function violationOf(before: Node, world: WorldState, mode: SampleMode): string | null {
  const moves = world.history;
  if (world.completedCount === before.world.completedCount) return null;
  const latest = moves[moves.length - 1]!;
  for (const earlier of moves.slice(0, -1)) {
    if (earlier.page === latest.page && latest.atMs - earlier.atMs < referenceCooldownMs) return 'cooldown';
  }
  const previous = before.world.history.find((move) => move.page === latest.page);
  if (mode === 'stable' && previous && previous.from === latest.to) return 'noPingPong';
  return null;
}

export function allSetups(config: AllocationConfig): WorldSetup[] {
  const setups: WorldSetup[] = [];
  for (const weights of [[1, 1], [1, 2]]) {
    const servers = [{ id: 'A', capacityWeight: weights[0]! }, { id: 'B', capacityWeight: weights[1]! }];
    for (const heat0 of heatLevels) for (const heat1 of heatLevels) for (const owner0 of ['A', 'B']) for (const owner1 of ['A', 'B']) {
      setups.push({ config, servers, heats: [heat0, heat1], owners: [owner0, owner1] });
    }
  }
  return setups;
}

/**
 * `stable`: exact and stale samples, every move completes. `noisy`: samples
 * also read each page one heat level off, and moves may fail.
 */
export type SampleMode = 'stable' | 'noisy';

export function exploreAllocation(variant: 'correct' | 'no-cooldown', mode: SampleMode): ExhaustiveResult {
  const config = exhaustiveConfig(variant);
  const setups = allSetups(config);
  let states = 0;
  let transitions = 0;
  let movesCompleted = 0;
  for (const setup of setups) {
    const setupText = `weights ${setup.servers.map((server) => `${server.id}:${server.capacityWeight}`).join(' ')} heats ${setup.heats.join('/')} owners ${setup.owners.join('/')}`;
    const seen = new Set<string>();
    const first = initialWorld(setup);
    const start: Node = { world: first, parent: -1, label: 'start' };
    seen.add(serialize(start.world));
    const queue: Node[] = [start];
    for (let head = 0; head < queue.length; head += 1) {
      const node = queue[head]!;
      for (const [label, world] of successors(node.world, setup, mode)) {
        transitions += 1;
        if (world.completedCount > node.world.completedCount) movesCompleted += 1;
        const property = violationOf(node, world, mode);
        if (property) return { setups: setups.length, states: states + seen.size, transitions, movesCompleted, violation: { property, setup: setupText, trace: traceOf(queue, head, label) } };
        const key = serialize(world);
        if (seen.has(key)) continue;
        seen.add(key);
        if (states + seen.size > stateCountMax) throw new Error(`allocation exploration exceeded ${stateCountMax} states`);
        // Only the properties' view of the history is kept: with 2 servers the last move per page is enough.
        queue.push({ world: { ...world, requests: [], history: lastMovePerPage(world) }, parent: head, label });
      }
    }
    states += seen.size;
  }
  return { setups: setups.length, states, transitions, movesCompleted, violation: null };
}
