import { assert } from '../../machines/identifiers.js';

/**
 * The journal behind the power-loss test switch. With it on, a page store
 * keeps every write that has not been synced here, in memory, instead of in
 * the page file; a sync appends the journal to the file and fsyncs it, and a
 * simulated power loss forgets the journal. That models the weakest disk a
 * store may assume: nothing written is durable until synced. (A real disk may
 * keep some unsynced writes; a correct node never relies on either outcome.)
 *
 * Reads lay the journal over the file's bytes, oldest write first, so a
 * reader sees every completed write whether or not it has been synced.
 * Memory grows with the unsynced bytes; this is a test switch.
 */
export interface OverlayWrite {
  readonly positionBytes: number;
  readonly data: Buffer;
}

export class VolatileOverlay {
  readonly #journals = new Map<string, OverlayWrite[]>();

  /** Records a write; the data is copied, so the caller may reuse its buffer. */
  append(key: string, positionBytes: number, data: Uint8Array): void {
    let journal = this.#journals.get(key);
    if (journal === undefined) {
      journal = [];
      this.#journals.set(key, journal);
    }
    journal.push({ positionBytes, data: Buffer.from(data) });
  }

  /** The unsynced writes of a file, oldest first. The array is a copy. */
  writesOf(key: string): readonly OverlayWrite[] {
    return [...(this.#journals.get(key) ?? [])];
  }

  /** Forgets the oldest `count` writes of a file once a sync has made them durable. */
  discardOldest(key: string, count: number): void {
    const journal = this.#journals.get(key);
    assert(count === 0 || (journal !== undefined && journal.length >= count), `the journal of ${key} holds the writes a sync made durable`);
    if (journal === undefined) return;
    journal.splice(0, count);
    if (journal.length === 0) this.#journals.delete(key);
  }

  drop(key: string): void {
    this.#journals.delete(key);
  }

  clear(): void {
    this.#journals.clear();
  }

}

/** Copies the parts of `writes` (oldest first) that fall inside `buffer`, which holds a file's bytes from `positionBytes`, over it. */
export function layOver(writes: readonly OverlayWrite[], positionBytes: number, buffer: Buffer): void {
  const endBytes = positionBytes + buffer.length;
  for (const write of writes) {
    const start = Math.max(positionBytes, write.positionBytes);
    const end = Math.min(endBytes, write.positionBytes + write.data.length);
    if (start >= end) continue;
    write.data.copy(buffer, start - positionBytes, start - write.positionBytes, end - write.positionBytes);
  }
}
