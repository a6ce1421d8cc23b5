import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PeerEnvelope } from './peer-frame.js';
import { encodePeerFrame, encodePeerFrameParts, peerFrameBytesMax, PeerFrameDecoder, peerProtocolVersion } from './peer-frame.js';

/**
 * The peer wire format: whatever way the stream is cut into chunks, the
 * decoder returns exactly the frames sent, in order, with their data; the
 * header/data parts a sender writes are byte for byte the joined frame; and
 * a hostile length is refused before anything is allocated.
 */
const seed = Number(process.env['BLOCKSHIFT_SEED'] ?? Date.now() % 2 ** 31);

function message(index: number): PeerEnvelope {
  return { kind: 'message', message: { type: 'piece.stored', pageKey: { volume: 'v', page: index }, attempt: 1, epoch: 2, piece: index, offsetBlocks: 0, lengthBlocks: 8 } };
}

function decodeAll(stream: Buffer, cuts: readonly number[]): Array<{ envelope: PeerEnvelope; data: Buffer | null }> {
  const decoder = new PeerFrameDecoder();
  const frames = [];
  let start = 0;
  for (const cut of [...cuts, stream.length]) {
    frames.push(...decoder.push(stream.subarray(start, cut)));
    start = cut;
  }
  return frames;
}

describe('peer frames', () => {
  it('hands over at most framesMax frames per push, keeping the rest for the next (empty) push, in order', () => {
    const stream = Buffer.concat(Array.from({ length: 10 }, (_, index) => encodePeerFrame(message(index), index % 3 === 0 ? Buffer.from(`data ${index}`) : null)));
    const decoder = new PeerFrameDecoder();
    const batches: number[][] = [];
    for (let chunk: Buffer = stream; ; chunk = Buffer.alloc(0)) {
      const frames = decoder.push(chunk, 3);
      if (frames.length === 0) break;
      batches.push(frames.map((frame) => (frame.envelope.kind === 'message' && frame.envelope.message.type === 'piece.stored' ? frame.envelope.message.piece : -1)));
      expect(frames.every((frame, index) => (batches.at(-1)![index]! % 3 === 0) === (frame.data !== null))).toBe(true);
    }
    expect(batches).toEqual([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]);
  });

  it('a frame is u32 frameBytes | u8 version | u32 headerBytes | u8 kind 1 | header JSON | data, big-endian, and its data part is the caller\'s buffer', () => {
    const data = Buffer.from('piece bytes');
    const envelope = message(1);
    const header = Buffer.concat([Buffer.from([1]), Buffer.from(JSON.stringify(envelope), 'utf8')]);
    const expected = Buffer.alloc(9 + header.length + data.length);
    expect(peerProtocolVersion).toBe(9);
    expected.writeUInt32BE(5 + header.length + data.length, 0);
    expected.writeUInt8(9, 4);
    expected.writeUInt32BE(header.length, 5);
    header.copy(expected, 9);
    data.copy(expected, 9 + header.length);
    const parts = encodePeerFrameParts(envelope, data);
    expect(Buffer.concat(parts)).toEqual(expected);
    expect(parts[1]).toBe(data);
    expect(encodePeerFrame(envelope, data)).toEqual(expected);
    expect(encodePeerFrameParts(message(2), null)).toHaveLength(1);
  });

  it('any cutting of a stream of frames decodes to the frames sent, data included', () => {
    console.log(`peer frame chunking seed=${seed}`);
    const frameArbitrary = fc.tuple(fc.nat({ max: 1000 }), fc.option(fc.uint8Array({ minLength: 1, maxLength: 3000 }), { nil: null }));
    fc.assert(fc.property(fc.array(frameArbitrary, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 40 }), (sent, rawCuts) => {
      const stream = Buffer.concat(sent.map(([index, data]) => encodePeerFrame(message(index), data ? Buffer.from(data) : null)));
      const cuts = [...new Set(rawCuts.map((cut) => cut % (stream.length + 1)))].sort((a, b) => a - b);
      const frames = decodeAll(stream, cuts);
      expect(frames.map((frame) => frame.envelope)).toEqual(sent.map(([index]) => message(index)));
      expect(frames.map((frame) => frame.data && [...frame.data])).toEqual(sent.map(([, data]) => data && [...data]));
    }), { seed, numRuns: 300 });
  });

  it('a 4 MiB piece cut into 64 KiB chunks decodes intact', () => {
    const data = Buffer.alloc(4 * 2 ** 20);
    for (let index = 0; index < data.length; index += 4096) data[index] = index % 251;
    const stream = encodePeerFrame(message(7), data);
    const cuts = Array.from({ length: Math.floor(stream.length / 65_536) }, (_, index) => (index + 1) * 65_536);
    const [frame, ...rest] = decodeAll(stream, cuts);
    expect(rest).toHaveLength(0);
    expect(frame?.data?.equals(data)).toBe(true);
  });

  it('refuses a frame longer than the bound before it arrives', () => {
    const prefix = Buffer.alloc(9);
    prefix.writeUInt32BE(peerFrameBytesMax + 1, 0);
    prefix.writeUInt8(peerProtocolVersion, 4);
    prefix.writeUInt32BE(10, 5);
    expect(() => new PeerFrameDecoder().push(prefix)).toThrow('malformed peer frame lengths');
  });

  // Version 1 had no kind byte; version 2 no loss epochs in write answers, FLUSH answers and leave checks; version 3 no
  // abandoned moves and no move epoch in answers about a move; version 4 no `to` in the hello; version 5 no request.cancel; version 6
  // no block.cancel; version 7 no incarnation fence; version 8 no lost-pages claims.
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('refuses a version %i frame', (version) => {
    const prefix = Buffer.alloc(9);
    prefix.writeUInt32BE(15, 0);
    prefix.writeUInt8(version, 4);
    prefix.writeUInt32BE(10, 5);
    expect(() => new PeerFrameDecoder().push(prefix)).toThrow(`peer protocol version ${version}, expected 9`);
  });
});
