import { assert } from '../identifiers.js';

/**
 * An immutable, persistent map from page text (`volume/page`) to a value: the
 * node's per-page records (routes, replicas). A step never edits the state it
 * started from (the simulator keeps old states), so a record stored as a plain
 * object had to be copied whole by every step that changed one page of it:
 * 33 ms per route update for a 65,536-page volume. An edit here returns a new
 * map that shares almost everything with the old one.
 *
 * Theory of operation. The entries are kept sorted by key (JavaScript string
 * order) and cut into consecutive chunks: a map is an array of chunks, each a
 * sorted array of `[key, value]` entries, and every entry of a chunk sorts
 * before every entry of the next. A look-up finds the last chunk whose first
 * key is not above the key (binary search over the chunks), then the entry in
 * it (binary search again). An edit copies the one chunk it changes and the
 * array of chunks, and shares every other chunk and every entry with the old
 * map, which stays as it was: the cost is O(chunks + entries per chunk), not
 * O(entries). Chunks stay between `chunkEntriesMax / 4` and `chunkEntriesMax`
 * entries (a lone chunk may be smaller), like the leaves of a B-tree: an
 * insertion that overfills a chunk splits it in halves; a removal that
 * underfills one merges it with a neighbour (splitting the pair again if that
 * overfills it). With 512 entries at most, a 262,144-page volume is 512 to
 * 2,048 chunks, so an edit copies a few thousand references at worst, and a
 * map of a page or two (the model checker's worlds, millions of states) is one
 * chunk of one or two entries. Building a map from many entries at once (a
 * volume's definition, a restart) sorts them and cuts chunks half full.
 *
 * Iteration goes in key order, so it is a function of the contents alone, not
 * of the order entries were added in: two maps with equal entries iterate
 * alike, which the explorer's fingerprint relies on. Values are compared by
 * identity: setting a key to the value it already holds returns the same map.
 */
export type PageMapEntry<V> = readonly [key: string, value: V];
type Chunk<V> = readonly PageMapEntry<V>[];

/** The chunk size bound of every map made by `empty()` or `of()` without one. */
export const pageMapChunkEntriesMax = 512;

export class PageMap<V> implements Iterable<PageMapEntry<V>> {
  static readonly #empty = new PageMap<never>([], 0, pageMapChunkEntriesMax);
  readonly size: number;
  readonly #chunks: readonly Chunk<V>[];
  readonly #chunkEntriesMax: number;

  private constructor(chunks: readonly Chunk<V>[], size: number, chunkEntriesMax: number) {
    this.#chunks = chunks;
    this.size = size;
    this.#chunkEntriesMax = chunkEntriesMax;
  }

  /** An empty map; `chunkEntriesMax` (a power of two, at least 4) is for tests that want chunks to split and merge early. */
  static empty<V>(chunkEntriesMax = pageMapChunkEntriesMax): PageMap<V> {
    if (chunkEntriesMax === pageMapChunkEntriesMax) return PageMap.#empty as PageMap<V>;
    assert(Number.isInteger(Math.log2(chunkEntriesMax)) && chunkEntriesMax >= 4, 'a chunk bound is a power of two, at least 4');
    return new PageMap<V>([], 0, chunkEntriesMax);
  }

  /** A map of the given entries; of entries with the same key, the last wins. */
  static of<V>(entries: Iterable<readonly [string, V]>, chunkEntriesMax = pageMapChunkEntriesMax): PageMap<V> {
    return PageMap.empty<V>(chunkEntriesMax).withEntries(entries);
  }

  get(key: string): V | undefined {
    const chunk = this.#chunks[this.#chunkIndexOf(key)];
    if (chunk === undefined) return undefined;
    const entry = chunk[entryIndexOf(chunk, key)];
    return entry !== undefined && entry[0] === key ? entry[1] : undefined;
  }

