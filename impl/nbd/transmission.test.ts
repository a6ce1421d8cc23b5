import fc from 'fast-check';
/**
 * Request checks and reply encodings, byte for byte, without a socket.
 */
import { describe, expect, it } from 'vitest';
import { transmissionFlagsFor, type NegotiatedExport } from './handshake.js';
import type { ExportInfo } from './nbd-backend.js';
import {
  NBD_CMD_FLAG_DF,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_EINVAL,
  NBD_ENOSPC,
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_SEND_DF,
} from './protocol-constants.js';
import { checkRequest, encodeSimpleReply, encodeStructuredError, encodeStructuredRead, parseRequestHeader, payloadDisposition, type RequestHeader } from './transmission.js';

const info: ExportInfo = {
  name: 'vol',
  sizeBytes: 1 << 20,
  minimumBlockBytes: 512,
  preferredBlockBytes: 4096,
  maximumPayloadBytes: 64 * 1024,
  canMultiConn: false,
};

function negotiated(structuredReplies: boolean): NegotiatedExport {
  return { exportInfo: info, structuredReplies, transmissionFlags: transmissionFlagsFor(info, structuredReplies) };
}

function header(type: number, offset: bigint | number, lengthBytes: number, flags = 0): RequestHeader {
  return { type, flags, handle: Buffer.alloc(8, 1), offset: BigInt(offset), lengthBytes };
}

describe('checkRequest', () => {
  it('accepts aligned in-range requests with their documented flags', () => {
    expect(checkRequest(header(NBD_CMD_WRITE, 512, 1024, NBD_CMD_FLAG_FUA), negotiated(false))).toEqual({
      ok: true,
      request: { type: NBD_CMD_WRITE, fua: true, offsetBytes: 512, lengthBytes: 1024 },
    });
    expect(checkRequest(header(NBD_CMD_WRITE_ZEROES, 0, 1 << 20, NBD_CMD_FLAG_NO_HOLE), negotiated(false)).ok).toBe(true);
    expect(checkRequest(header(NBD_CMD_READ, 0, 512, NBD_CMD_FLAG_DF), negotiated(true)).ok).toBe(true);
  });

  it('refuses with the errors the specification recommends', () => {
    const errnoOf = (request: RequestHeader, structured = false): number | undefined => {
      const check = checkRequest(request, negotiated(structured));
      return check.ok ? undefined : check.errno;
    };
    expect(errnoOf(header(NBD_CMD_READ, 0, 512, NBD_CMD_FLAG_DF))).toBe(NBD_EINVAL);
    expect(errnoOf(header(NBD_CMD_READ, 100, 512))).toBe(NBD_EINVAL);
    expect(errnoOf(header(NBD_CMD_READ, 0, 128 * 1024))).toBe(NBD_EINVAL);
    expect(errnoOf(header(NBD_CMD_READ, 1 << 20, 512))).toBe(NBD_EINVAL);
    expect(errnoOf(header(NBD_CMD_TRIM, 1 << 20, 512))).toBe(NBD_EINVAL);
    expect(errnoOf(header(NBD_CMD_WRITE, 1 << 20, 512))).toBe(NBD_ENOSPC);
    expect(errnoOf(header(NBD_CMD_WRITE_ZEROES, (1 << 20) - 512, 1024))).toBe(NBD_ENOSPC);
    expect(errnoOf(header(NBD_CMD_WRITE_ZEROES, 2n ** 64n - 512n, 1024))).toBe(NBD_ENOSPC);
    expect(errnoOf(header(99, 0, 0))).toBe(NBD_EINVAL);
  });

  it('agrees with BigInt arithmetic on alignment and range, for exports as large as a Number sizes them', () => {
    // Offsets near the export's end, around 2^52 and 2^53 (where Numbers stop being exact) and up to 2^64.
    const sizes = [1 << 20, 2 ** 52 - 512, 2 ** 53 - 4096];
    const offset = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 21n }), fc.bigInt({ min: 2n ** 52n - 2n ** 33n, max: 2n ** 52n + 2n ** 33n }),
      fc.bigInt({ min: 2n ** 53n - 2n ** 33n, max: 2n ** 53n + 2n ** 33n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
    const length = fc.oneof(fc.constantFrom(0, 512, 4096, 64 * 1024), fc.nat(64 * 1024));
    fc.assert(fc.property(fc.constantFrom(...sizes), offset.map((value) => (value / 512n) * 512n + (value % 3n === 0n ? 1n : 0n)), length, fc.boolean(), (sizeBytes, offsetBytes, lengthBytes, isWrite) => {
      const exportInfo = { ...info, sizeBytes };
      const check = checkRequest(header(isWrite ? NBD_CMD_WRITE : NBD_CMD_READ, offsetBytes, lengthBytes), { ...negotiated(false), exportInfo });
      const aligned = offsetBytes % 512n === 0n && BigInt(lengthBytes) % 512n === 0n;
      const inRange = offsetBytes + BigInt(lengthBytes) <= BigInt(sizeBytes);
      expect(check.ok).toBe(aligned && inRange);
      if (check.ok) expect(check.request.offsetBytes).toBe(Number(offsetBytes));
      else expect(check.errno).toBe(!aligned ? NBD_EINVAL : isWrite ? NBD_ENOSPC : NBD_EINVAL);
    }), { numRuns: 2_000 });
  });

  it('buffers, discards or refuses write payloads by size', () => {
    expect(payloadDisposition(header(NBD_CMD_READ, 0, 1 << 30), negotiated(false))).toBe('none');
    expect(payloadDisposition(header(NBD_CMD_WRITE, 0, 64 * 1024), negotiated(false))).toBe('buffer');
    expect(payloadDisposition(header(NBD_CMD_WRITE, 0, 32 << 20), negotiated(false))).toBe('discard');
    expect(payloadDisposition(header(NBD_CMD_WRITE, 0, (32 << 20) + 1), negotiated(false))).toBe('disconnect');
  });
});

