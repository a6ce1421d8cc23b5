/**
 * The reference backend: sparse until written, zeroes after trim and
 * write-zeroes, and range errors as NbdError values.
 */
import { describe, expect, it } from 'vitest';
import { MemoryBackend } from './memory-backend.js';
import { NbdError } from './nbd-error.js';
import { NBD_EINVAL, NBD_ENOSPC } from './protocol-constants.js';

describe('MemoryBackend', () => {
  it('reads what was written across chunk boundaries and zeroes on request', async () => {
    const backend = new MemoryBackend([{ name: 'vol', sizeBytes: 1 << 20 }]);
    expect(backend.allocatedBytes('vol')).toBe(0);
    const data = Buffer.alloc(200_000, 0x5a);
    await backend.write('vol', 1000, data, false);
    expect((await backend.read('vol', 1000, 200_000)).equals(data)).toBe(true);
    expect((await backend.read('vol', 0, 1000)).every((byte) => byte === 0)).toBe(true);
    await backend.writeZeroes('vol', 2000, 150_000, false);
    const after = await backend.read('vol', 1000, 200_000);
    expect(after.subarray(0, 1000).every((byte) => byte === 0x5a)).toBe(true);
    expect(after.subarray(1000, 151_000).every((byte) => byte === 0)).toBe(true);
    expect(after.subarray(151_000).every((byte) => byte === 0x5a)).toBe(true);
    await backend.trim('vol', 0, 1 << 20, false);
    expect(backend.allocatedBytes('vol')).toBe(0);
  });

  it('rejects ranges past the end with NbdError', async () => {
    const backend = new MemoryBackend([{ name: 'vol', sizeBytes: 4096 }]);
    await expect(backend.read('vol', 4000, 200)).rejects.toMatchObject({ errno: NBD_EINVAL });
    await expect(backend.write('vol', 4000, Buffer.alloc(200), false)).rejects.toBeInstanceOf(NbdError);
    await expect(backend.writeZeroes('vol', 4000, 200, false)).rejects.toMatchObject({ errno: NBD_ENOSPC });
    await expect(backend.flush('missing')).rejects.toMatchObject({ errno: NBD_EINVAL });
  });
});
