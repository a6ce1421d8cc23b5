/**
 * The transmission phase on the wire: parsing request headers, deciding
 * whether a request is acceptable, and encoding simple and structured
 * replies. Everything here is a pure function of bytes and negotiated
 * state; the connection decides when to call it.
 *
 * Theory of operation. A request is a 28-byte header, followed by a payload
 * only for NBD_CMD_WRITE. A header with the wrong magic means the stream is
 * out of step and cannot be trusted again, so the connection closes. Any
 * other mistake (unknown command, unknown flag, misalignment, out of range,
 * oversized) is answered with an error reply and the stream continues; for
 * that to work a WRITE's payload is always consumed, even when the request
 * is refused. Only a WRITE so large that the specification lets the server
 * call it a denial of service (over both the advertised maximum and 32 MiB)
 * is answered by closing instead, since consuming it would mean reading
 * gigabytes the server will never use.
 *
 * Errors follow the specification's advice: EINVAL for bad commands, flags,
 * alignment and oversized requests; ENOSPC for a write or write-zeroes
 * reaching past the end of the export; EINVAL for a read or trim doing so.
 */
import type { NegotiatedExport } from './handshake.js';
import {
  boundedNbdText,
  NBD_CMD_FLAG_DF,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLUSH,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_EINVAL,
  NBD_ENOSPC,
  NBD_PORTABLE_PAYLOAD_BYTES,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_ERROR,
  NBD_REPLY_TYPE_NONE,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_REQUEST_HEADER_BYTES,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_HEADER_BYTES,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_HEADER_BYTES,
  NBD_STRUCTURED_REPLY_MAGIC,
  type NbdErrno,
  wireErrno,
} from './protocol-constants.js';

export interface RequestHeader {
  flags: number;
  type: number;
  /** The client's 8-byte handle, echoed back verbatim in every reply. */
  handle: Buffer;
  /** 64-bit on the wire, so kept as a bigint until it is known to be in range. */
  offset: bigint;
  lengthBytes: number;
}

/** Parses a 28-byte request header, or returns null when its magic is wrong. */
export function parseRequestHeader(bytes: Buffer): RequestHeader | null {
  if (bytes.length < NBD_REQUEST_HEADER_BYTES) throw new Error('request header needs 28 bytes');
  if (bytes.readUInt32BE(0) !== NBD_REQUEST_MAGIC) return null;
  return {
    flags: bytes.readUInt16BE(4),
    type: bytes.readUInt16BE(6),
    // A view, not a copy: received bytes are never reused or changed (a chunk from the socket, or a join of chunks).
    handle: bytes.subarray(8, 16),
    offset: bytes.readBigUInt64BE(16),
    lengthBytes: bytes.readUInt32BE(24),
  };
}

/**
 * What to do with the bytes following a header: a WRITE's payload is read
 * whole (`buffer`), dropped unread as it arrives (`discard`, for a WRITE over
 * the advertised maximum that is still small enough not to be an attack), or
 * refused by closing the connection (`disconnect`). Other commands carry none.
 */
export type PayloadDisposition = 'none' | 'buffer' | 'discard' | 'disconnect';

export function payloadDisposition(header: RequestHeader, negotiated: NegotiatedExport): PayloadDisposition {
  if (header.type !== NBD_CMD_WRITE) return 'none';
  if (header.lengthBytes <= negotiated.exportInfo.maximumPayloadBytes) return 'buffer';
  if (header.lengthBytes <= Math.max(negotiated.exportInfo.maximumPayloadBytes, NBD_PORTABLE_PAYLOAD_BYTES)) return 'discard';
  return 'disconnect';
}

/** A request that passed every check, with its range as plain numbers. */
export interface AcceptedRequest {
  type: number;
  fua: boolean;
  offsetBytes: number;
  lengthBytes: number;
}

export type RequestCheck = { ok: true; request: AcceptedRequest } | { ok: false; errno: NbdErrno; message: string };

function refuse(errno: NbdErrno, message: string): RequestCheck {
  return { ok: false, errno, message };
}

function allowedFlags(type: number, negotiated: NegotiatedExport): number {
  // FUA is valid on every command once NBD_FLAG_SEND_FUA is advertised, which it always is.
  let flags = NBD_CMD_FLAG_FUA;
  if (type === NBD_CMD_READ && negotiated.structuredReplies) flags |= NBD_CMD_FLAG_DF;
  if (type === NBD_CMD_WRITE_ZEROES) flags |= NBD_CMD_FLAG_NO_HOLE;
  return flags;
}

