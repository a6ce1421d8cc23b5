import { assert } from '../identifiers.js';

/**
 * A bounded first-in-first-out set of strings, each with a value, as an
 * immutable value with constant-time `has` and amortised constant-time
 * `remember`: the forwarded writes an owner executed (`sender|requestId`),
 * remembered to run each once, with what their first answer said.
 *
 * Theory of operation. A value is a window `[start, end)` over a log that
 * values share. The log only grows, and it records where each string sits, so
 * `has` is one map look-up plus a window check. Remembering appends to the log
 * in place when this value's window ends at the log's end (nobody appended
 * after it) and the string is not in the log at all; the older values still
 * see exactly their windows, because entries past their `end` are outside
 * them. Otherwise — another value branched from the same log already appended
 * (the simulator steps old states again), the string was evicted and comes
 * back, or the log holds `compactionFactor` times the bound — it copies its
 * window into a fresh log first. Each copy costs at most `max` entries and
 * happens at most once per `max` appends on a straight line, so appends stay
 * constant time on average; the log holds at most `compactionFactor * max + 1`
 * strings.
 */
interface OriginLog<V> {
  readonly origins: string[];
  /** The value remembered with each origin, at the same index. */
  readonly values: V[];
  readonly indexOf: Map<string, number>;
}

export interface RememberedOrigins<V> {
  readonly log: OriginLog<V>;
  readonly start: number;
  readonly end: number;
}

const compactionFactor = 2;

export function noOriginsRemembered<V>(): RememberedOrigins<V> {
  return { log: { origins: [], values: [], indexOf: new Map() }, start: 0, end: 0 };
}

export function isRemembered<V>(remembered: RememberedOrigins<V>, origin: string): boolean {
  return rememberedValue(remembered, origin) !== undefined;
}

/** The value remembered with `origin`, or undefined if it is not remembered. */
export function rememberedValue<V>(remembered: RememberedOrigins<V>, origin: string): V | undefined {
  const index = remembered.log.indexOf.get(origin);
  return index !== undefined && index >= remembered.start && index < remembered.end ? remembered.log.values[index] : undefined;
}

/** The new value remembers `origin` (with `value`, which must not be undefined) too and, beyond `max` strings, forgets the oldest. */
export function remember<V>(remembered: RememberedOrigins<V>, origin: string, value: V, max: number): RememberedOrigins<V> {
  assert(Number.isSafeInteger(max) && max >= 1, 'a positive bound on remembered origins');
  assert(value !== undefined, 'a remembered origin has a value');
  let { log, start, end } = remembered;
  if (end !== log.origins.length || log.indexOf.has(origin) || log.origins.length >= compactionFactor * max) {
    const origins = log.origins.slice(start, end);
    log = { origins, values: log.values.slice(start, end), indexOf: new Map(origins.map((kept, index) => [kept, index])) };
    start = 0;
    end = origins.length;
    if (log.indexOf.has(origin)) return { log, start, end }; // Already remembered: unchanged.
  }
  log.origins.push(origin);
  log.values.push(value);
  log.indexOf.set(origin, end);
  end += 1;
  return { log, start: Math.max(start, end - max), end };
}

/** The remembered strings, oldest first (for fingerprints and status). */
export function rememberedList<V>(remembered: RememberedOrigins<V>): string[] {
  return remembered.log.origins.slice(remembered.start, remembered.end);
}

/** The remembered strings with their values, oldest first (for fingerprints). */
export function rememberedEntries<V>(remembered: RememberedOrigins<V>): Array<[string, V]> {
  return rememberedList(remembered).map((origin, offset) => [origin, remembered.log.values[remembered.start + offset] as V]);
}
