import type { Violation } from '../world/properties.js';
import { checkState, checkTransition } from '../world/properties.js';
import type { Action, World } from '../world/world.js';
import { applyAction, describeAction } from '../world/world.js';
import { FairSchedule } from '../world/fair-schedule.js';

/**
 * Drives a world to quiescence once faults stop, with the fair schedule the
 * explorer's liveness check uses too (world/fair-schedule.ts).
 *
 * Unlike `checkLiveness`, every step of the completion is checked against
 * the *always* properties and described, because a violation that only shows
 * while the group heals is still a violation of the run that led there.
 */
export interface CompletionStep {
  readonly action: Action;
  readonly description: string;
}

export interface Completion {
  readonly world: World;
  readonly steps: readonly CompletionStep[];
  /** The first property broken while healing, with the step that broke it last in `steps`. */
  readonly violation: Violation | null;
  /** True when the fair schedule ran out of enabled actions before `stepsMax`. */
  readonly quiescent: boolean;
}

export function completeFaultFree(start: World, stepsMax: number): Completion {
  let world = start;
  const steps: CompletionStep[] = [];
  const schedule = new FairSchedule();
  for (let count = 0; count < stepsMax; count += 1) {
    const action = schedule.next(world);
    if (!action) return { world, steps, violation: null, quiescent: true };
    steps.push({ action, description: describeAction(world, action) });
    let next: World;
    try {
      next = applyAction(world, action);
    } catch (error) {
      // A simulator assertion: hand the steps so far to whoever reports it.
      throw Object.assign(error as Error, { completion: { world, steps, violation: null, quiescent: false } satisfies Completion });
    }
    const violation = checkState(next) ?? checkTransition(world, next);
    world = next;
    if (violation) return { world, steps, violation, quiescent: false };
  }
  return { world, steps, violation: null, quiescent: schedule.next(world) === undefined };
}
