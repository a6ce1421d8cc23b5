import type { Action } from '../world/world.js';
import type { WorldConfig } from '../world/world-config.js';
import type { WalkFailure, WalkOptions } from './random-walk.js';
import { replayActions } from './replay-trace.js';

/**
 * Reduces a failing walk to a shorter one that fails the same property, by
 * delta debugging (Zeller's ddmin) over its concrete actions.
 *
 * fast-check shrinks a walk's choice numbers, and a choice means "the k-th
 * action enabled now": deleting one step shifts the meaning of every later
 * one, so some failures shrink slowly and fast-check's time limit can stop
 * with a long trace. Here the unit is the recorded action itself. A candidate
 * keeps a subsequence of the walk's actions and replays it (each kept action
 * must still be enabled when its turn comes, or the candidate is simply not a
 * reproduction); the fair completion is recomputed after it, exactly as for a
 * walk. A candidate counts only if it breaks the same property, so a
 * reduction never wanders to a different bug.
 *
 * The search is bounded by `replaysMax`, not by time, so the same failure
 * reduces to the same trace on any host.
 */
export interface ReducedWalk {
  readonly failure: WalkFailure;
  readonly replays: number;
  /** True when `replaysMax` stopped the search before a full pass removed nothing (the trace is then not known to be 1-minimal). */
  readonly cutShort: boolean;
}

export function reduceWalkFailure(original: WalkFailure, options: WalkOptions, replaysMax = 2_000): ReducedWalk {
  let replays = 0;
  const replay = (config: WorldConfig, actions: readonly Action[]): WalkFailure | null => {
    replays++;
    const failure = replayActions(config, actions, options);
    return failure && failure.property === original.property ? failure : null;
  };

  let best = replay(original.config, original.actions.slice(0, original.walkStepCount));
  if (!best) throw new Error(`the failure does not reproduce from its own walk: ${original.property}`);
  let steps = best.actions.slice(0, best.walkStepCount);
  // ddmin ends 1-minimal (no single step can go), yet another pass may still remove two steps together; passes repeat
  // until one removes nothing, so reducing a reduced trace gives it back unchanged.
  for (;;) {
    const before = steps.length;
    let chunkCount = 2;
    while (steps.length >= 2) {
      if (replays >= replaysMax) return { failure: best, replays, cutShort: true };
      const chunkLength = Math.ceil(steps.length / chunkCount);
      let reduced = false;
      for (let start = 0; start < steps.length && replays < replaysMax; start += chunkLength) {
        const failure = replay(original.config, [...steps.slice(0, start), ...steps.slice(start + chunkLength)]);
        if (failure) {
          best = failure;
          steps = failure.actions.slice(0, failure.walkStepCount);
          chunkCount = Math.max(chunkCount - 1, 2);
          reduced = true;
          break;
        }
      }
      if (reduced) continue;
      if (replays >= replaysMax) return { failure: best, replays, cutShort: true };
      if (chunkLength === 1) break;
      chunkCount = Math.min(chunkCount * 2, steps.length);
    }
    if (steps.length === before) return { failure: best, replays, cutShort: false };
  }
}

