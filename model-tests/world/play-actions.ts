import { FairSchedule } from './fair-schedule.js';
import { checkState, checkTransition } from './properties.js';
import type { Action, World } from './world.js';
import { applyAction, enabledActions } from './world.js';

/**
 * Hand-written schedules for node tests: each recorded action must be enabled
 * when its turn comes (compared as JSON, as the explorer's traces are), and
 * every step must keep the always properties. Throws otherwise, naming the
 * action or the property.
 */
export function applyRecorded(world: World, recorded: Action): World {
  const action = enabledActions(world).find((candidate) => JSON.stringify(candidate) === JSON.stringify(recorded));
  if (action === undefined) throw new Error(`not enabled: ${JSON.stringify(recorded)}`);
  const next = applyAction(world, action);
  const violation = checkState(next) ?? checkTransition(world, next);
  if (violation !== null) throw new Error(`${JSON.stringify(recorded)} breaks "${violation.property}": ${violation.detail}`);
  return next;
}

/** `applyRecorded` for each action in turn. */
export function playRecorded(start: World, actions: readonly Action[]): World {
  return actions.reduce(applyRecorded, start);
}

/** Picks a node test's next action; undefined when none of its kind is enabled. */
export type ActionChoice = (world: World, schedule: FairSchedule) => Action | undefined;

/** The fault-free fair schedule's next action (faults stopped, every server brought back). */
export const fairChoice: ActionChoice = (world, schedule) => schedule.next(world);

/**
 * Plays the actions `choose` picks (by default the fair schedule's), each
 * checked as `applyRecorded` checks it, until `reached` holds. Throws if no
 * action is left to choose or `reached` does not hold within `stepsMax`.
 */
export function advanceUntil(start: World, reached: (world: World) => boolean, choose: ActionChoice = fairChoice, stepsMax = 500): World {
  let world = start;
  const schedule = new FairSchedule();
  for (let steps = 0; steps < stepsMax; steps += 1) {
    if (reached(world)) return world;
    const next = choose(world, schedule);
    if (next === undefined) throw new Error('the schedule ran out before reaching its goal');
    world = applyRecorded(world, next);
  }
  throw new Error(`goal not reached within ${stepsMax} steps`);
}
