import { createActor } from 'xstate';
import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition, EventObject } from 'xstate';

/**
 * Measures which state nodes and which transitions of a machine definition a
 * set of event paths exercises. Transitions are counted from XState's own
 * microstep inspection, so guarded alternatives and eventless (`always`)
 * transitions are told apart exactly as the interpreter takes them.
 */
export interface MachineInventory {
  stateIds: Set<string>;
  transitionKeys: Map<AnyTransitionDefinition, string>;
}

export function inventory(machine: AnyStateMachine): MachineInventory {
  const stateIds = new Set<string>();
  const transitionKeys = new Map<AnyTransitionDefinition, string>();
  const visit = (node: AnyStateNode) => {
    stateIds.add(node.id);
    for (const [eventType, definitions] of node.transitions) {
      definitions.forEach((definition, index) => transitionKeys.set(definition, `${node.id} --${eventType}#${index}-->`));
    }
    (node.always ?? []).forEach((definition, index) => transitionKeys.set(definition, `${node.id} --always#${index}-->`));
    for (const child of Object.values(node.states) as AnyStateNode[]) visit(child);
  };
  visit(machine.root);
  return { stateIds, transitionKeys };
}

export class CoverageRecorder {
  readonly visitedStates = new Set<string>();
  readonly takenTransitions = new Set<string>();
  readonly #inventory: MachineInventory;

  constructor(readonly machine: AnyStateMachine) {
    this.#inventory = inventory(machine);
  }

  /** Runs one path in an interpreter with inspection, recording what it covers. */
  replay(input: unknown, events: readonly EventObject[]): void {
    const actor = createActor(this.machine, {
      input,
      inspect: (inspection) => {
        if (inspection.type !== '@xstate.microstep') return;
        // Transient states (left by an eventless transition) appear only in microsteps.
        this.#recordStates(inspection.snapshot as { _nodes?: AnyStateNode[] });
        for (const definition of (inspection as unknown as { _transitions: AnyTransitionDefinition[] })._transitions) {
          const key = this.#inventory.transitionKeys.get(definition);
          if (key !== undefined) this.takenTransitions.add(key);
          // The source of a taken transition was active, even if no snapshot ever rested in it.
          for (let node: AnyStateNode | undefined = definition.source; node; node = node.parent) this.visitedStates.add(node.id);
        }
      },
    });
    actor.subscribe({ next: (snapshot) => this.#recordStates(snapshot), error: () => {} });
    actor.start();
    this.#recordStates(actor.getSnapshot());
    for (const event of events) actor.send(event);
    actor.stop();
  }

  missingStates(): string[] {
    return [...this.#inventory.stateIds].filter((id) => !this.visitedStates.has(id));
  }

  missingTransitions(): string[] {
    return [...this.#inventory.transitionKeys.values()].filter((key) => !this.takenTransitions.has(key));
  }

  report(): string {
    return `${this.machine.id}: ${this.visitedStates.size}/${this.#inventory.stateIds.size} states, ` +
      `${this.takenTransitions.size}/${this.#inventory.transitionKeys.size} transitions covered`;
  }

  #recordStates(snapshot: { _nodes?: AnyStateNode[] }): void {
    for (const node of snapshot._nodes ?? []) this.visitedStates.add(node.id);
  }
}
