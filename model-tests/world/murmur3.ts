/**
 * MurmurHash3_x86_128 (Austin Appleby, SMHasher; public domain), over 32-bit
 * words read as little-endian bytes.
 *
 * Theory of operation. The fingerprint of a world (fingerprint.ts) is a
 * short stream of 32-bit words: the 96-bit hashes of its pieces and the
 * numbers its minted ids are renamed to. SHA-1 of that stream would cost a
 * native call and about a microsecond per world; this hash runs in JavaScript
 * on the words in place, in about a tenth of that. It is not cryptographic,
 * and need not be: nothing adversarial chooses the states. What the explorer
 * relies on is that it spreads distinct streams like a random function, so
 * that two of n distinct states agree on the 96 bits the visited set keeps
 * with probability below n²/2⁹⁷ (visited-set.ts) — the assumption SPIN's
 * bitstate hashing and TLC's 64-bit fingerprints make of their hashes.
 *
 * `murmur3x86Bytes` is the reference algorithm over bytes, for the test that
 * checks it against SMHasher's published verification value and the word
 * form against it.
 */

const c1 = 0x239b961b;
const c2 = 0xab0e9789;
const c3 = 0x38b34ae5;
const c4 = 0xa1e38b93;

function rotl(value: number, bits: number): number {
  return (value << bits) | (value >>> (32 - bits));
}

