import * as fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as nodePath from 'node:path';
import { assert, pageKeyText } from '../../machines/identifiers.js';
import type { PageKey } from '../../machines/identifiers.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { makeDurableDirectory, makeDurableDirectorySync, syncDirectory } from './directory-sync.js';
import { FileHandleCache } from './file-handle-cache.js';
import type { CachedHandle } from './file-handle-cache.js';
import { pageKeyProblem } from './metadata-records.js';
import { VolatileOverlay, layOver } from './volatile-overlay.js';

/**
 * This server's copies of pages: one sparse file per page replica, at
 * `<directory>/<volume>/<page>.page` (the server passes `<data>/pages`).
 *
 * Files. A page file is created the first time the page is written, in
 * place (and truncated to the page size when the volume is known). Its
 * directory entry is made durable by an fsync of the directory that the
 * file's first sync (or FUA write) runs alongside its own fdatasync, and
 * waits for: no write is reported durable in a file whose name a power loss
 * could still take away. A crash may leave a page file shorter than its page
 * (even empty); that is harmless, because a read of a page that has no file,
 * of a region never written, or past the end of the file returns zeros.
 * Creating the file this way costs the first write of a page (the
 * destination of every move) no fsync at all, where the earlier
 * temporary-file-and-rename scheme cost two in series before the data could
 * even be written (about 5-8 ms on this host's disk). The directory fsync
 * is started with the data's fdatasync rather than at creation, so that both
 * ask ext4 for the same journal commit instead of the directory's commit
 * running while the first write (a 4 MiB piece, made synchronously, with the
 * event loop held) allocates blocks.
 * `delete` unlinks the file and fsyncs its directory.
 *
 * Geometry. Every operation names the page's block size, either as a bare
 * number (what the runtime passes today) or as the volume itself (any
 * `PageGeometry`). Only with the volume does the store know the page size, and
 * only then does it assert that a range lies inside the page and create files
 * at full size; with a bare block size a file grows as it is written and reads
 * past its end return zeros, which is equally correct but checks less.
 *
 * I/O. Reads and writes are positional (`pread`/`pwrite` on a FileHandle's descriptor, made synchronously: see `readFully`)
 * on a bounded cache of open files, so operations on the same page may run
 * concurrently. `readNow` and `writeNow` do the same at once, with no promise,
 * when nothing needs waiting for (the file is open, the write needs no sync,
 * no test switch is on); the caller falls back to `read`/`write` otherwise. Concurrent operations on *disjoint* ranges are safe. The store
 * does not order *overlapping* ones: the node never issues a write that
 * overlaps a write still in flight, nor reads a range while a write to it is
 * in flight, and the store relies on that. Likewise the node does not delete a
 * page while it has I/O in flight on it.
 *
 * Durability. A write with `durable` (FUA) fdatasyncs its file before it
 * resolves. Any other write marks its file dirty once it completes; `sync`
 * fdatasyncs the dirty files, one page's or all of them, and resolves once
 * every write that completed before the call is durable. A dirty file whose
 * handle is evicted from the cache is fdatasynced before it is closed, so a
 * writeback error is never lost with a closed descriptor. Syncs of one file
 * run one after another.
 *
 * Failure. An fsync that fails leaves the file's state unknown (the kernel may
 * have dropped the dirty pages), so the store fails: that operation and every
 * later one rejects, and the server must restart and recover from its peers
 * and durable records.
 *
 * Test switch. With `unsyncedWritesVolatile`, writes are kept in a memory
 * journal until synced (see VolatileOverlay) and `simulatePowerLoss` forgets
 * them, for the power-loss tests.
 */
export type PageGeometry = Pick<VolumeDefinition, 'pageSizeBlocks' | 'blockSizeBytes'>;

/** A bare block size, or the volume (whose page size then bounds every range). */
export type BlockSize = number | PageGeometry;

