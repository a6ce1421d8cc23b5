/**
 * The bytes of one workload write: a 4 KiB block that names itself, so a
 * read is checked without keeping any payload.
 *
 *   0..3    magic 'JPSN'
 *   4..7    block number (in 4 KiB units)
 *   8..11   write id (the history's value)
 *   12..15  FNV-1a checksum of bytes 0..11 and 16..4095
 *   16..    filler derived from the write id
 *
 * Decoding gives the write id, 0 for an all-zero (never written) block, or
 * `garbageValue` with a note: another block's write (misdirected), a
 * checksum mismatch (torn or corrupt), or bytes of no write at all.
 */
import { garbageValue, initialValue } from '../history/history-event.js';

export const blockBytes = 4096;
const magic = 0x4a50534e;

export function encodeBlock(block: number, writeId: number): Buffer {
  const data = Buffer.alloc(blockBytes);
  data.writeUInt32BE(magic, 0);
  data.writeUInt32BE(block, 4);
  data.writeUInt32BE(writeId, 8);
  let state = (writeId * 2_654_435_761) >>> 0 || 1;
  for (let offset = 16; offset < blockBytes; offset += 4) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    data.writeUInt32BE(state >>> 0, offset);
  }
  data.writeUInt32BE(checksum(data), 12);
  return data;
}

export function decodeBlock(block: number, data: Buffer): { value: number; note?: string } {
  if (data.length !== blockBytes) return { value: garbageValue, note: `read ${data.length} bytes` };
  if (data.readUInt32BE(0) !== magic) {
    return data.every((byte) => byte === 0) ? { value: initialValue } : { value: garbageValue, note: 'bytes of no write (bad magic)' };
  }
  const writeId = data.readUInt32BE(8);
  if (data.readUInt32BE(12) !== checksum(data)) return { value: garbageValue, note: `checksum mismatch (torn or corrupt; header names write ${writeId})` };
  const named = data.readUInt32BE(4);
  if (named !== block) return { value: garbageValue, note: `write ${writeId} of block ${named} found in block ${block}` };
  return { value: writeId };
}

function checksum(data: Buffer): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < blockBytes; index += 1) {
    if (index >= 12 && index < 16) continue;
    hash = Math.imul(hash ^ data[index]!, 0x01000193);
  }
  return hash >>> 0;
}
