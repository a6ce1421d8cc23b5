import fc from 'fast-check';
import { checkLiveness } from '../explorer/liveness.js';
import { isSettled } from '../explorer/explore.js';
import { checkState, checkTransition } from '../world/properties.js';
import type { Action, World } from '../world/world.js';
import { applyAction, describeAction, enabledActions, initialWorld } from '../world/world.js';
import type { WorldConfig } from '../world/world-config.js';
import type { Completion } from './fault-free-completion.js';
import { completeFaultFree } from './fault-free-completion.js';
import type { ActionWeights } from './swarm-weights.js';
import { pickWeighted, swarmWeightsArbitrary } from './swarm-weights.js';

/**
 * A random walk over the simulated group, for bounds the exhaustive explorer
 * cannot finish. A walk is a configuration and a list of choice numbers: step
 * i applies `enabledActions(world)[choice % count]`, so any list of naturals
 * is a valid walk and fast-check can shrink a failing one by deleting steps
 * and lowering choices (towards the first enabled action) without ever
 * producing an impossible schedule. The walk ends early when nothing is
 * enabled.
 *
 * Every step must keep the *always* properties (`checkState` on the new
 * state, `checkTransition` on the step). Then faults stop and the group is
 * driven to quiescence by the fair, fault-free schedule of
 * `completeFaultFree`; every step of that must keep the properties too, the
 * group must end settled (every request answered, every move finished) and
 * the settled audit in `checkState` must pass: every block on its owner's disk
 * holds a value a linearizable register could hold. Optionally routing must
 * converge as the explorer's liveness check reads it: one valid copy of each
 * page, reached from every server by following its table and the stale
 * answers of invalid copies. A simulator assertion thrown by a step (a node
 * asking its runtime for something impossible) is reported as a failure of
 * the walk too, with the trace up to and including that step.
 */
export interface WalkInput {
  readonly config: WorldConfig;
  readonly choices: readonly number[];
  /** A swarm walk's weights per kind of action (swarm-weights.ts); absent, each step picks uniformly among the enabled actions. */
  readonly weights?: ActionWeights;
}

export interface WalkOptions {
  readonly completionStepsMax: number;
  /** Also demand, as `checkLiveness` does, that once settled every server's routing reaches each page's one valid copy. */
  readonly routingAgreement: boolean;
}

export type WalkPhase = 'walk' | 'completion' | 'settled';

export interface WalkFailure {
  readonly property: string;
  readonly detail: string;
  readonly phase: WalkPhase;
  readonly config: WorldConfig;
  /** Every action taken, the walk's and then the completion's: replayable with `npm run check -- --replay`. */
  readonly actions: readonly Action[];
  readonly descriptions: readonly string[];
  /** How many of `actions` belong to the random walk; the rest are the fair completion. */
  readonly walkStepCount: number;
}

export const settlesProperty = 'once faults stop, a fair schedule settles the group (every request answered, every move finished)';
/** The simulator's own assertions (a node asked for something impossible, such as writing from a token it does not hold). */
export const worldAssertionProperty = 'the node step never asks the runtime for the impossible (simulator assertions hold)';
export const routingAgreementProperty = 'once settled, each page has one valid copy and every server\'s routing reaches it (FIG. 7 lazy repair)';

/** Walks over `configs`, half of them (with `swarm`) swarm walks; a swarm walk shrinks towards a uniform one. */
export function walkArbitrary(configs: fc.Arbitrary<WorldConfig>, walkStepsMax: number, swarm = false): fc.Arbitrary<WalkInput> {
  return fc.record({
    config: configs,
    choices: fc.array(fc.nat({ max: 0xffff }), { maxLength: walkStepsMax, size: 'max' }),
    weights: swarm ? fc.option(swarmWeightsArbitrary(), { nil: undefined, freq: 2 }) : fc.constant(undefined),
  });
}

