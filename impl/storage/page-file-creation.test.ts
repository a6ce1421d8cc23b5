import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { VolumeDefinition } from '../../machines/node/volume.js';

/**
 * How the page store creates a page file: in place, with no fsync before the
 * first write; the first sync (or FUA write) of the file fsyncs its directory
 * alongside its own fdatasync and is held until that is done (a write must
 * never be reported durable in a file whose name a power loss could still
 * take away). The directory fsync is replaced by one the test releases by
 * hand, so the test can see what waits for it.
 */
const directorySyncs: Array<{ readonly path: string; readonly release: () => void }> = [];
let holdDirectorySyncs = false;

vi.mock('./directory-sync.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('./directory-sync.js')>();
  return {
    ...original,
    syncDirectory: async (path: string) => {
      if (!holdDirectorySyncs) return original.syncDirectory(path);
      await new Promise<void>((resolve) => directorySyncs.push({ path, release: resolve }));
      return original.syncDirectory(path);
    },
  };
});

const { PageStore, unzeroedReadBytesMin } = await import('./page-store.js');

const directories: string[] = [];
afterEach(() => {
  holdDirectorySyncs = false;
  for (const held of directorySyncs.splice(0)) held.release();
  for (const directory of directories.splice(0)) fs.rmSync(directory, { recursive: true, force: true });
});

function temporaryDirectory(): string {
  const directory = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'blockshift-page-file-'));
  directories.push(directory);
  return directory;
}

const volume: VolumeDefinition = { name: 'v1', pageCount: 4, pageSizeBlocks: 8192, blockSizeBytes: 512, piecesPerPage: 4, servers: ['s1'] };
const pageBytes = volume.pageSizeBlocks * volume.blockSizeBytes;

/** Whether the promise settles within `ms` (it is left running either way). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  void promise.then(() => { settled = true; }, () => { settled = true; });
  await new Promise((resolve) => setTimeout(resolve, ms));
  return settled;
}

describe('page file creation', () => {
  it('lets the first write go ahead without a directory fsync, and holds syncs of the new file until one is done', async () => {
    const store = new PageStore(nodePath.join(temporaryDirectory(), 'pages'));
    holdDirectorySyncs = true;
    const data = Buffer.alloc(4096, 7);
    // Neither the write itself nor anything before it waits for the new file's directory entry.
    expect(await settlesWithin(store.write({ volume: 'v1', page: 0 }, 0, data, volume, false), 200)).toBe(true);
    expect(directorySyncs).toHaveLength(0);
    const sync = store.sync({ volume: 'v1', page: 0 });
    const fuaWrite = store.write({ volume: 'v1', page: 0 }, 8, data, volume, true);
    expect(await settlesWithin(sync, 100)).toBe(false);
    expect(await settlesWithin(fuaWrite, 0)).toBe(false);
    // One directory fsync, shared by both.
    expect(directorySyncs.map((held) => nodePath.basename(held.path))).toEqual(['v1']);
    directorySyncs[0]!.release();
    await sync;
    await fuaWrite;
    // Once the entry is durable, the file costs no more directory fsyncs.
    await store.write({ volume: 'v1', page: 0 }, 16, data, volume, true);
    await store.write({ volume: 'v1', page: 0 }, 24, data, volume, false);
    await store.sync({ volume: 'v1', page: 0 });
    expect(directorySyncs).toHaveLength(1);
    // A FUA write to another new file waits for its own directory fsync.
    const otherFua = store.write({ volume: 'v1', page: 1 }, 0, data, volume, true);
    expect(await settlesWithin(otherFua, 100)).toBe(false);
    expect(directorySyncs).toHaveLength(2);
    directorySyncs[1]!.release();
    await otherFua;
    holdDirectorySyncs = false;
    await store.close();
  });

  it('makes the directory entry durable when an evicted handle is what synced the new file', async () => {
    // With one handle allowed, writing a second page evicts the first page's dirty handle, which is synced as it is
    // closed; that sync clears the dirty mark, so the page's later sync relies on it for the directory entry too.
    const store = new PageStore(nodePath.join(temporaryDirectory(), 'pages'), { handlesMax: 1 });
    holdDirectorySyncs = true;
    const data = Buffer.alloc(4096, 9);
    await store.write({ volume: 'v1', page: 0 }, 0, data, volume, false);
    const evicting = store.write({ volume: 'v1', page: 1 }, 0, data, volume, false);
    await settlesWithin(evicting, 100);
    const sync = store.sync({ volume: 'v1', page: 0 });
    expect(await settlesWithin(sync, 100)).toBe(false);
    for (const held of directorySyncs) held.release();
    await sync;
    await evicting;
    holdDirectorySyncs = false;
    await store.close();
  });

  it('creates the file at its page size and reads large ranges as written, zeros where nothing was', async () => {
    const directory = temporaryDirectory();
    const store = new PageStore(nodePath.join(directory, 'pages'));
    expect(pageBytes / 4).toBeGreaterThanOrEqual(unzeroedReadBytesMin);
    const piece = Buffer.alloc(pageBytes / 4);
    for (let index = 0; index < piece.length; index += 1) piece[index] = (index * 31 + 5) % 251;
    await store.write({ volume: 'v1', page: 1 }, volume.pageSizeBlocks / 4, piece, volume, true);
    expect(fs.statSync(nodePath.join(directory, 'pages', 'v1', '1.page')).size).toBe(pageBytes);
    const whole = await store.read({ volume: 'v1', page: 1 }, 0, volume.pageSizeBlocks, volume);
    expect(whole.subarray(0, pageBytes / 4).every((byte) => byte === 0)).toBe(true);
    expect(whole.subarray(pageBytes / 4, pageBytes / 2).equals(piece)).toBe(true);
    expect(whole.subarray(pageBytes / 2).every((byte) => byte === 0)).toBe(true);
    // With only the block size known the file ends after the last write, and a large read past its end is zeros there,
    // as is a large read of a page that has no file, even when the memory the read was given held other bytes.
    await store.write({ volume: 'v1', page: 2 }, 0, piece, volume.blockSizeBytes, false);
    const dirtyMemory = vi.spyOn(Buffer, 'allocUnsafe').mockImplementation((size: number) => Buffer.alloc(size, 0xee));
    try {
      const past = await store.read({ volume: 'v1', page: 2 }, 0, volume.pageSizeBlocks / 2, volume.blockSizeBytes);
      expect(past.subarray(0, piece.length).equals(piece)).toBe(true);
      expect(past.subarray(piece.length).every((byte) => byte === 0)).toBe(true);
      const absent = await store.read({ volume: 'v1', page: 3 }, 0, volume.pageSizeBlocks, volume);
      expect(absent.every((byte) => byte === 0)).toBe(true);
      // readNow (the runtime's read of an open file, a piece copy's chunks included) likewise.
      const now = store.readNow({ volume: 'v1', page: 2 }, 0, volume.pageSizeBlocks / 2, volume.blockSizeBytes);
      expect(now?.subarray(0, piece.length).equals(piece)).toBe(true);
      expect(now?.subarray(piece.length).every((byte) => byte === 0)).toBe(true);
      expect(dirtyMemory).toHaveBeenCalled();
    } finally {
      dirtyMemory.mockRestore();
    }
    await store.close();
  });
});
