import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PeerMessage } from '../../machines/node/messages.js';
import { compactAnswerKind, compactForwardKind, encodeCompactRequestHeader } from './compact-request-header.js';
import { encodePeerFrame, encodePeerFrameParts, jsonHeaderKind, PeerFrameDecoder } from './peer-frame.js';

/**
 * The binary header of `request.forward` and `request.answer`: every such
 * message, whatever its field values, comes out of a frame exactly as it
 * went in (through the compact layout when its fields fit, through JSON
 * when they do not); the compact layout is the one used for the ordinary
 * values; a header cut short, padded or with unknown flags is refused.
 */
const seed = Number(process.env['BLOCKSHIFT_SEED'] ?? Date.now() % 2 ** 31);

// Numbers sometimes outside u32/i32 and strings sometimes beyond 64 KiB, so the JSON fallback is exercised too.
const count = fc.oneof(fc.nat({ max: 2 ** 32 - 1 }), fc.integer({ min: -5, max: 2 ** 33 }), fc.constant(0.5));
const text = fc.oneof({ weight: 20, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) }, { weight: 1, arbitrary: fc.string({ minLength: 66_000, maxLength: 66_100 }) });
const token = fc.option(text, { nil: null });

const forward: fc.Arbitrary<PeerMessage> = fc.record({
  type: fc.constant('request.forward' as const), requestId: text, hopCount: count, retry: count,
  operation: fc.record({ kind: fc.constantFrom('read' as const, 'write' as const), pageKey: fc.record({ volume: text, page: count }), offsetBlocks: count, lengthBlocks: count, fua: fc.boolean() }),
  dataToken: token, senderIncarnation: count,
});
const outcome = fc.oneof(
  fc.constant({ status: 'ok' as const }),
  fc.record({ status: fc.constant('stale' as const), owner: text, epoch: count }),
  fc.record({ status: fc.constant('error' as const), errno: fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), count), reason: text }),
);
const holders = fc.array(fc.record({ server: text, lossEpoch: count }), { maxLength: 3 });
const answer: fc.Arbitrary<PeerMessage> = fc.tuple(
  fc.record({ type: fc.constant('request.answer' as const), requestId: text, retry: count, outcome, dataToken: token, holders }),
  fc.boolean(),
).map(([message, routeProvisional]): PeerMessage => (routeProvisional ? { ...message, routeProvisional: true } : message));

function roundTrip(message: PeerMessage, data: Buffer | null): { message: PeerMessage; data: Buffer | null; headerKind: number } {
  const stream = encodePeerFrame({ kind: 'message', message }, data);
  const frames = new PeerFrameDecoder().push(stream);
  expect(frames).toHaveLength(1);
  const [frame] = frames;
  if (frame?.envelope.kind !== 'message') throw new Error('not a message');
  return { message: frame.envelope.message, data: frame.data, headerKind: stream.readUInt8(9) };
}

const ordinaryForward: PeerMessage = {
  type: 'request.forward', requestId: 's2.1-17', hopCount: 1, retry: 0,
  operation: { kind: 'write', pageKey: { volume: 'local', page: 3 }, offsetBlocks: 4096, lengthBlocks: 8, fua: true }, dataToken: 'client:s2.1-17', senderIncarnation: 3,
};

describe('compact request headers', () => {
  it('every forward and answer survives a frame unchanged, data included', () => {
    console.log(`compact request header seed=${seed}`);
    fc.assert(fc.property(fc.oneof(forward, answer), fc.option(fc.uint8Array({ minLength: 1, maxLength: 64 }), { nil: null }), (message, data) => {
      const sent = data ? Buffer.from(data) : null;
      const received = roundTrip(message, sent);
      expect(received.message).toEqual(message);
      expect(received.data && [...received.data]).toEqual(sent && [...sent]);
      // The compact layout is used exactly when the encoder accepts the message.
      expect(received.headerKind).toBe(encodeCompactRequestHeader(message, 0) === null ? jsonHeaderKind : message.type === 'request.forward' ? compactForwardKind : compactAnswerKind);
    }), { seed, numRuns: 1000 });
  });

  it('ordinary forwards and answers take the compact layout, which is much smaller than JSON', () => {
    const answers: PeerMessage[] = [
      { type: 'request.answer', requestId: 's2.1-17', retry: 2, outcome: { status: 'ok' }, dataToken: 'read:s1.1-99', holders: [] },
      { type: 'request.answer', requestId: 's2.1-18', retry: 0, outcome: { status: 'ok' }, dataToken: null, holders: [{ server: 's1', lossEpoch: 3 }, { server: 's3', lossEpoch: 0 }] },
      { type: 'request.answer', requestId: 's2.1-17', retry: 0, outcome: { status: 'stale', owner: 's3', epoch: 7 }, dataToken: null, holders: [] },
      { type: 'request.answer', requestId: 's2.1-17', retry: 0, outcome: { status: 'stale', owner: 's3', epoch: 7 }, dataToken: null, holders: [], routeProvisional: true },
      { type: 'request.answer', requestId: 's2.1-17', retry: 0, outcome: { status: 'error', errno: 5, reason: 'disk ✗' }, dataToken: null, holders: [] },
    ];
    for (const message of [ordinaryForward, ...answers]) {
      const received = roundTrip(message, null);
      expect(received.headerKind).toBe(message.type === 'request.forward' ? compactForwardKind : compactAnswerKind);
      expect(received.message).toEqual(message);
    }
    const [head] = encodePeerFrameParts({ kind: 'message', message: ordinaryForward }, null);
    expect(head!.length).toBeLessThan(JSON.stringify(ordinaryForward).length / 2);
  });

  it('a compact header cut short, padded or with unknown flags closes the connection', () => {
    const [head] = encodePeerFrameParts({ kind: 'message', message: ordinaryForward }, null);
    const withHeader = (header: Buffer) => {
      const frame = Buffer.alloc(9 + header.length);
      head!.copy(frame, 0, 0, 9);
      frame.writeUInt32BE(5 + header.length, 0);
      frame.writeUInt32BE(header.length, 5);
      header.copy(frame, 9);
      return frame;
    };
    const header = head!.subarray(9);
    expect(() => new PeerFrameDecoder().push(withHeader(header.subarray(0, header.length - 1)))).toThrow('truncated');
    expect(() => new PeerFrameDecoder().push(withHeader(Buffer.concat([header, Buffer.from([0])])))).toThrow('trailing bytes');
    const flagsAt = 1 + 2 + 's2.1-17'.length + 8;
    const badFlags = Buffer.from(header);
    badFlags.writeUInt8(0x80 | badFlags.readUInt8(flagsAt), flagsAt);
    expect(() => new PeerFrameDecoder().push(withHeader(badFlags))).toThrow('unknown flags');
    const badKind = Buffer.from(header);
    badKind.writeUInt8(99, 0);
    expect(() => new PeerFrameDecoder().push(withHeader(badKind))).toThrow('unknown peer header kind 99');
  });
});
