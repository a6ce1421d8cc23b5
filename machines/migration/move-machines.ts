import type { MoveKind } from './checkpoint.js';
import { piecewiseMoveMachine } from './piecewise-move.machine.js';
import { unitMoveMachine } from './unit-move.machine.js';

export type MoveMachine = typeof unitMoveMachine | typeof piecewiseMoveMachine;

export function moveMachineFor(kind: MoveKind): MoveMachine {
  return kind === 'unit' ? unitMoveMachine : piecewiseMoveMachine;
}
