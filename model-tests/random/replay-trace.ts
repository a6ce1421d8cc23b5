import type { TraceFile } from '../explorer/counterexample.js';
import type { Action } from '../world/world.js';
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
  const same = (a: Action, b: Action) => JSON.stringify(a) === JSON.stringify(b);
  return runSchedule(trace.config, trace.actions.map((recorded, index) => (enabled) =>
    enabled.find((action) => same(action, recorded)) ?? `step ${index + 1} is not enabled: ${JSON.stringify(recorded)}`), options);
}
