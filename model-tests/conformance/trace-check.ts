import type { AnyStateMachine } from 'xstate';
import { piecewiseMoveMachine } from '../../machines/migration/piecewise-move.machine.js';
import { unitMoveMachine } from '../../machines/migration/unit-move.machine.js';
import { replicaMachine } from '../../machines/replica/replica.machine.js';
import { requestRoutingMachine } from '../../machines/routing/request-routing.machine.js';
import type { TransitionGraph } from './transition-graph.js';
import { leafPathOfValue, transitionGraph } from './transition-graph.js';

/**
 * Trace conformance: the structured transition log a real server writes
 * (`trace.jsonl`, one line per machine transition, plus a `start` line each
 * time a server process starts) must be a valid path of the machines. Each
 * logged step must be an edge of its machine's transition graph, and the
 * steps of one instance must chain: each starts where the previous one
 * ended. A new process starts every chain afresh, from the state its
 * durable records rebuild.
 */
export interface TraceLine {
  readonly server: string;
  readonly type: 'trace' | 'start';
  readonly machine?: string;
  readonly instance?: string;
  readonly event?: string;
  readonly from?: string;
  readonly to?: string;
}

export interface TraceCheck {
  readonly steps: number;
  readonly instances: number;
  readonly starts: number;
  readonly problems: string[];
  /** How many logged steps each machine contributed. */
  readonly stepsByMachine: Record<string, number>;
}

const graphs: Record<string, TransitionGraph> = Object.fromEntries(
  ([unitMoveMachine, piecewiseMoveMachine, replicaMachine, requestRoutingMachine] as AnyStateMachine[]).map((machine) => [machine.id, transitionGraph(machine)]),
);

/** The routing machine's first logged step is its creation, from this pseudo-state. */
const receivedPseudoState = 'received';
const problemsMax = 50;

export function checkTrace(lines: readonly TraceLine[]): TraceCheck {
  const problems: string[] = [];
  const lastState = new Map<string, string>();
  const stepsByMachine: Record<string, number> = {};
  let steps = 0;
  let starts = 0;
  const instances = new Set<string>();
  const report = (problem: string) => { if (problems.length < problemsMax) problems.push(problem); };
  for (const [index, line] of lines.entries()) {
    if (line.type === 'start') {
      starts += 1;
      for (const key of [...lastState.keys()]) if (key.startsWith(`${line.server}|`)) lastState.delete(key);
      continue;
    }
    const graph = line.machine ? graphs[line.machine] : undefined;
    if (!graph || !line.instance || !line.event || line.from === undefined || line.to === undefined) {
      report(`line ${index + 1}: not a transition of a known machine: ${JSON.stringify(line)}`);
      continue;
    }
    steps += 1;
    stepsByMachine[line.machine!] = (stepsByMachine[line.machine!] ?? 0) + 1;
    const from = leafPathOfValue(JSON.parse(line.from));
    const to = leafPathOfValue(JSON.parse(line.to));
    const key = `${line.server}|${line.machine}|${line.instance}`;
    instances.add(key);
    const where = `line ${index + 1} (${line.server} ${line.machine} ${line.instance})`;
    if (from === receivedPseudoState) {
      if (line.event !== 'request.received' || !graph.initial.has(to)) report(`${where}: created in ${to}, which is not an initial state`);
    } else {
      const previous = lastState.get(key);
      if (previous === undefined && !graph.initial.has(from)) report(`${where}: the instance's first step leaves ${from}, which no fresh or recovered instance rests in`);
      if (previous !== undefined && previous !== from) report(`${where}: ${line.event} from ${from}, but the instance was in ${previous}`);
      if (!graph.edges.get(`${from}|${line.event}`)?.has(to)) report(`${where}: ${from} --${line.event}--> ${to} is not a step of ${line.machine}`);
    }
    lastState.set(key, to);
  }
  return { steps, instances: instances.size, starts, problems, stepsByMachine };
}
