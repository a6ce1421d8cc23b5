import type { SnapshotFrom } from 'xstate';
import type { MoveKind } from './checkpoint.js';
import { piecewiseMoveMachine } from './piecewise-move.machine.js';
import { unitMoveMachine } from './unit-move.machine.js';

export type MoveMachine = typeof unitMoveMachine | typeof piecewiseMoveMachine;

export function moveMachineFor(kind: MoveKind): MoveMachine {
  return kind === 'unit' ? unitMoveMachine : piecewiseMoveMachine;
}

type MoveSnapshot = SnapshotFrom<MoveMachine>;

/** Given up by the administrator: its abandoned record is being made durable, or is and waits for its destination. */
export function isAbandoning(snapshot: MoveSnapshot): boolean {
  return snapshot.matches('abandoning') || snapshot.matches('abandoned');
}

/** Still moving its page: not finished, and not abandoned (an abandoned move only waits for its destination's answer). */
export function isUnderWay(snapshot: MoveSnapshot): boolean {
  return snapshot.status === 'active' && !snapshot.matches('abandoned');
}
