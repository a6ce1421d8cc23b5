import type { FileHandle } from 'node:fs/promises';
import { assert } from '../../machines/identifiers.js';

/**
 * A bounded set of open page files, least recently used closed first.
 *
 * A handle is *pinned* while an operation uses it; a pinned handle is never
 * closed, so an I/O call never races a close of its own descriptor. The bound
 * therefore limits idle handles: while more than `capacity` operations run on
 * distinct pages at once the cache holds more handles, and it shrinks back as
 * they finish.
 *
 * Closing is the owner's business (it may first have to fsync a file that was
 * written but not synced): the cache hands every handle it lets go of to
 * `retireHandle`, exactly once, after its last pin is released.
 */
export interface CachedHandle {
  readonly key: string;
  readonly handle: FileHandle;
  pins: number;
  /** Set when the handle left the cache while pinned; it is retired when the last pin is released. */
  retired: boolean;
}

export class FileHandleCache {
  /** Insertion order is recency order: the first entry is the least recently used. */
  readonly #entries = new Map<string, CachedHandle>();
  readonly #capacity: number;
  readonly #retireHandle: (entry: CachedHandle) => void;

  constructor(capacity: number, retireHandle: (entry: CachedHandle) => void) {
    assert(Number.isSafeInteger(capacity) && capacity >= 1, 'a handle cache holds at least one handle');
    this.#capacity = capacity;
    this.#retireHandle = retireHandle;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Pins and returns the cached handle of `key`, marking it most recently used, or returns undefined. */
  pin(key: string): CachedHandle | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    entry.pins += 1;
    return entry;
  }

  /** Adds a freshly opened handle, pinned once for the caller, and retires idle handles beyond the bound. */
  insert(key: string, handle: FileHandle): CachedHandle {
    assert(!this.#entries.has(key), `one open handle per page file (${key})`);
    const entry: CachedHandle = { key, handle, pins: 1, retired: false };
    this.#entries.set(key, entry);
    this.#shrink();
    return entry;
  }

  release(entry: CachedHandle): void {
    assert(entry.pins > 0, `handle of ${entry.key} is pinned when released`);
    entry.pins -= 1;
    if (entry.pins > 0) return;
    if (entry.retired) this.#retireHandle(entry);
    else this.#shrink();
  }

  /** Removes the handle of `key` (if any); it is retired now, or when its last pin is released. */
  remove(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#letGo(entry);
  }

  /** Removes every handle, as `remove` does. */
  removeAll(): void {
    for (const key of [...this.#entries.keys()]) this.remove(key);
  }

  #shrink(): void {
    if (this.#entries.size <= this.#capacity) return;
    for (const entry of [...this.#entries.values()]) {
      if (this.#entries.size <= this.#capacity) return;
      if (entry.pins > 0) continue;
      this.#entries.delete(entry.key);
      this.#letGo(entry);
    }
  }

  #letGo(entry: CachedHandle): void {
    if (entry.pins > 0) entry.retired = true;
    else this.#retireHandle(entry);
  }
}
