/**
 * Names shared by every machine. Servers are named by strings ("s1") so that
 * logs, traces and diagrams read naturally; a page is named by its volume and
 * its index inside that volume.
 */
export type ServerId = string;

export interface PageKey {
  readonly volume: string;
  readonly page: number;
}

export function pageKeyText(pageKey: PageKey): string {
  return `${pageKey.volume}/${pageKey.page}`;
}

/**
 * The inverse of `pageKeyText`, for maps keyed by page text. The page index
 * follows the last slash (a volume name may hold slashes); text that
 * `pageKeyText` cannot have produced — no slash, an empty volume, a page that
 * is not a non-negative integer in canonical form — is `null`.
 */
export function pageKeyOfText(text: string): PageKey | null {
  const slash = text.lastIndexOf('/');
  if (slash <= 0) return null;
  const pageKey = { volume: text.slice(0, slash), page: Number(text.slice(slash + 1)) };
  return Number.isSafeInteger(pageKey.page) && pageKey.page >= 0 && pageKeyText(pageKey) === text ? pageKey : null;
}

/**
 * The value a record holds under `key` itself, or undefined: never one its
 * prototype holds. Records keyed by names a client or a peer sends (volume
 * names) are plain objects, where `volumes['constructor']` is a function and
 * `volumes['__proto__']` Object.prototype (a review's NBD client asked for an
 * export named `constructor`, and the server closed its connection).
 */
export function ownValue<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** Programmer errors crash loudly; protocol outcomes are returned as values. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

export function assertNever(value: never, what: string): never {
  throw new Error(`unhandled ${what}: ${JSON.stringify(value)}`);
}
