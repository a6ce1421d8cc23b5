import { assert } from '../identifiers.js';

/**
 * An immutable, persistent map from page text (`volume/page`) to a value: the
 * node's per-page records (routes, replicas). A step never edits the state it
 * started from (the simulator keeps old states), so a record stored as a plain
 * object had to be copied whole by every step that changed one page of it:
 * 30 ms per route update for a 65,536-page volume. An edit here returns a new
 * map that shares almost everything with the old one.
 *
 * Theory of operation. Each key has a 30-bit hash (see keyHash). The entries are kept sorted by hash, then by key (which only breaks
 * ties between colliding keys), and cut into consecutive chunks: a map is an
 * array of chunks, each a sorted array of entries, and every entry of a chunk
 * sorts before every entry of the next; the map also keeps each chunk's first
 * hash in an array of their own. A look-up hashes the key, finds the last
 * chunk whose first entry does not sort above it, then the entry in it. Both
 * searches compare numbers, not strings, and both start from a guess: hashes
 * spread evenly, so where the hash falls between the lowest and the highest
 * tells where the entry is, give or take a few places. The chunk search looks
 * a few places either side of the guess and, if two looks show the answer lies
 * there, binary-searches only those; the entry search walks from the guess to
 * the answer through neighbouring memory. A wrong guess costs looks, never a
 * wrong answer. A look-up in a 65,536-page map costs about 120 ns in a tight
 * loop (binary searches comparing page texts, which share their `volume/`
 * prefix, cost 500 ns; a plain object, 25 ns).
 * An edit copies the one chunk it changes and the arrays of chunks and first
 * hashes, and shares every other chunk and every entry with the old map,
 * which stays as it was: the cost is O(chunks + entries per chunk), not
 * O(entries). Chunks stay between `chunkEntriesMax / 4` and `chunkEntriesMax`
 * entries (a lone chunk may be smaller), like the leaves of a B-tree: an
 * insertion that overfills a chunk splits it in halves; a removal that
 * underfills one merges it with a neighbour (splitting the pair again if that
 * overfills it). The hash decides only the order, never the chunk sizes, so
 * no key set can unbalance the map. With 512 entries at most, a 262,144-page
 * volume is 512 to 2,048 chunks, so an edit copies a few thousand references
 * at worst, and a map of a page or two (the model checker's worlds, millions
 * of states) is one chunk of one or two entries. Building a map from many
 * entries at once (a volume's definition, a restart) sorts them and cuts
 * chunks half full.
 *
 * Iteration goes in that order (hash, then key), so it is a function of the
 * contents alone, not of the order entries were added in: two maps with equal
 * entries iterate alike, which the explorer's fingerprint relies on. It is
 * not key order: a caller that wants key order sorts. Values are compared by
 * identity: setting a key to the value it already holds returns the same map.
 */
export type PageMapEntry<V> = readonly [key: string, value: V];

/**
 * A chunk: its entries' hashes, keys and values interleaved in one flat array (hash, key, value, hash, key, value,
 * ...), sorted. A binary search then reads hashes (small integers) from one run of memory instead of following a
 * pointer per entry, and a copy is one allocation.
 */
type Chunk = readonly unknown[];
const stride = 3;
/** Hashes are below this (30 bits). */
const hashLimit = 2 ** 30;
/** In a lone chunk of up to this many entries a look-up compares keys one by one. */
const smallMapEntriesMax = 4;
/** How many places either side of an interpolated guess the search for a chunk looks first (#chunkIndexOf). */
const guessWindow = 8;

/** The chunk size bound of every map made by `empty()` or `of()` without one. */
export const pageMapChunkEntriesMax = 512;

export class PageMap<V> implements Iterable<PageMapEntry<V>> {
  static readonly #empty = new PageMap<never>([], [], 0, pageMapChunkEntriesMax);
  readonly size: number;
  readonly #chunks: readonly Chunk[];
  /** The hash of each chunk's first entry, so that finding a chunk reads one run of memory too. */
  readonly #heads: readonly number[];
  readonly #chunkEntriesMax: number;

  private constructor(chunks: readonly Chunk[], heads: readonly number[], size: number, chunkEntriesMax: number) {
    this.#chunks = chunks;
    this.#heads = heads;
    this.size = size;
    this.#chunkEntriesMax = chunkEntriesMax;
  }

