import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskServicePacer, EmulatedDiskPageStore, emulatedOperationBytes } from './emulated-disk.js';

/**
 * The emulated disk used by one-host benchmarks: its queue arithmetic on a
 * fake clock, and that a paced page store still stores what it is given.
 */
const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) fs.rmSync(directory, { recursive: true, force: true });
});

describe('emulated disk', () => {
  it('serves operations one at a time in arrival order, each taking 1000 / rate ms per started 64 KiB', () => {
    let nowMs = 1_000;
    const pacer = new DiskServicePacer(100, () => nowMs);
    expect(pacer.reserve(4096)).toBe(10);
    expect(pacer.reserve(4096)).toBe(20);
    expect(pacer.reserve(2 * emulatedOperationBytes)).toBe(40);
    expect(pacer.reserve(emulatedOperationBytes + 1)).toBe(60);
    nowMs += 25;
    expect(pacer.reserve(512)).toBe(45);
    // An idle disk does not bank capacity: after the queue drains, the next operation starts when it arrives.
    nowMs += 1_000;
    expect(pacer.reserve(512)).toBe(10);
  });

  it('refuses a rate that is not positive', () => {
    expect(() => new DiskServicePacer(0)).toThrow(/positive/);
    expect(() => new DiskServicePacer(Number.NaN)).toThrow(/positive/);
  });

  it('a paced page store reads back what it wrote', async () => {
    const directory = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'blockshift-emulated-disk-'));
    directories.push(directory);
    const store = new EmulatedDiskPageStore(nodePath.join(directory, 'pages'), {}, 10_000);
    const pageKey = { volume: 'v', page: 3 };
    const geometry = { pageSizeBlocks: 64, blockSizeBytes: 512 };
    const data = Buffer.alloc(4 * 512, 0x5a);
    await store.write(pageKey, 8, data, geometry, true);
    expect(Buffer.compare(await store.read(pageKey, 8, 4, geometry), data)).toBe(0);
    expect((await store.read(pageKey, 0, 1, geometry)).every((byte) => byte === 0)).toBe(true);
    await store.close();
  });
});
