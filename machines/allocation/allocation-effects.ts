import { initialTransition, transition } from 'xstate';
import type { AnyStateMachine, EventFromLogic, InputFrom, SnapshotFrom } from 'xstate';
import { assert } from '../identifiers.js';
import type { MoveRequest } from './allocation-plan.js';

/**
 * The allocation machine's effects: one, a move request as data. The
 * balancer (`impl/balance/`) starts the move at the page's owner and answers
 * with `move.completed` or `move.failed`; a test world applies it to its
 * placement. The union is closed so a new effect cannot be silently ignored.
 */
export interface AllocationEffectParams {
  'move.request': MoveRequest;
}

export type AllocationEffectType = keyof AllocationEffectParams;
export type AllocationEffect = { [K in AllocationEffectType]: { type: K } & AllocationEffectParams[K] }[AllocationEffectType];

const allocationEffectTypes: ReadonlySet<string> = new Set<AllocationEffectType>(['move.request']);

export function allocationEffectsFromActions(actions: ReadonlyArray<{ type: string; params?: unknown }>): AllocationEffect[] {
  return actions.map((action) => {
    assert(allocationEffectTypes.has(action.type), `allocation machine emitted an action that is not an effect: ${action.type}`);
    return { type: action.type, ...(action.params as object) } as AllocationEffect;
  });
}

/** The pure step of `machines/step.ts`, over the allocation effect union. */
export function startAllocation<M extends AnyStateMachine>(machine: M, input: InputFrom<M>): [SnapshotFrom<M>, AllocationEffect[]] {
  const [snapshot, actions] = initialTransition(machine, input);
  return [snapshot as SnapshotFrom<M>, allocationEffectsFromActions(actions)];
}

export function stepAllocation<M extends AnyStateMachine>(machine: M, snapshot: SnapshotFrom<M>, event: EventFromLogic<M>): [SnapshotFrom<M>, AllocationEffect[]] {
  const [next, actions] = transition(machine, snapshot, event);
  return [next as SnapshotFrom<M>, allocationEffectsFromActions(actions)];
}
