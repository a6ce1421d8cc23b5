import { assert } from '../../machines/identifiers.js';
import type { Action } from '../world/world.js';

/**
 * The explorer's set of visited states, compact: per state 96 bits of its
 * fingerprint (world/fingerprint.ts), the ordinal of the state it was first
 * reached from and the action that reached it (for counterexample traces).
 *
 * Theory of operation. States are numbered in the order they are added
 * (ordinal 0 is the initial state). Their hashes, parents and action
 * numbers live in typed arrays indexed by ordinal; an open-addressing table
 * (linear probing, load at most one half, doubled when it would pass that)
 * maps a hash to its ordinal. That is about 44 bytes per state and no
 * object, against a few hundred bytes for a Map from base64 text to a record.
 *
 * Collisions: two different fingerprints share a 96-bit prefix with
 * probability at most n²/2⁹⁷ for n states, taking the fingerprint for a
 * random function (world/fingerprint.ts says why that is fair) — below
 * 10⁻¹⁵ for the 10⁷ states a run can hold — so a state merged by collision
 * is not a practical concern (the full 128 bits would cost 4 more bytes per
 * state for nothing measurable).
 *
 * Bound: at most `statesMax` states (2³⁰), asserted.
 */
export const statesMax = 1 << 30;
export const digestBytes = 12;

export class VisitedSet {
  #slots = new Int32Array(1 << 16);
  #hashes = new Uint32Array(3 << 15);
  #parents = new Int32Array(1 << 15);
  /** Per state, the number of the action that reached it in `#actionTable` (-1: the initial state). */
  #actionNumbers = new Int32Array(1 << 15);
  /**
   * The distinct actions, each kept once: a search meets a few hundred
   * (`deliver` of message slot 3, `crash` of server 1, ...), so millions of
   * states hold small numbers instead of millions of small objects that
   * every major garbage collection would have to trace.
   */
  readonly #actionTable: Action[] = [];
  readonly #actionNumberByKey = new Map<string, number>();
  /** The same numbers by action object: the world shares its common action objects (world.ts), so most are found here. */
  readonly #actionNumberByObject = new WeakMap<Action, number>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** The ordinal of the state with this digest, or -1. */
  find(digest: Uint8Array): number {
    const [a, b, c] = words(digest);
    return this.findWords(a, b, c);
  }

  /** The ordinal of the state whose digest's first three little-endian words are a, b, c, or -1. */
  findWords(a: number, b: number, c: number): number {
    const mask = this.#slots.length - 1;
    const hashes = this.#hashes;
    for (let slot = a & mask; ; slot = (slot + 1) & mask) {
      const entry = this.#slots[slot] as number;
      if (entry === 0) return -1;
      const at = 3 * (entry - 1);
      if (hashes[at] === a >>> 0 && hashes[at + 1] === b >>> 0 && hashes[at + 2] === c >>> 0) return entry - 1;
    }
  }

  /** Adds a state not yet in the set; returns its ordinal. */
  add(digest: Uint8Array, parent: number, action: Action | null): number {
    const [a, b, c] = words(digest);
    return this.addWords(a, b, c, parent, action);
  }

  /** add, by the digest's first three words (as findWords). */
  addWords(a: number, b: number, c: number, parent: number, action: Action | null): number {
    assert(this.#size < statesMax, `at most ${statesMax} visited states`);
    assert(this.findWords(a, b, c) < 0, 'a state is added once');
    const ordinal = this.#size;
    if (ordinal >= this.#parents.length) this.#growRecords();
    if (2 * (ordinal + 1) > this.#slots.length) this.#growSlots();
    this.#hashes[3 * ordinal] = a;
    this.#hashes[3 * ordinal + 1] = b;
    this.#hashes[3 * ordinal + 2] = c;
    this.#parents[ordinal] = parent;
    this.#actionNumbers[ordinal] = action === null ? -1 : this.#actionNumber(action);
    this.#size += 1;
    this.#place(ordinal);
    return ordinal;
  }

  parentOf(ordinal: number): number {
    return this.#parents[ordinal] as number;
  }

  actionOf(ordinal: number): Action | null {
    const number = this.#actionNumbers[ordinal] as number;
    return number < 0 ? null : (this.#actionTable[number] as Action);
  }

  #actionNumber(action: Action): number {
    const known = this.#actionNumberByObject.get(action);
    if (known !== undefined) return known;
    const key = JSON.stringify(action);
    let number = this.#actionNumberByKey.get(key);
    if (number === undefined) {
      number = this.#actionTable.length;
      this.#actionTable.push(action);
      this.#actionNumberByKey.set(key, number);
    }
    this.#actionNumberByObject.set(action, number);
    return number;
  }

  #place(ordinal: number): void {
    const mask = this.#slots.length - 1;
    let slot = (this.#hashes[3 * ordinal] as number) & mask;
    while (this.#slots[slot] !== 0) slot = (slot + 1) & mask;
    this.#slots[slot] = ordinal + 1;
  }

  #growRecords(): void {
    const capacity = this.#parents.length * 2;
    const hashes = new Uint32Array(3 * capacity);
    hashes.set(this.#hashes);
    this.#hashes = hashes;
    const parents = new Int32Array(capacity);
    parents.set(this.#parents);
    this.#parents = parents;
    const actionNumbers = new Int32Array(capacity);
    actionNumbers.set(this.#actionNumbers);
    this.#actionNumbers = actionNumbers;
  }

  #growSlots(): void {
    this.#slots = new Int32Array(this.#slots.length * 2);
    for (let ordinal = 0; ordinal < this.#size; ordinal += 1) this.#place(ordinal);
  }
}

function words(digest: Uint8Array): [number, number, number] {
  assert(digest.length >= digestBytes, 'a digest holds at least 96 bits');
  const word = (at: number) => ((digest[at] as number) | ((digest[at + 1] as number) << 8) | ((digest[at + 2] as number) << 16) | ((digest[at + 3] as number) << 24)) >>> 0;
  return [word(0), word(4), word(8)];
}
