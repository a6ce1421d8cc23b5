import { initialTransition, transition } from 'xstate';
import type { AnyStateMachine, EventFromLogic, InputFrom, SnapshotFrom } from 'xstate';
import type { Effect } from './effects.js';
import { effectsFromActions } from './effects.js';

/**
 * The one pure step every runtime calls: `(snapshot, event) → [snapshot, effects]`.
 * It wraps XState's pure `transition()`; nothing here touches a clock, a
 * socket or a disk. The simulator and the TCP runtime differ only in how they
 * carry out the returned effects.
 */
export function start<M extends AnyStateMachine>(machine: M, input: InputFrom<M>): [SnapshotFrom<M>, Effect[]] {
  const [snapshot, actions] = initialTransition(machine, input);
  return [snapshot as SnapshotFrom<M>, effectsFromActions(actions)];
}

export function step<M extends AnyStateMachine>(machine: M, snapshot: SnapshotFrom<M>, event: EventFromLogic<M>): [SnapshotFrom<M>, Effect[]] {
  const [next, actions] = transition(machine, snapshot, event);
  return [next as SnapshotFrom<M>, effectsFromActions(actions)];
}
