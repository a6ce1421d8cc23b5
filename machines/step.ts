import { createActor, initialTransition, transition } from 'xstate';
import type { ActorScope, AnyStateMachine, EventFromLogic, InputFrom, SnapshotFrom } from 'xstate';
import type { Effect } from './effects.js';
import { effectsFromActions } from './effects.js';

/**
 * The one pure step every runtime calls: `(snapshot, event) → [snapshot, effects]`.
 * Nothing here touches a clock, a socket or a disk. The simulator and the TCP
 * runtime differ only in how they carry out the returned effects.
 *
 * It does what XState's pure `transition()` does — run the machine's own
 * `transition` with an inert actor scope that collects actions instead of
 * executing them — but builds that scope once per machine instead of once per
 * call. (`transition()` builds a throw-away actor each time, which computes
 * and discards an initial snapshot; that was a fifth of the explorer's time.)
 * A differential test (model-tests/machines/fast-step.test.ts) checks that
 * both give identical snapshots and effects.
 */
interface CollectingScope {
  readonly scope: ActorScope<never, never>;
  collected: unknown[];
}

const scopes = new WeakMap<AnyStateMachine, CollectingScope>();

function collectingScope(machine: AnyStateMachine): CollectingScope {
  let entry = scopes.get(machine);
  if (entry) return entry;
  const self = createActor(machine);
  const collecting: CollectingScope = {
    collected: [],
    scope: {
      self, id: '', sessionId: '', system: self.system,
      defer: () => undefined, logger: () => undefined, stopChild: () => undefined, emit: () => undefined,
      actionExecutor: (action: unknown) => { collecting.collected.push(action); },
    } as unknown as ActorScope<never, never>,
  };
  entry = collecting;
  scopes.set(machine, entry);
  return entry;
}

export function start<M extends AnyStateMachine>(machine: M, input: InputFrom<M>): [SnapshotFrom<M>, Effect[]] {
  const scope = collectingScope(machine);
  scope.collected = [];
  const snapshot = machine.getInitialSnapshot(scope.scope as never, input);
  return [snapshot as SnapshotFrom<M>, effectsFromActions(scope.collected as never)];
}

export function step<M extends AnyStateMachine>(machine: M, snapshot: SnapshotFrom<M>, event: EventFromLogic<M>): [SnapshotFrom<M>, Effect[]] {
  const scope = collectingScope(machine);
  scope.collected = [];
  const next = machine.transition(snapshot as never, event, scope.scope as never);
  return [next as SnapshotFrom<M>, effectsFromActions(scope.collected as never)];
}

/** The same step through XState's public `initialTransition()`, for the differential test. */
export function startViaPublicTransition<M extends AnyStateMachine>(machine: M, input: InputFrom<M>): [SnapshotFrom<M>, Effect[]] {
  const [snapshot, actions] = initialTransition(machine, input);
  return [snapshot as SnapshotFrom<M>, effectsFromActions(actions)];
}

/** The same step through XState's public `transition()`, for the differential test. */
export function stepViaPublicTransition<M extends AnyStateMachine>(machine: M, snapshot: SnapshotFrom<M>, event: EventFromLogic<M>): [SnapshotFrom<M>, Effect[]] {
  const [next, actions] = transition(machine, snapshot, event);
  return [next as SnapshotFrom<M>, effectsFromActions(actions)];
}
