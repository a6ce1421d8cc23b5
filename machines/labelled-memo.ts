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
 * emptied when full.
 */
type Labels = Readonly<Record<string, unknown>>;
type Result = [unknown, Effect[]];
type Snapshot = { readonly value: unknown; readonly status: string; readonly context: Readonly<Record<string, unknown>> } & Readonly<Record<string, unknown>>;

/** Where a label goes in a record: the whole field, or sentinel text inside the field's string. */
interface LabelSlot {
  readonly field: string;
  readonly label: string;
  readonly sentinel: unknown;
  readonly inText: boolean;
}
interface Template {
  readonly snapshot: Snapshot;
  /** The situation of every snapshot made from this template (labels do not count). */
  readonly situation: string;
  readonly contextSlots: readonly LabelSlot[];
  readonly effects: readonly Effect[];
  readonly effectSlots: ReadonlyArray<readonly LabelSlot[]>;
}

export const templatesPerMachineMax = 256;

/** Switch and counters, for the differential tests (memo off = always the real machine) and for benchmarks. */
export const labelledMemo = { enabled: true, hits: 0, misses: 0 };

const memos = new WeakMap<AnyStateMachine, Map<string, Template | null>>();
/** Each snapshot's situation, computed once: a snapshot made from a template inherits the template's. */
const situations = new WeakMap<object, string>();
const sentinelText = '\u0000label\u0000';

export function startLabelled<M extends AnyStateMachine>(machine: M, input: InputFrom<M>, labelNames: readonly string[]): [SnapshotFrom<M>, Effect[]] {
  if (!labelledMemo.enabled) return start(machine, input);
  const fields = input as Labels;
  return memoised(machine, startKey(fields, labelNames), fields, labelNames, () => start(machine, input), (sentinels) => start(machine, { ...fields, ...sentinels } as never)) as [SnapshotFrom<M>, Effect[]];
}

/**
 * Every field of a start's input but the labels, with their names, in the
 * input's own order (another order only costs a miss): the input's JSON with
 * each label's value replaced by null. JSON leaves out a field whose value is
 * undefined, which would make it look absent, so such an input spells its
 * names and boxed values out instead (a key of another form, `start:` rather
 * than `start|`, so the two forms never collide).
 */
function startKey(fields: Labels, labelNames: readonly string[]): string {
  const masked: Record<string, unknown> = { ...fields };
  let hasUndefined = false;
  for (const name in masked) {
    if (masked[name] === undefined) hasUndefined = true;
    else if (labelNames.includes(name)) masked[name] = null;
  }
  if (!hasUndefined) return `start|${JSON.stringify(masked)}`;
  const names = Object.keys(fields);
  // Each value boxed: [] for undefined, [value] otherwise, [null] for a label.
  return `start:${JSON.stringify(names)}|${JSON.stringify(names.map((name) => labelNames.includes(name) ? [null] : fields[name] === undefined ? [] : [fields[name]]))}`;
}

export function stepLabelled<M extends AnyStateMachine>(machine: M, snapshot: SnapshotFrom<M>, event: EventFromLogic<M>, labelNames: readonly string[]): [SnapshotFrom<M>, Effect[]] {
  if (!labelledMemo.enabled) return step(machine, snapshot, event);
  const current = snapshot as unknown as Snapshot;
  const context = current.context;
  const eventText = JSON.stringify(event);
  if (labelNames.some((name) => typeof context[name] === 'string' && eventText.includes(context[name] as string))) return step(machine, snapshot, event);
  let situation = situations.get(current);
  if (situation === undefined) {
    situation = situationOf(current, labelNames);
    situations.set(current, situation);
  }
  const key = `step|${situation}|${eventText}`;
  return memoised(machine, key, context, labelNames, () => step(machine, snapshot, event),
    (sentinels) => step(machine, { ...current, context: { ...context, ...sentinels } } as never, event)) as [SnapshotFrom<M>, Effect[]];
}

function memoised(machine: AnyStateMachine, key: string, fields: Labels, labelNames: readonly string[], real: () => Result, withSentinels: (sentinels: Labels) => Result): Result {
  let memo = memos.get(machine);
  if (!memo) {
    memo = new Map();
    memos.set(machine, memo);
  }
  const template = memo.get(key);
  if (template) {
    labelledMemo.hits += 1;
    return fromTemplate(template, fields);
  }
  labelledMemo.misses += 1;
  const result = real();
  if (template === null) return result;
  if (memo.size >= templatesPerMachineMax) memo.clear();
  memo.set(key, templateOf(fields, labelNames, result, withSentinels));
  return result;
}

function templateOf(fields: Labels, labelNames: readonly string[], real: Result, withSentinels: (sentinels: Labels) => Result): Template | null {
  const sentinels: Record<string, unknown> = {};
  for (const [index, name] of labelNames.entries()) {
    sentinels[name] = typeof fields[name] === 'string' ? `${sentinelText}${index}${sentinelText}` : { labelSentinel: index };
  }
  const [snapshot, effects] = withSentinels(sentinels) as [Snapshot, Effect[]];
  const template: Template = {
    snapshot, situation: situationOf(snapshot, labelNames), contextSlots: slotsOf(snapshot.context, sentinels),
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
    for (const [label, sentinel] of Object.entries(sentinels)) {
      if (value === sentinel) slots.push({ field, label, sentinel, inText: false });
      else if (typeof value === 'string' && typeof sentinel === 'string' && value.includes(sentinel)) slots.push({ field, label, sentinel, inText: true });
    }
  }
  return slots;
}

function relabelled<T extends object>(record: T, slots: readonly LabelSlot[], fields: Labels): T {
  // Always a fresh record, as the real machine returns.
  const copy: Record<string, unknown> = { ...(record as Record<string, unknown>) };
  for (const { field, label, sentinel, inText } of slots) {
    copy[field] = inText ? (copy[field] as string).replaceAll(sentinel as string, () => String(fields[label])) : fields[label];
  }
  return copy as T;
}

function fromTemplate(template: Template, fields: Labels): Result {
  const { snapshot } = template;
  const next = {
    ...snapshot, context: relabelled(snapshot.context, template.contextSlots, fields),
    children: { ...(snapshot['children'] as object) }, historyValue: { ...(snapshot['historyValue'] as object) },
  };
  situations.set(next, template.situation);
  return [next, template.effects.map((effect, index) => relabelled(effect, template.effectSlots[index]!, fields))];
}

/** What must agree between a rebuilt result and the real one: everything but the machine definition and methods. */
function comparable([snapshot, effects]: Result): string {
  const { value, status, context, output, error, children, historyValue, tags } = snapshot as Record<string, unknown>;
  return JSON.stringify([value, status, context, output, error, children, historyValue, [...(tags as Set<string>)], effects]);
}
