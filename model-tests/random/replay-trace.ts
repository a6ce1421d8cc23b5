import type { TraceFile } from '../explorer/counterexample.js';
import type { Action } from '../world/world.js';
import type { WorldConfig } from '../world/world-config.js';
import type { WalkFailure, WalkOptions } from './random-walk.js';
import { runSchedule } from './random-walk.js';

/**
 * Replays a recorded trace file (the explorer's format, as the random tests
 * print on failure) under the same checks as a random walk: every recorded
 * action must be enabled when its turn comes and keep the *always*
 * properties, then the fair completion must settle the group and pass the
 * settled audit. A shrunk counterexample kept as a fixture stays a test.
 */
export function replayTrace(trace: TraceFile, options: WalkOptions): WalkFailure | null {
  return replayActions(trace.config, trace.actions, options);
}

/** Runs recorded actions as a schedule: each must be enabled when its turn comes (else the replay fails on that). */
export function replayActions(config: WorldConfig, actions: readonly Action[], options: WalkOptions): WalkFailure | null {
  return runSchedule(config, actions.map((recorded, index) => (enabled) =>
    enabled.find((action) => sameAction(action, recorded)) ?? `step ${index + 1} is not enabled: ${JSON.stringify(recorded)}`), options);
}

function sameAction(a: Action, b: Action): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
