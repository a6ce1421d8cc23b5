import { describe, expect, it } from 'vitest';
import { murmur3x86Bytes, murmur3x86Words } from './murmur3.js';

describe('MurmurHash3_x86_128', () => {
  it('matches SMHasher\'s verification value (0xB3ECE62A)', () => {
    // SMHasher's VerificationTest: hash the keys {}, {0}, {0,1}, ... {0..254} with seeds 256 - length, then hash those
    // 256 digests with seed 0; the first four bytes, little-endian, are the published value.
    const key = new Uint8Array(256);
    const digests = new Uint8Array(16 * 256);
    for (let length = 0; length < 256; length += 1) {
      key[length] = length;
      digests.set(murmur3x86Bytes(key.subarray(0, length), 256 - length), 16 * length);
    }
    const final = murmur3x86Bytes(digests, 0);
    expect(Buffer.from(final.subarray(0, 4)).readUInt32LE(0)).toBe(0xb3ece62a);
  });

  it('the word form hashes words as their little-endian bytes, for every tail length', () => {
    const words = Int32Array.from({ length: 41 }, (_, index) => Math.imul(index + 1, 0x9e3779b1));
    for (let count = 0; count <= words.length; count += 1) {
      const out = new Int32Array(4);
      murmur3x86Words(words, count, 0x5eed, out);
      expect(Buffer.from(out.buffer).toString('hex'), `${count} words`).toBe(Buffer.from(murmur3x86Bytes(new Uint8Array(words.buffer, 0, 4 * count), 0x5eed)).toString('hex'));
    }
  });
});