  has(key: string): boolean {
    const chunk = this.#chunks[this.#chunkIndexOf(key)];
    if (chunk === undefined) return false;
    return chunk[entryIndexOf(chunk, key)]?.[0] === key;
  }

  /** This map with `key` set to `value`. */
  with(key: string, value: V): PageMap<V> {
    const chunks = this.#chunks;
    if (chunks.length === 0) return new PageMap([[[key, value]]], 1, this.#chunkEntriesMax);
    const chunkIndex = this.#chunkIndexOf(key);
    const chunk = chunks[chunkIndex]!;
    const at = entryIndexOf(chunk, key);
    const found = chunk[at];
    if (found !== undefined && found[0] === key) {
      if (found[1] === value) return this;
      const edited = chunk.slice();
      edited[at] = [key, value];
      return new PageMap(spliced(chunks, chunkIndex, 1, [edited]), this.size, this.#chunkEntriesMax);
    }
    const grown = spliced(chunk, at, 0, [[key, value]]);
    const replacement = grown.length > this.#chunkEntriesMax ? halves(grown) : [grown];
    return new PageMap(spliced(chunks, chunkIndex, 1, replacement), this.size + 1, this.#chunkEntriesMax);
  }

  /** This map without `key`. */
  without(key: string): PageMap<V> {
    const chunks = this.#chunks;
    if (chunks.length === 0) return this;
    const chunkIndex = this.#chunkIndexOf(key);
    const chunk = chunks[chunkIndex]!;
    const at = entryIndexOf(chunk, key);
    if (chunk[at]?.[0] !== key) return this;
    const shrunk = spliced(chunk, at, 1, []);
    let next: readonly Chunk<V>[];
    if (chunks.length === 1) {
      next = shrunk.length === 0 ? [] : [shrunk];
    } else if (shrunk.length >= this.#chunkEntriesMax / 4) {
      next = spliced(chunks, chunkIndex, 1, [shrunk]);
    } else {
      // Merge with the next chunk, or with the previous one for the last chunk, and split again if the pair overfills.
      const first = chunkIndex + 1 < chunks.length ? chunkIndex : chunkIndex - 1;
      const merged = first === chunkIndex ? shrunk.concat(chunks[chunkIndex + 1]!) : chunks[chunkIndex - 1]!.concat(shrunk);
      next = spliced(chunks, first, 2, merged.length > this.#chunkEntriesMax ? halves(merged) : [merged]);
    }
    return new PageMap(next, this.size - 1, this.#chunkEntriesMax);
  }

  /**
   * This map with every given entry set (the last of equal keys wins). A few are set one by one; when one-by-one
   * edits would copy more than the map holds, it is rebuilt in one pass instead (sort the new entries, merge them
   * with the old), so defining a volume of n pages costs O(n log n), not n edits.
   */
  withEntries(entries: Iterable<readonly [string, V]>): PageMap<V> {
    const added = [...entries];
    if (added.length <= 16 || added.length * (this.#chunks.length + this.#chunkEntriesMax) < this.size) {
      return added.reduce<PageMap<V>>((map, [key, value]) => map.with(key, value), this);
    }
    // Array sort is stable, so equal keys stay in the order given and the last of each run wins.
    const sorted = added.slice().sort((a, b) => compareKeys(a[0], b[0]));
    const merged: PageMapEntry<V>[] = [];
    const oldEntries = [...this];
    let old = 0;
    for (let index = 0; index < sorted.length; index += 1) {
      const [key, value] = sorted[index]!;
      if (index + 1 < sorted.length && sorted[index + 1]![0] === key) continue;
      while (old < oldEntries.length && oldEntries[old]![0] < key) merged.push(oldEntries[old++]!);
      if (old < oldEntries.length && oldEntries[old]![0] === key) old += 1;
      merged.push([key, value]);
    }
    while (old < oldEntries.length) merged.push(oldEntries[old++]!);
    return new PageMap(chunked(merged, this.#chunkEntriesMax / 2), merged.length, this.#chunkEntriesMax);
  }

  *entries(): IterableIterator<PageMapEntry<V>> {
    for (const chunk of this.#chunks) yield* chunk;
  }

  *keys(): IterableIterator<string> {
    for (const chunk of this.#chunks) for (const entry of chunk) yield entry[0];
  }

  *values(): IterableIterator<V> {
    for (const chunk of this.#chunks) for (const entry of chunk) yield entry[1];
  }

  [Symbol.iterator](): IterableIterator<PageMapEntry<V>> {
    return this.entries();
  }

  /** The entries in key order, so that a state printed or sent as JSON (status reports, traces) shows them. */
  toJSON(): PageMapEntry<V>[] {
    return [...this];
  }

  /**
   * How much of `older` a map made from it by edits shares: its chunks that are the very arrays of `older`
   * (`shared`), out of its own (`chunks`), and the entries of its chunks that are not shared (`entriesNotShared`).
   * For tests that show an edit copies little.
   */
  static sharing<V>(older: PageMap<V>, newer: PageMap<V>): { readonly chunks: number; readonly shared: number; readonly entriesNotShared: number } {
    const olderChunks = new Set(older.#chunks);
    let shared = 0;
    let entriesNotShared = 0;
    for (const chunk of newer.#chunks) {
      if (olderChunks.has(chunk)) shared += 1;
      else entriesNotShared += chunk.length;
    }
    return { chunks: newer.#chunks.length, shared, entriesNotShared };
  }

  /** Asserts the invariants the theory of operation names (for tests): sorted unique keys, chunk sizes, the size. */
  assertWellFormed(): void {
    const chunks = this.#chunks;
    let count = 0;
    let previous: string | null = null;
    for (const chunk of chunks) {
      assert(chunk.length > 0 && chunk.length <= this.#chunkEntriesMax, `a chunk holds 1 to ${this.#chunkEntriesMax} entries (${chunk.length})`);
      assert(chunks.length === 1 || chunk.length >= this.#chunkEntriesMax / 4, `one of several chunks holds at least ${this.#chunkEntriesMax / 4} entries (${chunk.length})`);
      for (const [key] of chunk) {
        assert(previous === null || previous < key, `keys are sorted and unique (${previous} before ${key})`);
        previous = key;
        count += 1;
      }
    }
    assert(count === this.size, `the size counts the entries (${this.size} against ${count})`);
  }

  /** The chunk that holds `key` if any entry does: the last whose first key is not above it (0 when none is). */
  #chunkIndexOf(key: string): number {
    const chunks = this.#chunks;
    let low = 0;
    let high = chunks.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      if (chunks[middle]![0]![0] <= key) low = middle;
      else high = middle - 1;
    }
    return low;
  }
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The index of the first entry of `chunk` whose key is not below `key` (the chunk's length when none). */
function entryIndexOf<V>(chunk: Chunk<V>, key: string): number {
  let low = 0;
  let high = chunk.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (chunk[middle]![0] < key) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** A copy of `items` with `deleteCount` items at `start` replaced by `inserted`. */
function spliced<T>(items: readonly T[], start: number, deleteCount: number, inserted: readonly T[]): T[] {
  const copy = items.slice(0, start);
  for (const item of inserted) copy.push(item);
  for (let index = start + deleteCount; index < items.length; index += 1) copy.push(items[index]!);
  return copy;
}

function halves<V>(chunk: Chunk<V>): Chunk<V>[] {
  const middle = chunk.length >>> 1;
  return [chunk.slice(0, middle), chunk.slice(middle)];
}

/** Sorted entries cut into chunks of about `target` entries, as even as can be (each over target / 2 when there are several). */
function chunked<V>(entries: readonly PageMapEntry<V>[], target: number): Chunk<V>[] {
  const count = Math.ceil(entries.length / target);
  return Array.from({ length: count }, (_, index) => entries.slice(Math.floor((index * entries.length) / count), Math.floor(((index + 1) * entries.length) / count)));
}