/** Decides whether a request (other than NBD_CMD_DISC) may reach the backend. */
export function checkRequest(header: RequestHeader, negotiated: NegotiatedExport): RequestCheck {
  const info = negotiated.exportInfo;
  const { type, flags, lengthBytes } = header;
  if (type !== NBD_CMD_READ && type !== NBD_CMD_WRITE && type !== NBD_CMD_FLUSH && type !== NBD_CMD_TRIM && type !== NBD_CMD_WRITE_ZEROES) {
    return refuse(NBD_EINVAL, `unsupported command ${type}`);
  }
  if ((flags & ~allowedFlags(type, negotiated)) !== 0) {
    return refuse(NBD_EINVAL, `command flags 0x${flags.toString(16)} not valid for command ${type}`);
  }
  const fua = (flags & NBD_CMD_FLAG_FUA) !== 0;
  if (type === NBD_CMD_FLUSH) {
    if (header.offset !== 0n || lengthBytes !== 0) return refuse(NBD_EINVAL, 'flush offset and length must be zero');
    return { ok: true, request: { type, fua, offsetBytes: 0, lengthBytes: 0 } };
  }
  if ((type === NBD_CMD_READ || type === NBD_CMD_WRITE) && lengthBytes > info.maximumPayloadBytes) {
    return refuse(NBD_EINVAL, `length ${lengthBytes} exceeds the maximum payload of ${info.maximumPayloadBytes} bytes`);
  }
  const minimumBlock = BigInt(info.minimumBlockBytes);
  if (header.offset % minimumBlock !== 0n || BigInt(lengthBytes) % minimumBlock !== 0n) {
    return refuse(NBD_EINVAL, `request not aligned to ${info.minimumBlockBytes} bytes`);
  }
  if (header.offset + BigInt(lengthBytes) > BigInt(info.sizeBytes)) {
    const errno = type === NBD_CMD_WRITE || type === NBD_CMD_WRITE_ZEROES ? NBD_ENOSPC : NBD_EINVAL;
    return refuse(errno, `range ${header.offset}+${lengthBytes} is beyond the export size ${info.sizeBytes}`);
  }
  return { ok: true, request: { type, fua, offsetBytes: Number(header.offset), lengthBytes } };
}

/** A simple reply; `data` follows the header only for a successful read. */
export function encodeSimpleReply(handle: Buffer, errno: number, data?: Buffer): Buffer[] {
  // Every byte is written below, so the header may come from Node's shared pool unzeroed.
  const header = Buffer.allocUnsafe(NBD_SIMPLE_REPLY_HEADER_BYTES);
  header.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
  header.writeUInt32BE(wireErrno(errno), 4);
  handle.copy(header, 8);
  return data === undefined || data.length === 0 ? [header] : [header, data];
}

function encodeChunkHeader(handle: Buffer, flags: number, type: number, payloadBytes: number): Buffer {
  // Every byte is written below, so the header may come from Node's shared pool unzeroed.
  const header = Buffer.allocUnsafe(NBD_STRUCTURED_REPLY_HEADER_BYTES);
  writeChunkHeader(header, handle, flags, type, payloadBytes);
  return header;
}

function writeChunkHeader(header: Buffer, handle: Buffer, flags: number, type: number, payloadBytes: number): void {
  header.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, 0);
  header.writeUInt16BE(flags, 4);
  header.writeUInt16BE(type, 6);
  handle.copy(header, 8);
  header.writeUInt32BE(payloadBytes, 16);
}

/**
 * A successful structured read: one NBD_REPLY_TYPE_OFFSET_DATA chunk marked
 * DONE. The data is already in hand, so no error can follow it, which is the
 * condition for letting a content chunk be the final one. A zero-length read
 * has no content to describe, so it gets a lone NBD_REPLY_TYPE_NONE.
 */
export function encodeStructuredRead(handle: Buffer, offsetBytes: number, data: Buffer): Buffer[] {
  if (data.length === 0) return [encodeStructuredDone(handle)];
  // The chunk header and the offset in one buffer from Node's pool (every byte written): one write fewer per read
  // reply, and no buffer of its own (nor a BigInt) for eight bytes.
  const header = Buffer.allocUnsafe(NBD_STRUCTURED_REPLY_HEADER_BYTES + 8);
  writeChunkHeader(header, handle, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, 8 + data.length);
  // offsetBytes is a safe integer (checkRequest made it one): its high and low 32 bits.
  header.writeUInt32BE(Math.floor(offsetBytes / 2 ** 32), NBD_STRUCTURED_REPLY_HEADER_BYTES);
  header.writeUInt32BE(offsetBytes % 2 ** 32, NBD_STRUCTURED_REPLY_HEADER_BYTES + 4);
  return [header, data];
}

export function encodeStructuredDone(handle: Buffer): Buffer {
  return encodeChunkHeader(handle, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 0);
}

/** A final NBD_REPLY_TYPE_ERROR chunk carrying a message for a human, cut to the spec's 4096 bytes; the error one the spec allows. */
export function encodeStructuredError(handle: Buffer, errno: number, message: string): Buffer {
  const text = boundedNbdText(message);
  const header = encodeChunkHeader(handle, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, 6 + text.length);
  const payload = Buffer.alloc(6 + text.length);
  payload.writeUInt32BE(wireErrno(errno), 0);
  payload.writeUInt16BE(text.length, 4);
  text.copy(payload, 6);
  return Buffer.concat([header, payload]);
}

/** How one request ended, before it is put into either reply format. */
export type RequestOutcome =
  | { ok: true; offsetBytes: number; data?: Buffer }
  | { ok: false; errno: number; message: string };

/**
 * Encodes the reply to one request in the negotiated format. Once structured
 * replies are agreed, reads (and all errors, so their message reaches the
 * user) use structured chunks; other successes use the cheaper simple reply,
 * which the specification allows for replies without data.
 */
export function encodeReply(header: RequestHeader, negotiated: NegotiatedExport, outcome: RequestOutcome): Buffer[] {
  if (!negotiated.structuredReplies) {
    return outcome.ok ? encodeSimpleReply(header.handle, 0, outcome.data) : encodeSimpleReply(header.handle, outcome.errno);
  }
  if (!outcome.ok) return [encodeStructuredError(header.handle, outcome.errno, outcome.message)];
  if (header.type === NBD_CMD_READ) return encodeStructuredRead(header.handle, outcome.offsetBytes, outcome.data ?? Buffer.alloc(0));
  return encodeSimpleReply(header.handle, 0);
}