function fmix(value: number): number {
  let h = value;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

/** The 128-bit hash, as four words h1..h4 (the digest's bytes are each word little-endian, h1 first), written into `out`. */
export function murmur3x86Words(words: Int32Array, count: number, seed: number, out: Int32Array): void {
  const blocks = count >>> 2;
  mixBlocks(words, blocks, seed, out);
  let h1 = out[0] as number;
  let h2 = out[1] as number;
  let h3 = out[2] as number;
  let h4 = out[3] as number;
  const tail = blocks << 2;
  const rest = count & 3;
  // Whole tail words only: the word form hashes a byte length that is a multiple of four.
  if (rest >= 3) { let k3 = words[tail + 2] as number; k3 = Math.imul(k3, c3); k3 = rotl(k3, 17); k3 = Math.imul(k3, c4); h3 ^= k3; }
  if (rest >= 2) { let k2 = words[tail + 1] as number; k2 = Math.imul(k2, c2); k2 = rotl(k2, 16); k2 = Math.imul(k2, c3); h2 ^= k2; }
  if (rest >= 1) { let k1 = words[tail] as number; k1 = Math.imul(k1, c1); k1 = rotl(k1, 15); k1 = Math.imul(k1, c2); h1 ^= k1; }
  finish(h1, h2, h3, h4, count * 4, out);
}

function finish(a: number, b: number, c: number, d: number, lengthBytes: number, out: Int32Array): void {
  let h1 = a ^ lengthBytes;
  let h2 = b ^ lengthBytes;
  let h3 = c ^ lengthBytes;
  let h4 = d ^ lengthBytes;
  h1 = (h1 + h2) | 0; h1 = (h1 + h3) | 0; h1 = (h1 + h4) | 0;
  h2 = (h2 + h1) | 0; h3 = (h3 + h1) | 0; h4 = (h4 + h1) | 0;
  h1 = fmix(h1); h2 = fmix(h2); h3 = fmix(h3); h4 = fmix(h4);
  h1 = (h1 + h2) | 0; h1 = (h1 + h3) | 0; h1 = (h1 + h4) | 0;
  h2 = (h2 + h1) | 0; h3 = (h3 + h1) | 0; h4 = (h4 + h1) | 0;
  out[0] = h1;
  out[1] = h2;
  out[2] = h3;
  out[3] = h4;
}

/** The reference form over any byte string (16 bytes: h1..h4, each little-endian). */
export function murmur3x86Bytes(bytes: Uint8Array, seed: number): Uint8Array {
  const length = bytes.length;
  const wordAt = (at: number) => ((bytes[at] as number) | ((bytes[at + 1] as number) << 8) | ((bytes[at + 2] as number) << 16) | ((bytes[at + 3] as number) << 24));
  const blockCount = length >>> 4;
  const words = new Int32Array(blockCount * 4);
  for (let index = 0; index < words.length; index += 1) words[index] = wordAt(index * 4);
  const state = new Int32Array(4);
  // Run the blocks through the word form's loop by hashing them with no tail, then redo the tail and finish by bytes.
  mixBlocks(words, blockCount, seed, state);
  let h1 = state[0] as number;
  let h2 = state[1] as number;
  let h3 = state[2] as number;
  let h4 = state[3] as number;
  const tail = blockCount * 16;
  const rest = length & 15;
  // Tail word w holds the tail's bytes 4w..4w+3 that exist, little-endian.
  const tailWord = (word: number): number => {
    let k = 0;
    for (let offset = 0; offset < 4 && 4 * word + offset < rest; offset += 1) k |= (bytes[tail + 4 * word + offset] as number) << (8 * offset);
    return k;
  };
  if (rest > 12) { let k4 = tailWord(3); k4 = Math.imul(k4, c4); k4 = rotl(k4, 18); k4 = Math.imul(k4, c1); h4 ^= k4; }
  if (rest > 8) { let k3 = tailWord(2); k3 = Math.imul(k3, c3); k3 = rotl(k3, 17); k3 = Math.imul(k3, c4); h3 ^= k3; }
  if (rest > 4) { let k2 = tailWord(1); k2 = Math.imul(k2, c2); k2 = rotl(k2, 16); k2 = Math.imul(k2, c3); h2 ^= k2; }
  if (rest > 0) { let k1 = tailWord(0); k1 = Math.imul(k1, c1); k1 = rotl(k1, 15); k1 = Math.imul(k1, c2); h1 ^= k1; }
  finish(h1, h2, h3, h4, length, state);
  return new Uint8Array(state.buffer);
}

/** The state after the whole 16-byte blocks, before tail and finish, written into `out` as h1..h4 (no allocation: the word form runs per transition). */
function mixBlocks(words: Int32Array, blockCount: number, seed: number, out: Int32Array): void {
  let h1 = seed | 0;
  let h2 = seed | 0;
  let h3 = seed | 0;
  let h4 = seed | 0;
  for (let block = 0; block < blockCount; block += 1) {
    const at = block << 2;
    let k1 = words[at] as number;
    let k2 = words[at + 1] as number;
    let k3 = words[at + 2] as number;
    let k4 = words[at + 3] as number;
    k1 = Math.imul(k1, c1); k1 = rotl(k1, 15); k1 = Math.imul(k1, c2); h1 ^= k1;
    h1 = rotl(h1, 19); h1 = (h1 + h2) | 0; h1 = (Math.imul(h1, 5) + 0x561ccd1b) | 0;
    k2 = Math.imul(k2, c2); k2 = rotl(k2, 16); k2 = Math.imul(k2, c3); h2 ^= k2;
    h2 = rotl(h2, 17); h2 = (h2 + h3) | 0; h2 = (Math.imul(h2, 5) + 0x0bcaa747) | 0;
    k3 = Math.imul(k3, c3); k3 = rotl(k3, 17); k3 = Math.imul(k3, c4); h3 ^= k3;
    h3 = rotl(h3, 15); h3 = (h3 + h4) | 0; h3 = (Math.imul(h3, 5) + 0x96cd1c35) | 0;
    k4 = Math.imul(k4, c4); k4 = rotl(k4, 18); k4 = Math.imul(k4, c1); h4 ^= k4;
    h4 = rotl(h4, 13); h4 = (h4 + h1) | 0; h4 = (Math.imul(h4, 5) + 0x32ac3b17) | 0;
  }
  out[0] = h1;
  out[1] = h2;
  out[2] = h3;
  out[3] = h4;
}
