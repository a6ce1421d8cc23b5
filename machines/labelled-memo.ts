import type { AnyStateMachine, EventFromLogic, InputFrom, SnapshotFrom } from 'xstate';
import type { Effect } from './effects.js';
import { start, step } from './step.js';

/**
 * `start` and `step` for a machine run once per request, memoised so that the
 * machine runs once per distinct situation rather than once per request.
 *
 * Theory of operation. Some input fields are *labels*: the machine only
 * copies them into its context and into effect parameters (the routing
 * machine's `requestId` and `pageKey`), and everything else it reads takes
 * one of a few values. So the result of a start (or of a step) is the same
 * for every input (or snapshot and event) that agrees outside the labels, up
 * to the labels themselves. On the first such start or step (a miss) the real
 * machine runs and its result is returned unchanged. Then the machine runs
 * again with sentinel labels, the real labels are put back into that result,
 * and only if this reproduces the real result exactly is it kept as the
 * template for that situation. A later start or step in the same situation
 * (a hit) copies the template and puts its own labels in: top-level fields of
 * the context and of each effect that hold a sentinel, and sentinel text
 * inside their strings (the routing machine's timer ids name the request). A
 * template whose sentinel sits anywhere else fails the check and is never
 * kept. An event that mentions a label's text (a timer id) is not memoised:
 * its situation would never recur. The machine stays the only source of
 * decisions: a template is a machine result, and differential tests
 * (model-tests/node/labelled-memo.test.ts) compare hits with real starts and
 * steps, and whole simulated groups with the memo on and off.
 *
 * Bounds: at most `templatesPerMachineMax` templates per machine; the memo is
 * emptied when full. Keys are looked up without building strings (see
 * `MachineMemo`).
 */
type Labels = Readonly<Record<string, unknown>>;
type Result = [unknown, Effect[]];
type Snapshot = { readonly value: unknown; readonly status: string; readonly context: Readonly<Record<string, unknown>>; readonly [situationKey]?: string } & Readonly<Record<string, unknown>>;

/** Where a label goes in a record: the whole field, or sentinel text inside the field's string. */
interface LabelSlot {
  readonly field: string;
  readonly label: string;
  readonly sentinel: unknown;
  readonly inText: boolean;
  /**
   * For sentinel text in a field no other slot writes: the template's text cut
   * at each sentinel, so the relabelled text is these parts joined by the
   * label (as `replaceAll` would make it, without a callback per call).
   */
  readonly textParts: readonly string[] | null;
}
interface Template {
  readonly snapshot: Snapshot;
  readonly contextSlots: readonly LabelSlot[];
  readonly effects: readonly Effect[];
  readonly effectSlots: ReadonlyArray<readonly LabelSlot[]>;
}

/** A node of the start trie: one edge per key token (see `startPath`); a template (or null: never memoise) under `pathEnd`. */
type TrieNode = Map<unknown, unknown>;

/**
 * One machine's memo. Keys are looked up without building a string per call:
 * a start's input is walked field by field down a trie of Maps whose edges
 * are the field names and values themselves (strings, numbers and the like
 * carry their hash, so each edge is one cheap lookup), and a step is looked
 * up by its snapshot's situation (a string computed once per snapshot, see
 * `situationKey`) and then by its event's JSON (a few dozen bytes). Joining
 * them into one key string meant hashing some 400 bytes of fresh text per
 * call.
 */
interface MachineMemo {
  readonly starts: TrieNode;
  readonly steps: Map<string, Map<string, Template | null>>;
  /** Templates (and refusals) held in both, at most `templatesPerMachineMax`. */
  entries: number;
}

export const templatesPerMachineMax = 256;

/** Switch and counters, for the differential tests (memo off = always the real machine) and for benchmarks. */
export const labelledMemo = { enabled: true, hits: 0, misses: 0 };

const memos = new WeakMap<AnyStateMachine, MachineMemo>();
/**
 * Each snapshot's situation, computed once, kept on the snapshot under this
 * symbol: a template's snapshot holds it as an own enumerable property, so
 * every snapshot made from the template (a spread) carries it at no cost; a
 * snapshot the machine made gets it, not enumerable, when first stepped.
 * (A WeakMap entry per snapshot, as before, cost every memoised start a map
 * insertion and the collector an ephemeron per live request.) XState builds
 * each snapshot from named fields (`createMachineSnapshot`), so a situation
 * never passes to a snapshot it does not describe.
 */
