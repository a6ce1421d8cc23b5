import { describe, expect, it } from 'vitest';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { pageBytesMax, validateVolume, volumePagesMax } from '../../machines/node/volume.js';

/**
 * A volume's geometry is refused before anything is defined: a review found
 * `blockSizeBytes` of 0, -512, 1.5 or 1e300 and pages of 2^52 blocks
 * accepted (the definition then failed its commit for ever while peers had
 * it), and 10^8 pages taking the server past its heap.
 */
describe('volume bounds', () => {
  const good: VolumeDefinition = { name: 'alpha', pageCount: 6, pageSizeBlocks: 8192, blockSizeBytes: 512, piecesPerPage: 8, servers: ['s1', 's2'] };

  it('accepts the defaults and the largest volume the bounds allow', () => {
    expect(validateVolume(good)).toBeNull();
    expect(validateVolume({ ...good, pageCount: volumePagesMax, blockSizeBytes: 65_536, pageSizeBlocks: pageBytesMax / 65_536, piecesPerPage: 1 })).toBeNull();
  });

  it('refuses block sizes that are not a power of two from 512 bytes to 64 KiB, oversized pages and too many pages', () => {
    for (const blockSizeBytes of [0, -512, 1.5, 1e300, 1000, 256, 131_072, Number.NaN]) {
      expect(validateVolume({ ...good, blockSizeBytes }), `blockSizeBytes ${blockSizeBytes}`).toMatch(/blockSizeBytes/);
    }
    expect(validateVolume({ ...good, pageSizeBlocks: 2 ** 52, piecesPerPage: 1 })).toMatch(/pageSizeBlocks/);
    expect(validateVolume({ ...good, pageSizeBlocks: pageBytesMax / 512 + 8, piecesPerPage: 1 })).toMatch(/pageSizeBlocks/);
    for (const pageCount of [0, 1e8, volumePagesMax + 1, 2.5]) expect(validateVolume({ ...good, pageCount }), `pageCount ${pageCount}`).toMatch(/pageCount/);
  });

  it('refuses the names of Object.prototype\'s members, which every plain record of the node would seem to hold (a review)', () => {
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']) expect(validateVolume({ ...good, name }), name).toBe(`volume name ${name} is reserved`);
    expect(validateVolume({ ...good, name: 'constructors' })).toBeNull();
  });
});