export interface PageStoreOptions {
  /** The most page files kept open while idle; beyond it the least recently used is closed. */
  readonly handlesMax?: number;
  /** Test switch: keep unsynced writes in memory so that `simulatePowerLoss` can discard them. */
  readonly unsyncedWritesVolatile?: boolean;
  /**
   * Called once, when the store fails (see "Failure"): writes it had
   * acknowledged may be gone without a power cut, which the server's loss
   * epoch must reflect at its next start (impl/storage/loss-epoch.ts).
   */
  readonly onFailure?: (error: Error) => void;
}

export const defaultHandlesMax = 256;

/** Where a page's file lives, and how large it is. */
interface PageFile {
  readonly key: string;
  readonly path: string;
  readonly directory: string;
  readonly blockSizeBytes: number;
  /** Null when the caller named only the block size. */
  readonly sizeBytes: number | null;
}

export class PageStore {
  readonly #directory: string;
  readonly #handles: FileHandleCache;
  readonly #overlay: VolatileOverlay | null;
  /** Opens in progress, so that two operations on an unopened page share one open. */
  readonly #opening = new Map<string, Promise<FileHandle | null>>();
  /** Pages whose delete is under way: no sync or open (but a write's) takes them up until it is done. */
  readonly #deleting = new Set<string>();
  /** Files with completed writes that no sync has yet covered. */
  readonly #dirty = new Map<string, PageFile>();
  /** The last queued sync of each file; the syncs of one file run in order. */
  readonly #syncTails = new Map<string, Promise<void>>();
  /** Per file, a sync queued behind a running one that has not begun yet (see `#syncFile`). */
  readonly #syncsNotBegun = new Map<string, Promise<void>>();
  /** Handles being closed, so that `close` can wait for them. */
  readonly #closing = new Set<Promise<void>>();
  /** Page files created whose directory entry no sync has made durable yet (see "Files" above). */
  readonly #entriesNotDurable = new Map<string, PageFile>();
  /** Volume directories this store has made durable (created and fsynced in their parent); see `createPageFile`. */
  readonly #durableDirectories = new Map<string, Promise<void>>();
  /** Directory fsyncs of such files under way; every sync of the file waits for its entry's. */
  readonly #entriesSyncing = new Map<string, Promise<void>>();
  #operationsInFlight = 0;
  #failure: Error | null = null;
  readonly #onFailure: ((error: Error) => void) | null;
  #closed = false;

  /** Opens the page files under `directory`, creating it (durably) if needed. */
  constructor(directory: string, options: PageStoreOptions = {}) {
    this.#directory = directory;
    this.#onFailure = options.onFailure ?? null;
    this.#handles = new FileHandleCache(options.handlesMax ?? defaultHandlesMax, (entry) => this.#retire(entry));
    this.#overlay = options.unsyncedWritesVolatile ? new VolatileOverlay() : null;
    makeDurableDirectorySync(directory);
  }

  /** How many page files are open now (for tests of the handle bound). */
  get openFileCount(): number {
    return this.#handles.size;
  }