const situationKey = Symbol('situation');
const sentinelText = '\u0000label\u0000';

// Trie tokens that no field name or value can be: a label's value, the bounds of a nested object or array, the end of the input.
const labelToken = Symbol('label');
const objectOpen = Symbol('{');
const arrayOpen = Symbol('[');
const nestingClose = Symbol('}');
const pathEnd = Symbol('end');

/** The memo of `machine`, emptied first when it holds `templatesPerMachineMax` entries (so an entry added now fits). */
function memoOf(machine: AnyStateMachine): MachineMemo {
  let memo = memos.get(machine);
  if (memo === undefined || memo.entries >= templatesPerMachineMax) {
    memo = { starts: new Map(), steps: new Map(), entries: 0 };
    memos.set(machine, memo);
  }
  return memo;
}

export function startLabelled<M extends AnyStateMachine>(machine: M, input: InputFrom<M>, labelNames: readonly string[]): [SnapshotFrom<M>, Effect[]] {
  if (!labelledMemo.enabled) return start(machine, input);
  const fields = input as Labels;
  const memo = memoOf(machine);
  const leaf = startPath(memo.starts, fields, labelNames, false);
  const template = leaf?.get(pathEnd) as Template | null | undefined;
  if (template) {
    labelledMemo.hits += 1;
    return fromTemplate(template, fields) as [SnapshotFrom<M>, Effect[]];
  }
  // A miss (or a refusal): the path is made only now, so that hits allocate nothing, and the template or refusal is
  // kept at its end. (The machine runs are passed as inline arrows: tsx names every const function it creates.)
  const made = leaf === undefined || !isSpellable(fields) ? undefined : startPath(memo.starts, fields, labelNames, true);
  if (!made) {
    labelledMemo.misses += 1;
    return start(machine, input);
  }
  return memoised(memo, made, pathEnd, fields, labelNames,
    () => start(machine, input), (sentinels) => start(machine, { ...fields, ...sentinels } as never)) as [SnapshotFrom<M>, Effect[]];
}

/**
 * Walks the trie along the input's fields outside the labels, in the input's
 * own order (another order only costs a miss): each field name, then its
 * value — a primitive as itself, a label as `labelToken`, a plain object or
 * array as its fields or items between bounds. Two inputs reach the same
 * node only if they agree outside the labels, field for field and value for
 * value (a key built as JSON, as before, also had to tell `undefined` from
 * absent). Returns the last node, null when a node is missing and `make` is
 * false, and undefined when the input holds a value the walk cannot spell (a
 * function, a Map, a class instance): such a start is not memoised, as two
 * Maps, say, are not told apart by what the walk could see of them.
 */
function startPath(root: TrieNode, fields: Labels, labelNames: readonly string[], make: boolean): TrieNode | null | undefined {
  let node: TrieNode | null | undefined = root;
  for (const name in fields) {
    node = edge(node, name, make);
    if (node === null) return null;
    node = labelNames.includes(name) ? edge(node, labelToken, make) : valuePath(node, fields[name], make);
    if (node === null || node === undefined) return node;
  }
  return node;
}

function valuePath(node: TrieNode, value: unknown, make: boolean): TrieNode | null | undefined {
  if (typeof value !== 'object' || value === null) return typeof value === 'function' ? undefined : edge(node, value, make);
  let next: TrieNode | null | undefined;
  if (Array.isArray(value)) {
    next = edge(node, arrayOpen, make);
    for (const item of value) {
      if (next === null || next === undefined) return next;
      next = valuePath(next, item, make);
    }
  } else {
    const prototype: unknown = Object.getPrototypeOf(value);
    if (prototype !== Object.prototype && prototype !== null) return undefined;
    next = edge(node, objectOpen, make);
    for (const name in value) {
      if (next === null || next === undefined) return next;
      next = edge(next, name, make);
      if (next === null) return null;
      next = valuePath(next, (value as Labels)[name], make);
    }
  }
  if (next === null || next === undefined) return next;
  return edge(next, nestingClose, make);
}

