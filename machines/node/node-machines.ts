import type { MoveKind } from '../migration/checkpoint.js';
import { piecewiseMoveMachine } from '../migration/piecewise-move.machine.js';
import { unitMoveMachine } from '../migration/unit-move.machine.js';
import { replicaMachine } from '../replica/replica.machine.js';
import { requestRoutingMachine } from '../routing/request-routing.machine.js';

/**
 * The machines a node runs. Always the real ones, except in the explorer's
 * proof that its properties bite, which runs a node on deliberately broken
 * variants (made with XState's `machine.provide`).
 */
export interface NodeMachines {
  readonly unitMove: typeof unitMoveMachine;
  readonly piecewiseMove: typeof piecewiseMoveMachine;
  readonly replica: typeof replicaMachine;
  readonly requestRouting: typeof requestRoutingMachine;
}

export const standardMachines: NodeMachines = {
  unitMove: unitMoveMachine,
  piecewiseMove: piecewiseMoveMachine,
  replica: replicaMachine,
  requestRouting: requestRoutingMachine,
};

export function moveMachineOf(machines: NodeMachines, kind: MoveKind): NodeMachines['unitMove'] | NodeMachines['piecewiseMove'] {
  return kind === 'unit' ? machines.unitMove : machines.piecewiseMove;
}
