import { assert } from '../identifiers.js';

/**
 * A bounded first-in-first-out set of strings, as an immutable value with
 * constant-time `has` and amortised constant-time `remember`: the forwarded
 * writes an owner executed (`sender|requestId`), remembered to run each once.
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
interface OriginLog {
  readonly origins: string[];
  readonly indexOf: Map<string, number>;
}

export interface RememberedOrigins {
  readonly log: OriginLog;
  readonly start: number;
  readonly end: number;
}

const compactionFactor = 2;

export function noOriginsRemembered(): RememberedOrigins {
  return { log: { origins: [], indexOf: new Map() }, start: 0, end: 0 };
}

export function isRemembered(remembered: RememberedOrigins, origin: string): boolean {
  const index = remembered.log.indexOf.get(origin);
  return index !== undefined && index >= remembered.start && index < remembered.end;
}

/** The new value remembers `origin` too and, beyond `max` strings, forgets the oldest. */
export function remember(remembered: RememberedOrigins, origin: string, max: number): RememberedOrigins {
  assert(Number.isSafeInteger(max) && max >= 1, 'a positive bound on remembered origins');
  let { log, start, end } = remembered;
  if (end !== log.origins.length || log.indexOf.has(origin) || log.origins.length >= compactionFactor * max) {
    const origins = log.origins.slice(start, end);
    log = { origins, indexOf: new Map(origins.map((kept, index) => [kept, index])) };
    start = 0;
    end = origins.length;
    if (log.indexOf.has(origin)) return { log, start, end }; // Already remembered: unchanged.
  }
  log.origins.push(origin);
  log.indexOf.set(origin, end);
  end += 1;
  return { log, start: Math.max(start, end - max), end };
}

/** The remembered strings, oldest first (for fingerprints and status). */
export function rememberedList(remembered: RememberedOrigins): string[] {
  return remembered.log.origins.slice(remembered.start, remembered.end);
}