describe('transmission flags', () => {
  it('offers DF only with structured replies and multi-conn only when the backend vouches for it', () => {
    expect(transmissionFlagsFor(info, false) & NBD_FLAG_SEND_DF).toBe(0);
    expect(transmissionFlagsFor(info, true) & NBD_FLAG_SEND_DF).toBe(NBD_FLAG_SEND_DF);
    expect(transmissionFlagsFor(info, false) & NBD_FLAG_CAN_MULTI_CONN).toBe(0);
    expect(transmissionFlagsFor({ ...info, canMultiConn: true }, false) & NBD_FLAG_CAN_MULTI_CONN).toBe(NBD_FLAG_CAN_MULTI_CONN);
  });
});

describe('encodings', () => {
  const handle = Buffer.from('0102030405060708', 'hex');

  it('parses a request header and rejects a wrong magic', () => {
    const bytes = Buffer.from('25609513' + '0001' + '0001' + '0102030405060708' + '0000000000001000' + '00000200', 'hex');
    expect(parseRequestHeader(bytes)).toEqual({ flags: 1, type: 1, handle, offset: 4096n, lengthBytes: 512 });
    bytes.writeUInt32BE(0x12560953, 0);
    expect(parseRequestHeader(bytes)).toBeNull();
  });

  it('encodes simple and structured replies', () => {
    expect(Buffer.concat(encodeSimpleReply(handle, NBD_EINVAL)).toString('hex')).toBe('67446698' + '00000016' + '0102030405060708');
    expect(Buffer.concat(encodeStructuredRead(handle, 4096, Buffer.from('ab'))).toString('hex')).toBe(
      '668e33ef' + '0001' + '0001' + '0102030405060708' + '0000000a' + '0000000000001000' + '6162',
    );
    expect(Buffer.concat(encodeStructuredRead(handle, 2 ** 40 + 4096, Buffer.from('ab'))).toString('hex')).toBe(
      '668e33ef' + '0001' + '0001' + '0102030405060708' + '0000000a' + '0000010000001000' + '6162',
    );
    expect(encodeStructuredError(handle, NBD_EINVAL, 'no').toString('hex')).toBe(
      '668e33ef' + '0001' + '8001' + '0102030405060708' + '00000008' + '00000016' + '0002' + '6e6f',
    );
  });

  it('puts only the errors the spec allows on the wire (EIO for the group\'s own EAGAIN and ETIMEDOUT), and messages of at most 4096 bytes', () => {
    const handle = Buffer.from('0102030405060708', 'hex');
    // 11 (EAGAIN: too many requests in flight) and 110 (ETIMEDOUT: a forward timed out) are not in the spec's set.
    for (const errno of [11, 110, 2, 13]) {
      expect(Buffer.concat(encodeSimpleReply(handle, errno)).readUInt32BE(4), `simple, ${errno}`).toBe(5);
      expect(encodeStructuredError(handle, errno, 'busy').readUInt32BE(20), `structured, ${errno}`).toBe(5);
    }
    for (const errno of [0, 1, 5, 12, 22, 28, 75, 95, 108]) expect(Buffer.concat(encodeSimpleReply(handle, errno)).readUInt32BE(4)).toBe(errno);
    // A message cut to 4096 bytes, before a character that would not fit (a 3-byte one straddles the bound here).
    const chunk = encodeStructuredError(handle, NBD_EINVAL, 'a'.repeat(4095) + '€€');
    expect(chunk.readUInt16BE(24)).toBe(4095);
    expect(chunk.subarray(26).toString('utf8')).toBe('a'.repeat(4095));
  });
});