/** Whether `startPath` can walk the value (checked before a path is made, so that no part of a path is made for nothing). */
function isSpellable(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return typeof value !== 'function';
  if (Array.isArray(value)) return value.every(isSpellable);
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return false;
  for (const name in value) if (!isSpellable((value as Labels)[name])) return false;
  return true;
}

function edge(node: TrieNode, token: unknown, make: boolean): TrieNode | null {
  let next = node.get(token) as TrieNode | undefined;
  if (next === undefined) {
    if (!make) return null;
    next = new Map();
    node.set(token, next);
  }
  return next;
}

export function stepLabelled<M extends AnyStateMachine>(machine: M, snapshot: SnapshotFrom<M>, event: EventFromLogic<M>, labelNames: readonly string[]): [SnapshotFrom<M>, Effect[]] {
  if (!labelledMemo.enabled) return step(machine, snapshot, event);
  const current = snapshot as unknown as Snapshot;
  const context = current.context;
  const eventText = JSON.stringify(event);
  if (labelNames.some((name) => typeof context[name] === 'string' && eventText.includes(context[name] as string))) return step(machine, snapshot, event);
  let situation = current[situationKey];
  if (situation === undefined) {
    situation = situationOf(current, labelNames);
    Object.defineProperty(current, situationKey, { value: situation, enumerable: false });
  }
  const memo = memoOf(machine);
  let bySituation = memo.steps.get(situation);
  if (bySituation === undefined) {
    bySituation = new Map();
    memo.steps.set(situation, bySituation);
  }
  return memoised(memo, bySituation, eventText, context, labelNames, () => step(machine, snapshot, event),
    (sentinels) => step(machine, { ...current, context: { ...context, ...sentinels } } as never, event)) as [SnapshotFrom<M>, Effect[]];
}

/** Looks `key` up in `entries` (one of `memo`'s maps); on a miss, runs the machine and keeps a template (or a refusal) there. */
function memoised<K>(memo: MachineMemo, entries: Map<K, unknown>, key: K, fields: Labels, labelNames: readonly string[], real: () => Result, withSentinels: (sentinels: Labels) => Result): Result {
  const template = entries.get(key) as Template | null | undefined;
  if (template) {
    labelledMemo.hits += 1;
    return fromTemplate(template, fields);
  }
  labelledMemo.misses += 1;
  const result = real();
  if (template === null) return result;
  entries.set(key, templateOf(fields, labelNames, result, withSentinels));
  memo.entries += 1;
  return result;
}

function templateOf(fields: Labels, labelNames: readonly string[], real: Result, withSentinels: (sentinels: Labels) => Result): Template | null {
  const sentinels: Record<string, unknown> = {};
  for (const [index, name] of labelNames.entries()) {
    sentinels[name] = typeof fields[name] === 'string' ? `${sentinelText}${index}${sentinelText}` : { labelSentinel: index };
  }
  const [machineSnapshot, effects] = withSentinels(sentinels) as [Snapshot, Effect[]];
  // A snapshot with fields other than XState's own is never memoised: `snapshotCopy` would leave them out.
  if (Object.keys(machineSnapshot).join() !== snapshotFieldsText) return null;
  const situation = situationOf(machineSnapshot, labelNames);
  // Enumerable, so that every copy made from the template carries it (see `situationKey`).
  const snapshot = snapshotCopy(machineSnapshot, machineSnapshot.context, situation);
  const template: Template = {
    snapshot, contextSlots: slotsOf(snapshot.context, sentinels),
    effects, effectSlots: effects.map((effect) => slotsOf(effect, sentinels)),
  };
  return comparable(fromTemplate(template, fields)) === comparable(real) ? template : null;
}

/** Everything a step of the machine reads from a snapshot, but the labels. */
function situationOf(snapshot: Snapshot, labelNames: readonly string[]): string {
  const { context } = snapshot;
  const names = Object.keys(context);
  return JSON.stringify([snapshot.value, snapshot.status, snapshot['children'], snapshot['historyValue'], names, names.map((name) => labelNames.includes(name) ? null : context[name])]);
}