  /** Reads `lengthBlocks` blocks from `offsetBlocks`; unwritten blocks read as zeros. */
  async read(pageKey: PageKey, offsetBlocks: number, lengthBlocks: number, blockSize: BlockSize): Promise<Buffer> {
    const file = this.#fileOf(pageKey, blockSize);
    checkRange(file, offsetBlocks, lengthBlocks);
    return this.#operation(async () => {
      const lengthBytes = lengthBlocks * file.blockSizeBytes;
      // A large read (a piece copy) fills its buffer from the file, so it is not zeroed first (4 MiB of memset is a
      // millisecond or more here, on the copy's critical path); only what lies past the end of the file is.
      const large = lengthBytes >= unzeroedReadBytesMin;
      const buffer = large ? Buffer.allocUnsafe(lengthBytes) : Buffer.alloc(lengthBytes);
      let readBytes = 0;
      const positionBytes = offsetBlocks * file.blockSizeBytes;
      // The journal is taken before the file is read: a sync running meanwhile may move writes from it into the file, and
      // laying this copy over the file's bytes then still yields every write that completed before the read began.
      const journal = this.#overlay?.writesOf(file.key) ?? [];
      const entry = await this.#pin(file, false);
      if (entry !== null) {
        try {
          readBytes = readFully(entry.handle, buffer, positionBytes);
        } finally {
          this.#handles.release(entry);
        }
      }
      if (large) buffer.fill(0, readBytes);
      layOver(journal, positionBytes, buffer);
      return buffer;
    });
  }

  /** Writes whole blocks from `offsetBlocks`; with `durable` (FUA) the write is durable when this resolves. */
  async write(pageKey: PageKey, offsetBlocks: number, data: Uint8Array, blockSize: BlockSize, durable: boolean): Promise<void> {
    const file = this.#fileOf(pageKey, blockSize);
    assert(data.length > 0 && data.length % file.blockSizeBytes === 0, `a write to ${file.key} is a positive whole number of ${file.blockSizeBytes}-byte blocks (got ${data.length} bytes)`);
    checkRange(file, offsetBlocks, data.length / file.blockSizeBytes);
    const positionBytes = offsetBlocks * file.blockSizeBytes;
    await this.#operation(async () => {
      if (this.#overlay !== null) {
        this.#overlay.append(file.key, positionBytes, data);
        this.#dirty.set(file.key, file);
        if (durable) await this.#syncFile(file.key);
        return;
      }
      const entry = await this.#pin(file, true);
      assert(entry !== null, 'a written page has a file');
      try {
        writeFully(entry.handle, data, positionBytes);
        if (durable) await Promise.all([this.#guard(entry.handle.datasync()), this.#entryDurable(file.key)]);
        // Marked only now: a sync that started before this write completed need not cover it, and one that starts after will.
        else this.#dirty.set(file.key, file);
      } finally {
        this.#handles.release(entry);
      }
    });
  }

  /**
   * `read` done at once, if it can be without waiting: the page's file is
   * open. Returns null (having done nothing) when it cannot; throws what the
   * read would have rejected with. It and `writeNow` run once per client
   * request, so they pin the file inline rather than through a shared helper
   * taking a callback (tried: a closure per request measured 5-9% more CPU
   * per 4k write in two back-to-back pairs of BENCH_QUICK runs).
   */
  readNow(pageKey: PageKey, offsetBlocks: number, lengthBlocks: number, blockSizeBytes: number): Buffer | null {
    if (this.#overlay !== null || this.#failure !== null || this.#closed) return null;
    const key = pageKeyText(pageKey);
    const entry = this.#handles.pin(key);
    if (entry === undefined) return null;
    try {
      const file = this.#knownFile(key, pageKey, blockSizeBytes);
      checkRange(file, offsetBlocks, lengthBlocks);
      const lengthBytes = lengthBlocks * blockSizeBytes;
      // A piece copy's chunk is not zeroed first, as in `read`; only what lies past the end of the file is.
      if (lengthBytes >= unzeroedReadBytesMin) {
        const buffer = Buffer.allocUnsafe(lengthBytes);
        buffer.fill(0, readFully(entry.handle, buffer, offsetBlocks * blockSizeBytes));
        return buffer;
      }
      const buffer = Buffer.alloc(lengthBytes);
      readFully(entry.handle, buffer, offsetBlocks * blockSizeBytes);
      return buffer;
    } finally {
      this.#handles.release(entry);
    }
  }

  /**
   * `write` without `durable`, done at once if it can be without waiting: the
   * page's file is open. Returns whether it did the write (false: nothing was
   * done); throws what the write would have rejected with. Like `write`, it
   * marks the file dirty once the bytes are in, so the next sync covers them.
   */
  writeNow(pageKey: PageKey, offsetBlocks: number, data: Uint8Array, blockSizeBytes: number): boolean {
    if (this.#overlay !== null || this.#failure !== null || this.#closed) return false;
    const key = pageKeyText(pageKey);
    const entry = this.#handles.pin(key);
    if (entry === undefined) return false;
    try {
      const file = this.#knownFile(key, pageKey, blockSizeBytes);
      assert(data.length > 0 && data.length % blockSizeBytes === 0, `a write to ${key} is a positive whole number of ${blockSizeBytes}-byte blocks (got ${data.length} bytes)`);
      checkRange(file, offsetBlocks, data.length / blockSizeBytes);
      writeFully(entry.handle, data, offsetBlocks * blockSizeBytes);
      this.#dirty.set(key, file);
    } finally {
      this.#handles.release(entry);
    }
    return true;
  }

  /** Makes durable every write to the page (or, with null, to any page) that completed before this call. */
  async sync(pageKey: PageKey | null): Promise<void> {
    await this.#operation(async () => {
      if (pageKey !== null) {
        const problem = pageKeyProblem(pageKey);
        assert(problem === null, `sync: ${problem}`);
        const key = pageKeyText(pageKey);
        if (this.#dirty.has(key)) await this.#syncFile(key);
        else await this.#syncTails.get(key);
        return;
      }
      for (const key of [...this.#dirty.keys()]) void this.#syncFile(key).catch(() => undefined);
      // Waits for the syncs just queued and for those already running, which cover writes no longer marked dirty.
      await Promise.all([...this.#syncTails.values()]);
    });
  }

  /** Removes this server's copy of a page, durably. Deleting a page that has no file is not an error. */
  async delete(pageKey: PageKey): Promise<void> {
    const problem = pageKeyProblem(pageKey);
    assert(problem === null, `delete: ${problem}`);
    const key = pageKeyText(pageKey);
    const directory = nodePath.join(this.#directory, pageKey.volume);
    await this.#operation(async () => {
      // From here no sync takes the page up again and no open of it starts (see `#deleting`), before the waits below:
      // a sync of every page started while the delete waited reopened the file and left its handle, on the unlinked
      // inode, in the cache for the page's next life (a review helper reproduced it: writes and FLUSH then went to the
      // deleted file, and the page read as zeros after a restart).
      this.#deleting.add(key);
      this.#dirty.delete(key);
      try {
        // A running open or sync of this page finishes first, so none of them outlives the file or sees its journal vanish.
        await this.#opening.get(key)?.catch(() => undefined);
        await this.#syncTails.get(key)?.catch(() => undefined);
        await this.#entriesSyncing.get(key)?.catch(() => undefined);
        this.#entriesNotDurable.delete(key);
        this.#dirty.delete(key);
        this.#overlay?.drop(key);
        this.#handles.remove(key);
        const path = nodePath.join(directory, `${pageKey.page}.page`);
        let removed = false;
        for (const candidate of [path, `${path}.tmp`]) {
          try {
            await fs.promises.unlink(candidate);
            removed = true;
          } catch (error) {
            if (!isMissing(error)) throw error;
          }
        }
        if (removed) await this.#guard(syncDirectory(directory));
      } finally {
        this.#handles.remove(key);
        this.#deleting.delete(key);
      }
    });
  }

  /**
   * Test switch: the machine loses power. Every write not yet synced is
   * forgotten; synced writes and deletions stay. Call it while the store is
   * idle; the store stays usable, as after a reboot.
   */
  simulatePowerLoss(): void {
    assert(this.#overlay !== null, 'simulatePowerLoss needs the unsyncedWritesVolatile option');
    assert(this.#operationsInFlight === 0 && this.#syncTails.size === 0, 'simulatePowerLoss is called while the page store is idle');
    this.#overlay.clear();
    this.#dirty.clear();
  }

  /** Syncs every dirty file, then closes every handle. Unsynced writes are synced, as on an orderly shutdown. */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      if (this.#failure === null) await this.sync(null);
    } finally {
      this.#closed = true;
      this.#handles.removeAll();
      await Promise.all([...this.#closing]);
    }
  }

  // ----- internals -------------------------------------------------------------

  #fileOf(pageKey: PageKey, blockSize: BlockSize): PageFile {
    const problem = pageKeyProblem(pageKey);
    assert(problem === null, problem ?? '');
    const blockSizeBytes = typeof blockSize === 'number' ? blockSize : blockSize.blockSizeBytes;
    assert(Number.isSafeInteger(blockSizeBytes) && blockSizeBytes >= 1, `blockSizeBytes ${blockSizeBytes} is a positive integer`);
    let sizeBytes: number | null = null;
    if (typeof blockSize !== 'number') {
      assert(Number.isSafeInteger(blockSize.pageSizeBlocks) && blockSize.pageSizeBlocks >= 1, `pageSizeBlocks ${blockSize.pageSizeBlocks} is a positive integer`);
      sizeBytes = blockSize.pageSizeBlocks * blockSizeBytes;
    }
    const directory = nodePath.join(this.#directory, pageKey.volume);
    return { key: pageKeyText(pageKey), directory, path: nodePath.join(directory, `${pageKey.page}.page`), blockSizeBytes, sizeBytes };
  }

  /**
   * The file of a page whose handle is open: its dirty record when it has one
   * (a written page usually does, which saves building paths per write), else
   * built afresh. The key text was checked when the file was opened.
   */
  #knownFile(key: string, pageKey: PageKey, blockSizeBytes: number): PageFile {
    const dirty = this.#dirty.get(key);
    if (dirty !== undefined && dirty.blockSizeBytes === blockSizeBytes && dirty.sizeBytes === null) return dirty;
    return this.#fileOf(pageKey, blockSizeBytes);
  }

  /** Runs one public operation, refusing it after a failure or close and counting it while it runs. */
  async #operation<T>(body: () => Promise<T>): Promise<T> {
    assert(!this.#closed, 'the page store is open');
    if (this.#failure !== null) throw new Error(`page store failed earlier: ${this.#failure.message}`, { cause: this.#failure });
    this.#operationsInFlight += 1;
    try {
      return await body();
    } finally {
      this.#operationsInFlight -= 1;
    }
  }

  /** Awaits a sync or a close; a failure of either fails the store (see "Failure" above). */
  async #guard(promise: Promise<void>): Promise<void> {
    try {
      await promise;
    } catch (error) {
      if (this.#failure === null) {
        this.#failure = error instanceof Error ? error : new Error(String(error));
        this.#onFailure?.(this.#failure);
      }
      throw error;
    }
  }

  /**
   * Fdatasyncs every page file in the store's directory, and the directories
   * themselves, whoever wrote them. After a process kill the kernel still
   * holds the killed process's unsynced writes, but this store's dirty set
   * started empty, so a FLUSH would not sync them: a start after an unclean
   * stop on the same boot calls this before serving. Returns the files synced.
   */
  async syncEveryFile(): Promise<number> {
    let synced = 0;
    await this.#operation(async () => {
      for (const volume of await fs.promises.readdir(this.#directory, { withFileTypes: true })) {
        if (!volume.isDirectory()) continue;
        const directory = nodePath.join(this.#directory, volume.name);
        for (const entry of await fs.promises.readdir(directory)) {
          if (!entry.endsWith('.page')) continue;
          const handle = await fs.promises.open(nodePath.join(directory, entry), 'r');
          try {
            await this.#guard(handle.datasync());
          } finally {
            await handle.close();
          }
          synced += 1;
        }
        await this.#guard(syncDirectory(directory));
      }
      await this.#guard(syncDirectory(this.#directory));
    });
    return synced;
  }

  /** Every page that has a file here, by volume, then page (read at start, before the store is in use). */
  async storedPages(): Promise<PageKey[]> {
    const found: PageKey[] = [];
    if (!fs.existsSync(this.#directory)) return found;
    for (const volume of await fs.promises.readdir(this.#directory, { withFileTypes: true })) {
      if (!volume.isDirectory()) continue;
      for (const entry of await fs.promises.readdir(nodePath.join(this.#directory, volume.name))) {
        const page = /^(\d+)\.page$/.exec(entry);
        if (page) found.push({ volume: volume.name, page: Number(page[1]) });
      }
    }
    return found.sort((a, b) => a.volume.localeCompare(b.volume) || a.page - b.page);
  }

  /** Pins an open handle of the file, opening it (and, with `create`, creating it) when needed; null if it does not exist. */
  async #pin(file: PageFile, create: boolean): Promise<CachedHandle | null> {
    // A page being deleted has no file to sync or read (a write to it waits for the delete in the runtime's page queue).
    if (!create && this.#deleting.has(file.key)) return null;
    for (;;) {
      const cached = this.#handles.pin(file.key);
      if (cached !== undefined) return cached;
      const opening = this.#opening.get(file.key);
      if (opening !== undefined) {
        // Another operation is opening this file; try again once it has (its open may not have created the file).
        await opening.catch(() => undefined);
        continue;
      }
      const open = (async () => {
        const opened = await openPageFile(file, create, this.#durableDirectories);
        if (opened?.created) this.#entriesNotDurable.set(file.key, file);
        return opened?.handle ?? null;
      })();
      this.#opening.set(file.key, open);
      try {
        const handle = await open;
        return handle === null ? null : this.#handles.insert(file.key, handle);
      } finally {
        this.#opening.delete(file.key);
      }
    }
  }

  /**
   * Resolves once the file's directory entry is durable: at once for a file
   * that a sync has already covered, else after the directory fsync, which
   * the first caller starts and later callers share (see "Files" above).
   */
  async #entryDurable(key: string): Promise<void> {
    const file = this.#entriesNotDurable.get(key);
    if (file !== undefined && !this.#entriesSyncing.has(key)) {
      const syncing = this.#guard(syncDirectory(file.directory));
      this.#entriesSyncing.set(key, syncing);
      void syncing.then(() => {
        if (this.#entriesNotDurable.get(key) === file) this.#entriesNotDurable.delete(key);
      }, () => undefined).finally(() => {
        if (this.#entriesSyncing.get(key) === syncing) this.#entriesSyncing.delete(key);
      });
    }
    await this.#entriesSyncing.get(key);
  }

  /**
   * Queues a sync of one file behind the file's earlier syncs and clears its
   * dirty mark. A sync already queued behind a running one, and not yet
   * begun, is joined instead of queuing another: its fdatasync begins later
   * than this call, so it covers every write completed before it. A piece
   * copy's chunks arrive while the first chunk's sync runs, and each asks for
   * a sync: they then share one fdatasync rather than taking one each, in
   * turn (each also a journal commit and a disk cache flush, which the
   * metadata store's commits wait behind).
   */
  #syncFile(key: string, handle?: FileHandle): Promise<void> {
    const waiting = this.#syncsNotBegun.get(key);
    if (waiting !== undefined && handle === undefined) {
      this.#dirty.delete(key);
      return waiting;
    }
    const file = this.#dirty.get(key);
    this.#dirty.delete(key);
    const previous = this.#syncTails.get(key);
    // Assigned before the body first resumes: the body awaits before it looks at `next`.
    let next!: Promise<void>;
    next = (async () => {
      await previous?.catch(() => undefined);
      if (this.#syncsNotBegun.get(key) === next) this.#syncsNotBegun.delete(key);
      try {
        await this.#guard(this.#syncNow(key, file, handle));
      } finally {
        // Forgotten before anyone awaiting this sync resumes, so an idle store has no syncs queued.
        if (this.#syncTails.get(key) === next) this.#syncTails.delete(key);
      }
    })();
    this.#syncTails.set(key, next);
    if (previous !== undefined) this.#syncsNotBegun.set(key, next);
    return next;
  }

  async #syncNow(key: string, file: PageFile | undefined, handle: FileHandle | undefined): Promise<void> {
    // A handle being retired: its sync clears the dirty mark, so a later sync that finds nothing dirty relies on this one,
    // which must then cover the directory entry too.
    if (handle !== undefined) {
      await Promise.all([handle.datasync(), this.#entryDurable(key)]);
      return;
    }
    const journal = this.#overlay?.writesOf(key) ?? [];
    if (this.#overlay !== null && journal.length === 0) return;
    if (file === undefined) {
      // A sync is queued only for a file marked dirty, and every journalled write marks its file.
      assert(journal.length === 0, `the journal of ${key} is synced with its file known`);
      return;
    }
    const entry = await this.#pin(file, journal.length > 0);
    // Without the test switch the file exists unless the page was deleted since it was written, and then nothing is left to sync.
    if (entry === null) return;
    try {
      for (const write of journal) writeFully(entry.handle, write.data, write.positionBytes);
      await Promise.all([entry.handle.datasync(), this.#entryDurable(key)]);
    } finally {
      this.#handles.release(entry);
    }
    this.#overlay?.discardOldest(key, journal.length);
  }

  /** Closes a handle the cache let go of; a dirty file is synced through it first (see "Durability" above). */
  #retire(entry: CachedHandle): void {
    const closing = (async () => {
      try {
        if (this.#overlay === null && this.#dirty.has(entry.key)) await this.#syncFile(entry.key, entry.handle);
      } finally {
        await this.#guard(entry.handle.close());
      }
    })();
    this.#closing.add(closing);
    void closing.catch(() => undefined).finally(() => this.#closing.delete(closing));
  }
}

function checkRange(file: PageFile, offsetBlocks: number, lengthBlocks: number): void {
  assert(Number.isSafeInteger(offsetBlocks) && offsetBlocks >= 0, `offsetBlocks ${offsetBlocks} of ${file.key} is a non-negative integer`);
  assert(Number.isSafeInteger(lengthBlocks) && lengthBlocks >= 1, `lengthBlocks ${lengthBlocks} of ${file.key} is a positive integer`);
  if (file.sizeBytes === null) return;
  const pageSizeBlocks = file.sizeBytes / file.blockSizeBytes;
  assert(offsetBlocks + lengthBlocks <= pageSizeBlocks, `blocks ${offsetBlocks}+${lengthBlocks} lie inside the ${pageSizeBlocks}-block page ${file.key}`);
}

/**
 * Opens a page file, creating it (at full size when the size is known) when
 * asked; null when it does not exist and may not be created. Every call is a
 * trip through libuv's thread pool, and a move's destination creates a file
 * per page it receives, on the copy's critical path: so a caller that may
 * create tries the exclusive create first (one call, the directory already
 * known durable), and only a file that exists is opened as such; a file's
 * size is checked only when the page size is known.
 */
async function openPageFile(file: PageFile, create: boolean, durableDirectories: Map<string, Promise<void>>): Promise<{ handle: FileHandle; created: boolean } | null> {
  if (create) {
    const handle = await createPageFile(file, durableDirectories);
    if (handle !== null) return { handle, created: true };
  }
  let handle: FileHandle;
  try {
    handle = await fs.promises.open(file.path, 'r+');
  } catch (error) {
    if (!isMissing(error)) throw error;
    if (!create) return null;
    // Deleted between the create that found it and this open: create it after all.
    const created = await createPageFile(file, durableDirectories);
    assert(created !== null, `page file ${file.path} appeared and vanished while it was opened`);
    return { handle: created, created: true };
  }
  if (file.sizeBytes === null) return { handle, created: false };
  try {
    // A file written with only a block size known, or one a crash caught while it was created, may be shorter than its page, never longer.
    const { size } = await handle.stat();
    assert(size <= file.sizeBytes, `page file ${file.path} is ${size} bytes, longer than the page's ${file.sizeBytes}: the volume's geometry changed or the file is damaged`);
  } catch (error) {
    await handle.close();
    throw error;
  }
  return { handle, created: false };
}

/**
 * Creates the file in place, or returns null if it exists. Its directory
 * entry is not durable yet: the caller starts the directory fsync and makes
 * every sync of the file wait for it (see "Files" above). The directory
 * itself is made durable the first time the store creates a file in it;
 * the store never removes a directory, so later creates skip that step.
 */
async function createPageFile(file: PageFile, durableDirectories: Map<string, Promise<void>>): Promise<FileHandle | null> {
  // Every create in a new directory waits for the one making it durable: a second create used to find the directory
  // there (EEXIST) and go ahead while the first still fsynced its parent, so a FUA write to it could be answered before
  // the directory's own entry was durable (a review helper's strace showed the order possible). A failure is not kept:
  // the next create tries again.
  let durable = durableDirectories.get(file.directory);
  if (durable === undefined) {
    durable = makeDurableDirectory(file.directory);
    durableDirectories.set(file.directory, durable);
    durable.catch(() => durableDirectories.delete(file.directory));
  }
  await durable;
  let handle: FileHandle;
  try {
    // O_EXCL: this process opens each file once at a time (see #pin), so a file that exists is opened rather than created.
    handle = await fs.promises.open(file.path, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL);
  } catch (error) {
    if ((error as { code?: unknown }).code === 'EEXIST') return null;
    throw error;
  }
  try {
    if (file.sizeBytes !== null) await handle.truncate(file.sizeBytes);
  } catch (error) {
    await handle.close();
    throw error;
  }
  return handle;
}

/** Reads of at least this many bytes (piece copies) get a buffer that is not zeroed first; see `read`. */
export const unzeroedReadBytesMin = 128 * 1024;

/**
 * `pread` and `pwrite` are made synchronously on the open file's descriptor:
 * they copy to or from the kernel's page cache, which costs a few
 * microseconds, while a trip through libuv's thread pool costs tens of
 * microseconds and two context switches per block request (the server's
 * profile under fio showed a quarter of its time there). Waiting for the disk
 * happens only in `datasync`, which stays asynchronous. This holds for piece
 * copies too: sending 1-4 MiB copies through the thread pool was measured
 * (fio 4k randwrite QD16 while pages moved away and back, 2-core host shared
 * with other work) to cut the client's IOPS during moves from 8.3-9.4k to
 * 5.7-7.0k and raise its p99 from 13.4 to 17-23 ms: on a busy host the pool
 * thread and the completion wait for a core, and every request queued on the
 * page behind the copy waits with them, while the copy itself, made
 * synchronously, holds the event loop for some 0.2-1 ms per MiB (now and then
 * much longer, when the kernel must find memory for new page-cache pages).
 */
function readFully(handle: FileHandle, buffer: Buffer, positionBytes: number): number {
  let doneBytes = 0;
  while (doneBytes < buffer.length) {
    const bytesRead = fs.readSync(handle.fd, buffer, doneBytes, buffer.length - doneBytes, positionBytes + doneBytes);
    if (bytesRead === 0) return doneBytes;
    doneBytes += bytesRead;
  }
  return doneBytes;
}

/**
 * The most one pwrite hands the kernel. A large write makes the page cache
 * keep its bytes in one large folio (ext4 on this kernel sizes the folio by the
 * write), and every later small write into that folio walks all its block
 * buffers: after a 1 MiB sequential fill or a piece copy, each 4 KiB client
 * write cost about 6 µs more in `ext4_block_write_begin` (16% of the owner's
 * CPU in `perf`), on the event loop. Written in 64 KiB steps, the folios stay
 * small: a bare NBD server (impl/nbd + pwrite, fio 4k randwrite QD16 after a
 * 1M sequential fill) went from 70-75k to 115-125k IOPS, and 16 pwrites per
 * MiB cost next to nothing.
 */
export const pageCacheWriteBytesMax = 64 * 1024;

function writeFully(handle: FileHandle, data: Uint8Array, positionBytes: number): void {
  let doneBytes = 0;
  while (doneBytes < data.length) {
    const stepBytes = Math.min(data.length - doneBytes, pageCacheWriteBytesMax);
    doneBytes += fs.writeSync(handle.fd, data, doneBytes, stepBytes, positionBytes + doneBytes);
  }
}

function isMissing(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'ENOENT';
}