  /** This map's chunks from `start` on, `deleteCount` of them, replaced by `inserted`; its size changed by `sizeChange`. */
  #replaced(start: number, deleteCount: number, inserted: readonly Chunk[], sizeChange: number): PageMap<V> {
    const chunks = spliced(this.#chunks, start, deleteCount, inserted);
    const heads = spliced(this.#heads, start, deleteCount, inserted.map((chunk) => chunk[0] as number));
    return new PageMap(chunks, heads, this.size + sizeChange, this.#chunkEntriesMax);
  }

  /** An empty map; `chunkEntriesMax` (a power of two, at least 4) is for tests that want chunks to split and merge early. */
  static empty<V>(chunkEntriesMax = pageMapChunkEntriesMax): PageMap<V> {
    if (chunkEntriesMax === pageMapChunkEntriesMax) return PageMap.#empty as PageMap<V>;
    assert(Number.isInteger(Math.log2(chunkEntriesMax)) && chunkEntriesMax >= 4, 'a chunk bound is a power of two, at least 4');
    return new PageMap<V>([], [], 0, chunkEntriesMax);
  }

  /** A map of the given entries; of entries with the same key, the last wins. */
  static of<V>(entries: Iterable<readonly [string, V]>, chunkEntriesMax = pageMapChunkEntriesMax): PageMap<V> {
    return PageMap.empty<V>(chunkEntriesMax).withEntries(entries);
  }

  get(key: string): V | undefined {
    if (this.#chunks.length === 0) return undefined;
    if (this.#chunks.length === 1 && this.size <= smallMapEntriesMax) {
      // A lone chunk of a few entries (the explorer's maps): comparing keys costs less than hashing.
      const chunk = this.#chunks[0]!;
      for (let at = 1; at < chunk.length; at += stride) if (chunk[at] === key) return chunk[at + 1] as V;
      return undefined;
    }
    const hash = keyHash(key);
    const chunkIndex = this.#chunkIndexOf(hash, key);
    const chunk = this.#chunks[chunkIndex]!;
    const at = this.#entryIndexOf(chunkIndex, hash, key);
    return chunk[at + 1] === key ? chunk[at + 2] as V : undefined;
  }

  has(key: string): boolean {
    if (this.#chunks.length === 0) return false;
    if (this.#chunks.length === 1 && this.size <= smallMapEntriesMax) {
      const chunk = this.#chunks[0]!;
      for (let at = 1; at < chunk.length; at += stride) if (chunk[at] === key) return true;
      return false;
    }
    const hash = keyHash(key);
    const chunkIndex = this.#chunkIndexOf(hash, key);
    return this.#chunks[chunkIndex]![this.#entryIndexOf(chunkIndex, hash, key) + 1] === key;
  }

  /** This map with `key` set to `value`. */
  with(key: string, value: V): PageMap<V> {
    const chunks = this.#chunks;
    const hash = keyHash(key);
    if (chunks.length === 0) return new PageMap([[hash, key, value]], [hash], 1, this.#chunkEntriesMax);
    const chunkIndex = this.#chunkIndexOf(hash, key);
    const chunk = chunks[chunkIndex]!;
    const at = this.#entryIndexOf(chunkIndex, hash, key);
    if (chunk[at + 1] === key) {
      if (chunk[at + 2] === value) return this;
      return this.#replaced(chunkIndex, 1, [spliced(chunk, at + 2, 1, [value])], 0);
    }
    const grown = spliced(chunk, at, 0, [hash, key, value]);
    const replacement = grown.length > this.#chunkEntriesMax * stride ? halves(grown) : [grown];
    return this.#replaced(chunkIndex, 1, replacement, 1);
  }

  /** This map without `key`. */
  without(key: string): PageMap<V> {
    const chunks = this.#chunks;
    if (chunks.length === 0) return this;
    const hash = keyHash(key);
    const chunkIndex = this.#chunkIndexOf(hash, key);
    const chunk = chunks[chunkIndex]!;
    const at = this.#entryIndexOf(chunkIndex, hash, key);
    if (chunk[at + 1] !== key) return this;
    const shrunk = spliced(chunk, at, stride, []);
    if (chunks.length === 1) return this.#replaced(0, 1, shrunk.length === 0 ? [] : [shrunk], -1);
    if (shrunk.length >= (this.#chunkEntriesMax / 4) * stride) return this.#replaced(chunkIndex, 1, [shrunk], -1);
    // Merge with the next chunk, or with the previous one for the last chunk, and split again if the pair overfills.
    const first = chunkIndex + 1 < chunks.length ? chunkIndex : chunkIndex - 1;
    const merged = first === chunkIndex ? shrunk.concat(chunks[chunkIndex + 1]!) : chunks[chunkIndex - 1]!.concat(shrunk);
    return this.#replaced(first, 2, merged.length > this.#chunkEntriesMax * stride ? halves(merged) : [merged], -1);
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
    const sorted = added.map(([key, value]) => ({ hash: keyHash(key), key, value })).sort((a, b) => compare(a.hash, a.key, b.hash, b.key));
    const old = this.#chunks.flat();
    const merged: unknown[] = [];
    let at = 0;
    for (let index = 0; index < sorted.length; index += 1) {
      const { hash, key, value } = sorted[index]!;
      if (index + 1 < sorted.length && sorted[index + 1]!.key === key) continue;
      while (at < old.length && compare(old[at] as number, old[at + 1] as string, hash, key) < 0) {
        merged.push(old[at], old[at + 1], old[at + 2]);
        at += stride;
      }
      if (at < old.length && old[at + 1] === key) at += stride;
      merged.push(hash, key, value);
    }
    for (; at < old.length; at += 1) merged.push(old[at]);
    const chunks = chunked(merged, this.#chunkEntriesMax / 2);
    return new PageMap(chunks, chunks.map((chunk) => chunk[0] as number), merged.length / stride, this.#chunkEntriesMax);
  }

  // Iteration goes over an array built first: the explorer iterates small maps millions of times, and a generator
  // cost it more than the array.
  entries(): IterableIterator<PageMapEntry<V>> {
    const list: PageMapEntry<V>[] = [];
    for (const chunk of this.#chunks) for (let at = 0; at < chunk.length; at += stride) list.push([chunk[at + 1] as string, chunk[at + 2] as V]);
    return list.values();
  }

  keys(): IterableIterator<string> {
    const list: string[] = [];
    for (const chunk of this.#chunks) for (let at = 1; at < chunk.length; at += stride) list.push(chunk[at] as string);
    return list.values();
  }

  values(): IterableIterator<V> {
    const list: V[] = [];
    for (const chunk of this.#chunks) for (let at = 2; at < chunk.length; at += stride) list.push(chunk[at] as V);
    return list.values();
  }

  [Symbol.iterator](): IterableIterator<PageMapEntry<V>> {
    return this.entries();
  }

  /** The entries in iteration order, so that a state printed or sent as JSON (status reports, traces) shows them. */
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
      else entriesNotShared += chunk.length / stride;
    }
    return { chunks: newer.#chunks.length, shared, entriesNotShared };
  }

  /** Asserts the invariants the theory of operation names (for tests): each hash, the order, chunk sizes, the size. */
  assertWellFormed(): void {
    const chunks = this.#chunks;
    assert(this.#heads.length === chunks.length && chunks.every((chunk, index) => chunk[0] === this.#heads[index]), 'the heads are the chunks\' first hashes');
    let count = 0;
    let previous: { hash: number; key: string } | null = null;
    for (const chunk of chunks) {
      const entries = chunk.length / stride;
      assert(Number.isInteger(entries) && entries > 0 && entries <= this.#chunkEntriesMax, `a chunk holds 1 to ${this.#chunkEntriesMax} entries (${entries})`);
      assert(chunks.length === 1 || entries >= this.#chunkEntriesMax / 4, `one of several chunks holds at least ${this.#chunkEntriesMax / 4} entries (${entries})`);
      for (let at = 0; at < chunk.length; at += stride) {
        const hash = chunk[at] as number;
        const key = chunk[at + 1] as string;
        assert(typeof key === 'string' && hash === keyHash(key), `${key} carries its hash`);
        assert(previous === null || compare(previous.hash, previous.key, hash, key) < 0, `entries are sorted and keys unique (${previous?.key} before ${key})`);
        previous = { hash, key };
        count += 1;
      }
    }
    assert(count === this.size, `the size counts the entries (${this.size} against ${count})`);
  }

  /** The chunk that holds the key if any does: the last whose first entry does not sort above it (0 when none does). */
  #chunkIndexOf(hash: number, key: string): number {
    const heads = this.#heads;
    const count = heads.length;
    if (count <= 1) return 0;
    // Hashes spread evenly over [0, 2^30), so the chunk heads do too: look first around where the hash falls among
    // them. The guess only saves looks; any guess finds the same chunk.
    const guess = Math.floor((hash / hashLimit) * count);
    let low = 0;
    let high = count;
    const windowLow = Math.max(guess - guessWindow, 1);
    const windowHigh = Math.min(guess + guessWindow, count);
    if (windowLow < count && this.#headAtOrBelow(windowLow - 1, hash, key)) low = windowLow;
    if (windowHigh < count && !this.#headAtOrBelow(windowHigh, hash, key)) high = windowHigh;
    // Invariant: every chunk before `low` starts at or below the key, every chunk from `high` on above it.
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#headAtOrBelow(middle, hash, key)) low = middle + 1;
      else high = middle;
    }
    return Math.max(low - 1, 0);
  }

  /** The position of the key in the chunk at `chunkIndex`, or where it would go (see entryIndexOf). */
  #entryIndexOf(chunkIndex: number, hash: number, key: string): number {
    const heads = this.#heads;
    return entryIndexOf(this.#chunks[chunkIndex]!, hash, key, heads[chunkIndex]!, chunkIndex + 1 < heads.length ? heads[chunkIndex + 1]! : hashLimit);
  }

  #headAtOrBelow(index: number, hash: number, key: string): boolean {
    const head = this.#heads[index]!;
    return head < hash || (head === hash && (this.#chunks[index]![1] as string) <= key);
  }
}

/**
 * FNV-1a over the key's UTF-16 code units, then MurmurHash3's final mix: FNV-1a alone leaves keys that differ only in
 * their last characters (`vol/1`, `vol/2`, ...) bunched in its high bits, and the searches guess from the hash's
 * place in the range. Cut to 30 bits so that V8 keeps it as a small integer. Exported for tests.
 */
export function keyHash(key: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < key.length; index += 1) hash = Math.imul(hash ^ key.charCodeAt(index), 0x01000193);
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  return (hash ^ (hash >>> 16)) >>> 2;
}

/** The order of entries: by hash, then by key. */
function compare(hashA: number, keyA: string, hashB: number, keyB: string): number {
  if (hashA !== hashB) return hashA < hashB ? -1 : 1;
  return keyA < keyB ? -1 : keyA > keyB ? 1 : 0;
}

/**
 * The position in `chunk` of the first entry that does not sort below the key (the chunk's length when none); its
 * hashes are from `lowestHash` (its first) to below `hashBound` (the next chunk's first, or the limit). The chunk's
 * hashes spread evenly between those, so where the hash falls between them tells where the entry is, give or take a
 * few places; the search walks from there to the answer, through neighbouring memory. A wrong guess only makes the
 * walk longer, at most the chunk's length.
 */
function entryIndexOf(chunk: Chunk, hash: number, key: string, lowestHash: number, hashBound: number): number {
  const count = chunk.length / stride;
  const guess = hashBound > lowestHash ? Math.floor(((hash - lowestHash) / (hashBound - lowestHash)) * count) : 0;
  let index = Math.min(Math.max(guess, 0), count);
  while (index > 0 && !entryBelow(chunk, index - 1, hash, key)) index -= 1;
  while (index < count && entryBelow(chunk, index, hash, key)) index += 1;
  return index * stride;
}

function entryBelow(chunk: Chunk, index: number, hash: number, key: string): boolean {
  const entryHash = chunk[index * stride] as number;
  return entryHash < hash || (entryHash === hash && (chunk[index * stride + 1] as string) < key);
}

/** A copy of `items` with `deleteCount` items at `start` replaced by `inserted`. */
function spliced<T>(items: readonly T[], start: number, deleteCount: number, inserted: readonly T[]): T[] {
  const copy = items.slice();
  copy.splice(start, deleteCount, ...inserted);
  return copy;
}

/** An overfull chunk cut into two of half its entries each. */
function halves(chunk: Chunk): Chunk[] {
  const middle = ((chunk.length / stride) >>> 1) * stride;
  return [chunk.slice(0, middle), chunk.slice(middle)];
}

/** Sorted flat entries cut into chunks of about `target` entries, as even as can be (each over target / 2 when there are several). */
function chunked(flat: readonly unknown[], target: number): Chunk[] {
  const entries = flat.length / stride;
  const count = Math.ceil(entries / target);
  const boundary = (index: number) => Math.floor((index * entries) / count) * stride;
  return Array.from({ length: count }, (_, index) => flat.slice(boundary(index), boundary(index + 1)));
}