export function runWalk(input: WalkInput, options: WalkOptions): WalkFailure | null {
  // A walk whose world has nothing left to do simply ends there.
  const { weights } = input;
  return runSchedule(input.config, input.choices.map((choice) => (enabled) =>
    weights ? pickWeighted(enabled, weights, choice) : enabled.length === 0 ? null : enabled[choice % enabled.length]), options);
}

/**
 * Picks one step of a schedule from the actions enabled now: an action, null
 * to end the schedule here, or the reason why it cannot go on.
 */
export type SchedulePick = (enabled: readonly Action[]) => Action | null | string | undefined;

export const scheduleReplaysProperty = 'a recorded schedule replays (each of its actions is enabled when its turn comes)';

/** Runs a schedule step by step under the always properties, then the fair completion and the settled checks. */
export function runSchedule(config: WorldConfig, picks: readonly SchedulePick[], options: WalkOptions): WalkFailure | null {
  let world = initialWorld(config);
  const actions: Action[] = [];
  const descriptions: string[] = [];
  const fail = (property: string, detail: string, phase: WalkPhase, walkStepCount: number): WalkFailure =>
    ({ property, detail, phase, config, actions, descriptions, walkStepCount });

  for (const pick of picks) {
    const action = pick(enabledActions(world));
    if (action === null) break;
    if (typeof action === 'string' || action === undefined) return fail(scheduleReplaysProperty, action ?? 'no action picked', 'walk', actions.length);
    actions.push(action);
    descriptions.push(describeAction(world, action));
    let next: World;
    try {
      next = applyAction(world, action);
    } catch (error) {
      return fail(worldAssertionProperty, (error as Error).message, 'walk', actions.length);
    }
    const violation = checkState(next) ?? checkTransition(world, next);
    world = next;
    if (violation) return fail(violation.property, violation.detail, 'walk', actions.length);
  }

  const walkStepCount = actions.length;
  let completion: Completion;
  try {
    completion = completeFaultFree(world, options.completionStepsMax);
  } catch (error) {
    const failed = (error as Error & { completion?: Completion }).completion;
    for (const step of failed?.steps ?? []) {
      actions.push(step.action);
      descriptions.push(step.description);
    }
    return fail(worldAssertionProperty, (error as Error).message, 'completion', walkStepCount);
  }
  for (const step of completion.steps) {
    actions.push(step.action);
    descriptions.push(step.description);
  }
  world = completion.world;
  if (completion.violation) return fail(completion.violation.property, completion.violation.detail, 'completion', walkStepCount);
  if (!completion.quiescent || !isSettled(world)) {
    const pending = world.clients.filter((client) => client.status === 'pending').map((client) => client.id);
    const moves = world.servers.flatMap((server) => Object.keys(server.node.moves).concat(Object.keys(server.meta.moves)).map((key) => `${server.id}:${key}`));
    return fail(settlesProperty, `after ${completion.steps.length} fair steps: quiescent ${completion.quiescent}, pending requests ${JSON.stringify(pending)}, moves ${JSON.stringify(moves)}, messages ${world.network.length}`, 'settled', walkStepCount);
  }
  const audit = checkState(world);
  if (audit) return fail(audit.property, audit.detail, 'settled', walkStepCount);
  if (options.routingAgreement) {
    const disagreement = checkLiveness(world, 0);
    if (disagreement) return fail(routingAgreementProperty, disagreement, 'settled', walkStepCount);
  }
  return null;
}

/** A failure as text: the property, the numbered trace with the point where faults stop, and a replayable trace file. */
export function formatWalkFailure(failure: WalkFailure): string {
  const lines = [`${failure.property}: ${failure.detail} (found in the ${failure.phase} phase, ${failure.actions.length} steps)`];
  failure.descriptions.forEach((description, index) => {
    if (index === failure.walkStepCount) lines.push('     --- faults stop; fair fault-free completion ---');
    lines.push(`${String(index + 1).padStart(4)}. ${description}`);
  });
  lines.push(`trace file: ${JSON.stringify({ config: failure.config, actions: failure.actions, property: failure.property, detail: failure.detail })}`);
  return lines.join('\n');
}
