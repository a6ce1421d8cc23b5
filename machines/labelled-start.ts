import type { AnyStateMachine, InputFrom, SnapshotFrom } from 'xstate';
import type { Effect } from './effects.js';
import { start } from './step.js';

/**
 * `start` for a machine started once per request: memoised, so the machine
 * runs once per distinct input rather than once per request.
 *
 * Theory of operation. Some input fields are *labels*: the machine only
 * copies them into its context and into effect parameters (the routing
 * machine's `requestId` and `pageKey`), and every other field takes one of a
 * few values. So the result of starting the machine is the same for every
 * input that agrees outside the labels, up to the labels themselves. On the
 * first start of such an input (a miss) the real machine runs and its result
 * is returned unchanged. Then the machine runs again with sentinel labels, the
 * real labels are put back into that result, and only if this reproduces the
 * real result exactly is it kept as the template for that input. A later start
 * with the same input outside the labels (a hit) copies the template and puts
 * its own labels in: top-level fields of the context and of each effect that
 * hold a sentinel, and sentinel text inside their strings (the routing
 * machine's timer ids name the request). A template whose sentinel sits
 * anywhere else fails the check and is never kept. The machine stays the only
 * source of decisions: a template is a machine result, and a differential test
 * (model-tests/node/labelled-start.test.ts) compares hits with real starts and
 * whole node runs with the memo on and off.
 *
 * Bounds: at most `templatesPerMachineMax` templates per machine; the memo is
 * emptied when full.
 */
type Labels = Readonly<Record<string, unknown>>;
/** Where a label goes in a record: the whole field, or sentinel text inside the field's string. */
interface LabelSlot {
  readonly field: string;
  readonly label: string;
  readonly sentinel: unknown;
  readonly inText: boolean;
}
interface Template {
  readonly snapshot: { readonly context: Readonly<Record<string, unknown>> } & Record<string, unknown>;
  readonly contextSlots: readonly LabelSlot[];
  readonly effects: readonly Effect[];
  readonly effectSlots: ReadonlyArray<readonly LabelSlot[]>;
}

export const templatesPerMachineMax = 256;

/** Switch and counters, for the differential test (memo off = always the real start) and for benchmarks. */
export const labelledStartMemo = { enabled: true, hits: 0, misses: 0 };

const memos = new WeakMap<AnyStateMachine, Map<string, Template | null>>();
const sentinelText = '\u0000label\u0000';

export function startLabelled<M extends AnyStateMachine>(machine: M, input: InputFrom<M>, labelNames: readonly string[]): [SnapshotFrom<M>, Effect[]] {
  if (!labelledStartMemo.enabled) return start(machine, input);
  let memo = memos.get(machine);
  if (!memo) {
    memo = new Map();
    memos.set(machine, memo);
  }
  const fields = input as Labels;
  const key = memoKey(fields, labelNames);
  const template = memo.get(key);
  if (template) {
    labelledStartMemo.hits += 1;
    return fromTemplate(template, fields) as [SnapshotFrom<M>, Effect[]];
  }
  labelledStartMemo.misses += 1;
  const real = start(machine, input);
  if (template === null) return real;
  if (memo.size >= templatesPerMachineMax) memo.clear();
  memo.set(key, templateOf(machine, fields, labelNames, real));
  return real;
}

/** Every field but the labels, in the input's own order (another order only costs a miss). */
function memoKey(fields: Labels, labelNames: readonly string[]): string {
  const names = Object.keys(fields);
  return `${names.join(',')}|${JSON.stringify(names.map((name) => labelNames.includes(name) ? null : fields[name]))}`;
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

function templateOf(machine: AnyStateMachine, fields: Labels, labelNames: readonly string[], real: [unknown, Effect[]]): Template | null {
  const sentinels: Record<string, unknown> = {};
  for (const [index, name] of labelNames.entries()) {
    sentinels[name] = typeof fields[name] === 'string' ? `${sentinelText}${index}${sentinelText}` : { labelSentinel: index };
  }
  const [snapshot, effects] = start(machine, { ...fields, ...sentinels } as never);
  const context = (snapshot as { context: Readonly<Record<string, unknown>> }).context;
  const template: Template = {
    snapshot: snapshot as unknown as Template['snapshot'], contextSlots: slotsOf(context, sentinels),
    effects, effectSlots: effects.map((effect) => slotsOf(effect, sentinels)),
  };
  const rebuilt = fromTemplate(template, fields);
  return comparable(rebuilt) === comparable(real) ? template : null;
}

function relabelled<T extends object>(record: T, slots: readonly LabelSlot[], fields: Labels): T {
  // Always a fresh record, as a real start returns.
  const copy: Record<string, unknown> = { ...(record as Record<string, unknown>) };
  for (const { field, label, sentinel, inText } of slots) {
    copy[field] = inText ? (copy[field] as string).replaceAll(sentinel as string, () => String(fields[label])) : fields[label];
  }
  return copy as T;
}

function fromTemplate(template: Template, fields: Labels): [unknown, Effect[]] {
  const { snapshot } = template;
  const next = {
    ...snapshot, context: relabelled(snapshot.context, template.contextSlots, fields),
    children: { ...(snapshot['children'] as object) }, historyValue: { ...(snapshot['historyValue'] as object) },
  };
  return [next, template.effects.map((effect, index) => relabelled(effect, template.effectSlots[index]!, fields))];
}

/** What must agree between a rebuilt result and the real one: everything but the machine definition and methods. */
function comparable([snapshot, effects]: [unknown, readonly Effect[]]): string {
  const { value, status, context, output, error, children, historyValue, tags } = snapshot as Record<string, unknown>;
  return JSON.stringify([value, status, context, output, error, children, historyValue, [...(tags as Set<string>)], effects]);
}
