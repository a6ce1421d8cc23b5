import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate';

/**
 * Every step a machine's definition allows, as leaf-to-leaf edges labelled
 * by event type: `from --event--> to`, where `to` is where the machine can
 * come to rest after the event (entering initial children and following any
 * eventless `always` branch). Guards are not evaluated — every guarded
 * branch counts — so the graph over-approximates the machine by exactly the
 * data its guards read, and a logged step outside it is certainly not a
 * step of the machine.
 */
export interface TransitionGraph {
  /** Leaf paths where a fresh instance can rest (its initial state, after `always`). */
  readonly initial: ReadonlySet<string>;
  /** `from|event` → possible `to` leaf paths. */
  readonly edges: ReadonlyMap<string, ReadonlySet<string>>;
}

export function transitionGraph(machine: AnyStateMachine): TransitionGraph {
  const edges = new Map<string, Set<string>>();
  const alphabet = new Set(leaves(machine.root).flatMap((leaf) => [...eventTypesAt(leaf)]));
  for (const leaf of leaves(machine.root)) {
    // An event of the machine's alphabet that this state does not handle is ignored: the machine stays where it is
    // (a runtime feeds it such events, e.g. a late piece.stored reaching a move that a restart interrupted).
    const handled = eventTypesAt(leaf);
    for (const eventType of alphabet) if (!handled.has(eventType)) edges.set(`${pathOf(leaf)}|${eventType}`, new Set([pathOf(leaf)]));
    for (const eventType of handled) {
      const targets = new Set<string>();
      for (const definition of transitionsFor(leaf, eventType)) {
        const destinations = definition.target && definition.target.length > 0 ? definition.target : [leaf];
        for (const destination of destinations) for (const rest of restingLeaves(destination, new Set())) targets.add(rest);
      }
      // Every branch may be guarded off: the event is then ignored and the machine stays.
      targets.add(pathOf(leaf));
      edges.set(`${pathOf(leaf)}|${eventType}`, targets);
    }
  }
  return { initial: restingLeaves(machine.root, new Set()), edges };
}

/** A logged XState value (`"a"` or `{"a":{"b":"c"}}`) as a leaf path `a.b.c`. */
export function leafPathOfValue(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value);
    if (entries.length === 1) {
      const [key, inner] = entries[0]!;
      return `${key}.${leafPathOfValue(inner)}`;
    }
  }
  throw new Error(`not a single-region state value: ${JSON.stringify(value)}`);
}

function pathOf(node: AnyStateNode): string {
  return node.path.join('.');
}

function childrenOf(node: AnyStateNode): AnyStateNode[] {
  return Object.values(node.states ?? {}) as AnyStateNode[];
}

function leaves(node: AnyStateNode): AnyStateNode[] {
  const children = childrenOf(node);
  return children.length === 0 ? [node] : children.flatMap(leaves);
}

function eventTypesAt(leaf: AnyStateNode): Set<string> {
  const types = new Set<string>();
  for (let node: AnyStateNode | undefined = leaf; node; node = node.parent) {
    for (const eventType of (node.transitions as Map<string, AnyTransitionDefinition[]>).keys()) types.add(eventType);
  }
  return types;
}

/** The innermost handlers of an event, as XState selects them (a child's handlers shadow its ancestors'). */
function transitionsFor(leaf: AnyStateNode, eventType: string): AnyTransitionDefinition[] {
  const found: AnyTransitionDefinition[] = [];
  for (let node: AnyStateNode | undefined = leaf; node; node = node.parent) {
    const candidates = (node.transitions as Map<string, AnyTransitionDefinition[]>).get(eventType);
    // Guarded handlers fall through to an ancestor's when every guard fails, so all levels count.
    if (candidates) found.push(...candidates);
  }
  return found;
}

/** Where a machine entering `node` can come to rest: initial children, then any `always` branch (bounded by `seen`). */
function restingLeaves(node: AnyStateNode, seen: Set<string>): Set<string> {
  const key = pathOf(node);
  const result = new Set<string>();
  if (seen.has(key)) return result;
  seen.add(key);
  const initialTarget = node.initial?.target?.[0] as AnyStateNode | undefined;
  if (childrenOf(node).length > 0 && initialTarget) return restingLeaves(initialTarget, seen);
  result.add(key);
  for (let cursor: AnyStateNode | undefined = node; cursor; cursor = cursor.parent) {
    for (const definition of (cursor.always ?? []) as AnyTransitionDefinition[]) {
      for (const target of definition.target ?? []) for (const rest of restingLeaves(target, new Set(seen))) result.add(rest);
    }
  }
  return result;
}
