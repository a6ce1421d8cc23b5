import type { ServerId } from '../../machines/identifiers.js';
import { pageKeyText } from '../../machines/identifiers.js';
import type { AllocationConfig } from '../../machines/allocation/allocation-config.js';
import type { AllocationEffect } from '../../machines/allocation/allocation-effects.js';
import { startAllocation, stepAllocation } from '../../machines/allocation/allocation-effects.js';
import type { AllocationContext, AllocationEvent } from '../../machines/allocation/allocation.machine.js';
import { allocationMachine } from '../../machines/allocation/allocation.machine.js';
import type { MoveRequest } from '../../machines/allocation/allocation-plan.js';
import type { LoadSample, ServerCapacity } from '../../machines/allocation/load-sample.js';

/**
 * A tiny group for checking the allocation machine: pages with fixed
 * (stable) heat, an owner per page, and moves that complete only when the
 * world chooses. A move whose source no longer owns the page fails, as the
 * real node refuses it. Every completed move is remembered with its time so
 * the properties can look for ping-pong and cool-down violations.
 */
export type AllocationSnapshot = { value: unknown; context: AllocationContext; status: string };

export interface CompletedMove {
  readonly page: string;
  readonly from: ServerId;
  readonly to: ServerId;
  readonly atMs: number;
  /** This move's place among all completed moves, so a move can be told to follow another directly. */
  readonly ordinal: number;
}

export interface WorldState {
  readonly snapshot: AllocationSnapshot;
  readonly owners: Readonly<Record<string, ServerId>>;
  /** The placement before the last completed move, and when that move completed: what a stale sample may still show. */
  readonly previousOwners: Readonly<Record<string, ServerId>> | null;
  readonly previousUntilMs: number;
  readonly pending: readonly MoveRequest[];
  readonly nowMs: number;
  readonly history: readonly CompletedMove[];
  readonly completedCount: number;
  readonly requests: readonly (MoveRequest & { atMs: number })[];
}

export interface WorldSetup {
  readonly config: AllocationConfig;
  readonly servers: readonly ServerCapacity[];
  /** Page index → random operations per second (stable load). */
  readonly heats: readonly number[];
  readonly owners: readonly ServerId[];
}

export const volumeName = 'v';

export function sampleOf(setup: WorldSetup, owners: Readonly<Record<string, ServerId>>, takenAtMs: number, heats: readonly number[] = setup.heats): LoadSample {
  return {
    takenAtMs, servers: setup.servers,
    pages: heats.map((heat, page) => ({
      pageKey: { volume: volumeName, page }, owner: owners[`${volumeName}/${page}`] ?? setup.servers[0]!.id,
      randomOpsPerSecond: heat, sequentialOpsPerSecond: 0, bytesPerSecond: 0,
    })),
  };
}

export function initialWorld(setup: WorldSetup): WorldState {
  const [snapshot] = startAllocation(allocationMachine, { config: setup.config, nowMs: 0 });
  const owners = Object.fromEntries(setup.owners.map((owner, page) => [`${volumeName}/${page}`, owner]));
  return { snapshot: snapshot as AllocationSnapshot, owners, previousOwners: null, previousUntilMs: 0, pending: [], nowMs: 0, history: [], completedCount: 0, requests: [] };
}

export function feed(world: WorldState, event: AllocationEvent): WorldState {
  const [snapshot, effects] = stepAllocation(allocationMachine, world.snapshot as never, event) as [AllocationSnapshot, AllocationEffect[]];
  const requested = effects.map((effect) => ({ pageKey: effect.pageKey, from: effect.from, to: effect.to, kind: effect.kind, reason: effect.reason }));
  return {
    ...world, snapshot,
    pending: [...world.pending, ...requested],
    requests: [...world.requests, ...requested.map((move) => ({ ...move, atMs: world.nowMs }))],
  };
}

/** Completes (or fails, if its source no longer owns the page) the pending move at `index`. */
export function settle(world: WorldState, index: number, outcome: 'complete' | 'fail'): WorldState {
  const move = world.pending[index]!;
  const pending = world.pending.filter((_, other) => other !== index);
  const page = pageKeyText(move.pageKey);
  if (outcome === 'fail' || world.owners[page] !== move.from) {
    return feed({ ...world, pending }, { type: 'move.failed', pageKey: move.pageKey, reason: outcome === 'fail' ? 'injected' : 'not the owner' });
  }
  const owners = { ...world.owners, [page]: move.to };
  const history = [...world.history, { page, from: move.from, to: move.to, atMs: world.nowMs, ordinal: world.completedCount }];
  return feed({ ...world, pending, owners, previousOwners: world.owners, previousUntilMs: world.nowMs, history, completedCount: world.completedCount + 1 }, { type: 'move.completed', pageKey: move.pageKey });
}

export function tick(world: WorldState, tickMs: number): WorldState {
  const nowMs = world.nowMs + tickMs;
  return feed({ ...world, nowMs }, { type: 'clock.tick', nowMs });
}

export function freshSample(world: WorldState, setup: WorldSetup, heats?: readonly number[]): WorldState {
  return feed(world, { type: 'load.sample', sample: sampleOf(setup, world.owners, world.nowMs, heats) });
}

/** A sample measured just before the last move completed, delivered late; null when no such sample could still be young enough. */
export function staleSample(world: WorldState, setup: WorldSetup): WorldState | null {
  if (!world.previousOwners || world.nowMs - (world.previousUntilMs - 1) > setup.config.sampleAgeMaxMs) return null;
  return feed(world, { type: 'load.sample', sample: sampleOf(setup, world.previousOwners, world.previousUntilMs - 1) });
}

/** A page that moved back to a server it left within `windowMs` (ping-pong), or null. */
export function pingPong(history: readonly CompletedMove[], windowMs: number): CompletedMove | null {
  for (const [index, move] of history.entries()) {
    for (const earlier of history.slice(0, index)) {
      if (earlier.page === move.page && earlier.from === move.to && move.atMs - earlier.atMs < windowMs) return move;
    }
  }
  return null;
}

/** A page that moved twice within `cooldownMs`, or null. */
export function cooldownBreach(history: readonly CompletedMove[], cooldownMs: number): CompletedMove | null {
  const last = new Map<string, number>();
  for (const move of history) {
    const previousMs = last.get(move.page);
    if (previousMs !== undefined && move.atMs - previousMs < cooldownMs) return move;
    last.set(move.page, move.atMs);
  }
  return null;
}
