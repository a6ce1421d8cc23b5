/**
 * Page data: one sparse file per page copy, `<directory>/<volume>/<page>.page`,
 * read and written with positional I/O.
 *
 * The runtime issues the operations of one page in effect order, so this
 * store needs no locking of its own. A write with `durable` (NBD FUA) is
 * fdatasync'ed before it resolves; `sync` makes every write to a page — or,
 * with null, to any page written since its last sync — durable. Open file
 * handles are cached, at most `handlesMax`, least recently used closed first.
 *
 * For fault injection (the jepsen harness's power-loss nemesis) the store can
 * keep writes that are not yet synced in memory only (`unsyncedWritesVolatile`):
 * reads see them, `sync` writes them through, and `simulatePowerLoss` drops
 * them, as a power cut would drop a disk's volatile cache.
 */
import { mkdirSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { PageKey } from '../../machines/identifiers.js';
import { assert, pageKeyText } from '../../machines/identifiers.js';

export interface PageStoreOptions {
  readonly handlesMax?: number;
  readonly unsyncedWritesVolatile?: boolean;
}

interface VolatileWrite {
  readonly offsetBytes: number;
  readonly data: Buffer;
}

export class PageStore {
  readonly #directory: string;
  readonly #handlesMax: number;
  readonly #volatile: boolean;
  /** Insertion order is recency order: a use moves the handle to the end. */
  readonly #handles = new Map<string, FileHandle>();
  readonly #dirty = new Set<string>();
  readonly #unsynced = new Map<string, VolatileWrite[]>();
  /** Pages with an operation under way; their handles are never evicted from under them. */
  readonly #busy = new Map<string, number>();

  constructor(directory: string, options: PageStoreOptions = {}) {
    this.#directory = directory;
    this.#handlesMax = options.handlesMax ?? 256;
    this.#volatile = options.unsyncedWritesVolatile ?? false;
    mkdirSync(directory, { recursive: true });
  }

  read(pageKey: PageKey, offsetBlocks: number, lengthBlocks: number, blockSizeBytes: number): Promise<Buffer> {
    return this.#using(pageKeyText(pageKey), () => this.#read(pageKey, offsetBlocks, lengthBlocks, blockSizeBytes));
  }

  write(pageKey: PageKey, offsetBlocks: number, data: Buffer, blockSizeBytes: number, durable: boolean): Promise<void> {
    return this.#using(pageKeyText(pageKey), () => this.#write(pageKey, offsetBlocks, data, blockSizeBytes, durable));
  }

  async #using<T>(key: string, operation: () => Promise<T>): Promise<T> {
    this.#busy.set(key, (this.#busy.get(key) ?? 0) + 1);
    try {
      return await operation();
    } finally {
      const count = (this.#busy.get(key) ?? 1) - 1;
      if (count === 0) this.#busy.delete(key);
      else this.#busy.set(key, count);
    }
  }

  async #read(pageKey: PageKey, offsetBlocks: number, lengthBlocks: number, blockSizeBytes: number): Promise<Buffer> {
    assert(offsetBlocks >= 0 && lengthBlocks >= 0, 'read range is not negative');
    const offsetBytes = offsetBlocks * blockSizeBytes;
    const buffer = Buffer.alloc(lengthBlocks * blockSizeBytes);
    const handle = await this.#handle(pageKey);
    // Beyond the end of a sparse file reads as zeroes, which Buffer.alloc already holds.
    await handle.read(buffer, 0, buffer.length, offsetBytes);
    for (const write of this.#unsynced.get(pageKeyText(pageKey)) ?? []) overlay(buffer, offsetBytes, write);
    return buffer;
  }

  async #write(pageKey: PageKey, offsetBlocks: number, data: Buffer, blockSizeBytes: number, durable: boolean): Promise<void> {
    assert(offsetBlocks >= 0 && data.length % blockSizeBytes === 0, 'write is whole blocks at a non-negative offset');
    const key = pageKeyText(pageKey);
    const offsetBytes = offsetBlocks * blockSizeBytes;
    if (this.#volatile && !durable) {
      this.#unsynced.set(key, [...(this.#unsynced.get(key) ?? []), { offsetBytes, data: Buffer.from(data) }]);
      this.#dirty.add(key);
      return;
    }
    const handle = await this.#handle(pageKey);
    await this.#writeThrough(key, handle);
    await handle.write(data, 0, data.length, offsetBytes);
    if (durable) await handle.datasync();
    else this.#dirty.add(key);
  }

  async sync(pageKey: PageKey | null): Promise<void> {
    const keys = pageKey ? [pageKeyText(pageKey)] : [...this.#dirty];
    for (const key of keys) {
      if (!this.#dirty.has(key)) continue;
      this.#dirty.delete(key);
      await this.#using(key, async () => {
        const handle = await this.#handleByKey(key);
        await this.#writeThrough(key, handle);
        await handle.datasync();
      });
    }
  }

  async delete(pageKey: PageKey): Promise<void> {
    const key = pageKeyText(pageKey);
    await this.#handles.get(key)?.close();
    this.#handles.delete(key);
    this.#dirty.delete(key);
    this.#unsynced.delete(key);
    await rm(this.#path(key), { force: true });
    const directory = await open(join(this.#directory, encodeURIComponent(pageKey.volume)), 'r').catch(() => null);
    await directory?.sync().catch(() => undefined);
    await directory?.close();
  }

  /** Test switch: forget every write not yet synced, as a power cut would. */
  simulatePowerLoss(): void {
    assert(this.#volatile, 'power loss is simulated only with unsyncedWritesVolatile');
    this.#unsynced.clear();
    this.#dirty.clear();
  }

  async close(): Promise<void> {
    for (const handle of this.#handles.values()) await handle.close();
    this.#handles.clear();
  }

  async #writeThrough(key: string, handle: FileHandle): Promise<void> {
    const pending = this.#unsynced.get(key);
    if (!pending) return;
    this.#unsynced.delete(key);
    for (const write of pending) await handle.write(write.data, 0, write.data.length, write.offsetBytes);
  }

  #path(key: string): string {
    const [volume, page] = splitKey(key);
    return join(this.#directory, encodeURIComponent(volume), `${page}.page`);
  }

  #handle(pageKey: PageKey): Promise<FileHandle> {
    return this.#handleByKey(pageKeyText(pageKey));
  }

  async #handleByKey(key: string): Promise<FileHandle> {
    const cached = this.#handles.get(key);
    if (cached) {
      this.#handles.delete(key);
      this.#handles.set(key, cached);
      return cached;
    }
    const path = this.#path(key);
    mkdirSync(join(path, '..'), { recursive: true });
    const handle = await open(path, 'a+').then(async (probe) => {
      await probe.close();
      return open(path, 'r+');
    });
    this.#handles.set(key, handle);
    for (const [candidateKey, candidate] of this.#handles) {
      if (this.#handles.size <= this.#handlesMax) break;
      if (this.#busy.has(candidateKey)) continue;
      this.#handles.delete(candidateKey);
      await candidate.close();
    }
    return handle;
  }
}

function splitKey(key: string): [string, string] {
  const slash = key.lastIndexOf('/');
  return [key.slice(0, slash), key.slice(slash + 1)];
}

function overlay(buffer: Buffer, offsetBytes: number, write: VolatileWrite): void {
  const start = Math.max(offsetBytes, write.offsetBytes);
  const end = Math.min(offsetBytes + buffer.length, write.offsetBytes + write.data.length);
  if (start < end) write.data.copy(buffer, start - offsetBytes, start - write.offsetBytes, end - write.offsetBytes);
}