function slotsOf(record: Readonly<Record<string, unknown>>, sentinels: Labels): LabelSlot[] {
  const slots: LabelSlot[] = [];
  for (const [field, value] of Object.entries(record)) {
    const first = slots.length;
    for (const [label, sentinel] of Object.entries(sentinels)) {
      if (value === sentinel) slots.push({ field, label, sentinel, inText: false, textParts: null });
      else if (typeof value === 'string' && typeof sentinel === 'string' && value.includes(sentinel)) slots.push({ field, label, sentinel, inText: true, textParts: null });
    }
    // A field with one slot of sentinel text is relabelled from its parts; with several, each replaces in turn.
    if (slots.length === first + 1 && slots[first]!.inText) slots[first] = { ...slots[first]!, textParts: (value as string).split(slots[first]!.sentinel as string) };
  }
  return slots;
}

/**
 * A machine's context, relabelled: the same as `relabelled`, but a call site of
 * its own. A context always has one shape per machine, so the spread here
 * stays monomorphic; shared with the effects (a shape per effect type), it
 * was megamorphic, a slow generic copy for every context.
 */
function relabelledContext<T extends object>(record: T, slots: readonly LabelSlot[], fields: Labels): T {
  const copy: Record<string, unknown> = { ...(record as Record<string, unknown>) };
  return relabelInPlace(copy, slots, fields) as T;
}

function relabelled<T extends object>(record: T, slots: readonly LabelSlot[], fields: Labels): T {
  // Always a fresh record, as the real machine returns.
  const copy: Record<string, unknown> = { ...(record as Record<string, unknown>) };
  return relabelInPlace(copy, slots, fields) as T;
}

function relabelInPlace(copy: Record<string, unknown>, slots: readonly LabelSlot[], fields: Labels): Record<string, unknown> {
  for (let index = 0; index < slots.length; index += 1) {
    const { field, label, sentinel, inText, textParts } = slots[index]!;
    if (!inText) copy[field] = fields[label];
    else if (textParts !== null) copy[field] = textParts.join(String(fields[label]));
    else copy[field] = (copy[field] as string).replaceAll(sentinel as string, () => String(fields[label]));
  }
  return copy;
}

function fromTemplate(template: Template, fields: Labels): Result {
  const { snapshot } = template;
  const next = snapshotCopy(snapshot, relabelledContext(snapshot.context, template.contextSlots, fields), snapshot[situationKey]!);
  const effects: Effect[] = [];
  for (let index = 0; index < template.effects.length; index += 1) effects.push(relabelled(template.effects[index]!, template.effectSlots[index]!, fields));
  return [next, effects];
}

/** XState's own fields of a machine snapshot, in the order `createMachineSnapshot` makes them. */
const snapshotFieldsText = ['status', 'output', 'error', 'machine', 'context', '_nodes', 'value', 'tags', 'children', 'historyValue', 'matches', 'hasTag', 'can', 'getMeta', 'toJSON'].join();

/**
 * A snapshot built field by field, with `context`: every template's snapshot
 * and every copy of one have this one object shape. A spread copied the shape
 * of its source, and the machine's snapshots come in several (V8 generalises
 * a field's representation by making new shapes), so the spread that copied
 * templates met more shapes than its cache holds once moves ran and went
 * through V8's slow generic copy: `fromTemplate` took 16 times its steady
 * CPU per request while a client's pages moved (a CPU profile of s1 in
 * `bench:nbd`'s moves away and back, 27 Nov).
 */
function snapshotCopy(source: Snapshot, context: Readonly<Record<string, unknown>>, situation: string): Snapshot {
  return {
    status: source.status, output: source['output'], error: source['error'], machine: source['machine'], context,
    _nodes: source['_nodes'], value: source.value, tags: source['tags'],
    children: { ...(source['children'] as object) }, historyValue: { ...(source['historyValue'] as object) },
    matches: source['matches'], hasTag: source['hasTag'], can: source['can'], getMeta: source['getMeta'], toJSON: source['toJSON'],
    [situationKey]: situation,
  };
}

/** What must agree between a rebuilt result and the real one: everything but the machine definition and methods. */
function comparable([snapshot, effects]: Result): string {
  const { value, status, context, output, error, children, historyValue, tags } = snapshot as Record<string, unknown>;
  return JSON.stringify([value, status, context, output, error, children, historyValue, [...(tags as Set<string>)], effects]);
}
