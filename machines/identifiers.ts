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

/** Programmer errors crash loudly; protocol outcomes are returned as values. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

export function assertNever(value: never, what: string): never {
  throw new Error(`unhandled ${what}: ${JSON.stringify(value)}`);
}
