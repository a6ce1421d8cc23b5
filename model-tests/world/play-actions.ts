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
