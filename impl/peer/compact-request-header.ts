/**
 * A binary header for the two peer messages every forwarded request sends:
 * `request.forward` (forwarder → owner) and `request.answer` (owner →
 * forwarder). They are the whole per-request traffic between servers, so
 * their header is written field by field instead of as JSON: no string is
 * built, no UTF-8 text is parsed, one small buffer is allocated per frame.
 *
 * Layout (big-endian, after the header kind byte that `peer-frame.ts` puts
 * first). A string is `u16 byteLength | UTF-8 bytes`; a count or number is a
 * u32 (errno an i32).
 *
 *   forward: requestId, u32 hopCount, u32 retry, u8 flags (1 write, 2 fua,
 *            4 has token), volume, u32 page, u32 offsetBlocks,
 *            u32 lengthBlocks, u32 senderIncarnation, [dataToken]
 *   answer:  requestId, u32 retry, u8 flags (4 has token, 8 route
 *            provisional), u8 status
 *            (0 ok, 1 stale, 2 error), stale: owner, u32 epoch;
 *            error: i32 errno, reason; then [dataToken], u8 holderCount,
 *            holderCount × (server, u32 lossEpoch)
 *
 * `encodeCompactRequestHeader` returns null for a message it cannot write
 * exactly (another type, a number outside u32, a string over 64 KiB): the
 * caller then sends it as JSON, so nothing is ever approximated. Every field
 * of the two messages is in the layout, and the type check keeps it so: a
 * field added to either message type and not here fails `npm run typecheck`
 * (`layoutFieldsAreExact` below). One was once dropped silently on the wire
 * (`routeProvisional`, found by a review). The
 * decoder checks every length against the header's end and throws on a
 * malformed header, which closes the connection like any malformed frame.
 */
import type { PeerMessage } from '../../machines/node/messages.js';

export const compactForwardKind = 2;
export const compactAnswerKind = 3;

type ForwardMessage = Extract<PeerMessage, { type: 'request.forward' }>;
type AnswerMessage = Extract<PeerMessage, { type: 'request.answer' }>;

/** True exactly when the two unions of field names are equal. */
type SameFields<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** Every field name of every variant of T (plain `keyof` of a union keeps only the names all variants share). */
type AllKeys<T> = T extends unknown ? keyof T : never;
/** The fields the layout writes, checked against the message types: adding a field there without adding it here fails to compile. */
const layoutFieldsAreExact: [
  SameFields<AllKeys<ForwardMessage>, 'type' | 'requestId' | 'hopCount' | 'retry' | 'operation' | 'dataToken' | 'senderIncarnation'>,
  SameFields<AllKeys<ForwardMessage['operation']>, 'kind' | 'pageKey' | 'offsetBlocks' | 'lengthBlocks' | 'fua'>,
  SameFields<AllKeys<ForwardMessage['operation']['pageKey']>, 'volume' | 'page'>,
  SameFields<AllKeys<AnswerMessage>, 'type' | 'requestId' | 'retry' | 'outcome' | 'dataToken' | 'holders' | 'routeProvisional'>,
  SameFields<AllKeys<AnswerMessage['outcome']>, 'status' | 'owner' | 'epoch' | 'errno' | 'reason'>,
  SameFields<AllKeys<AnswerMessage['holders'][number]>, 'server' | 'lossEpoch'>,
] = [true, true, true, true, true, true];
void layoutFieldsAreExact;

const flagWrite = 1;
const flagFua = 2;
const flagToken = 4;
const flagRouteProvisional = 8;
const stringBytesMax = 0xffff;
const statusOk = 0;
const statusStale = 1;
const statusError = 2;

function isU32(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff;
}

function isI32(value: number): boolean {
  return Number.isInteger(value) && value >= -0x8000_0000 && value <= 0x7fff_ffff;
}

/** Byte length of a string field (prefix included), or -1 when it does not fit. */
function stringFieldBytes(text: string): number {
  const bytes = Buffer.byteLength(text, 'utf8');
  return bytes <= stringBytesMax ? 2 + bytes : -1;
}

function writeString(target: Buffer, offset: number, text: string, fieldBytes: number): number {
  target.writeUInt16BE(fieldBytes - 2, offset);
  target.write(text, offset + 2, fieldBytes - 2, 'utf8');
  return offset + fieldBytes;
}

/**
 * The message's compact header behind `prefixBytes` reserved bytes (the
 * caller fills them) and its kind byte, or null when the message is not one
 * of the two or does not fit the layout exactly.
 */
export function encodeCompactRequestHeader(message: PeerMessage, prefixBytes: number): Buffer | null {
  if (message.type === 'request.forward') return encodeForward(message, prefixBytes);
  if (message.type === 'request.answer') return encodeAnswer(message, prefixBytes);
  return null;
}

function encodeForward(message: ForwardMessage, prefixBytes: number): Buffer | null {
  const { operation } = message;
  if (!isU32(message.hopCount) || !isU32(message.retry) || !isU32(message.senderIncarnation) || !isU32(operation.pageKey.page) || !isU32(operation.offsetBlocks) || !isU32(operation.lengthBlocks)) return null;
  if (operation.kind !== 'read' && operation.kind !== 'write') return null;
  const idBytes = stringFieldBytes(message.requestId);
  const volumeBytes = stringFieldBytes(operation.pageKey.volume);
  const tokenBytes = message.dataToken === null ? 0 : stringFieldBytes(message.dataToken);
  if (idBytes < 0 || volumeBytes < 0 || tokenBytes < 0) return null;
  const head = Buffer.allocUnsafe(prefixBytes + 1 + idBytes + 4 + 4 + 1 + volumeBytes + 16 + tokenBytes);
  let offset = prefixBytes;
  head.writeUInt8(compactForwardKind, offset);
  offset = writeString(head, offset + 1, message.requestId, idBytes);
  offset = head.writeUInt32BE(message.hopCount, offset);
  offset = head.writeUInt32BE(message.retry, offset);
  const flags = (operation.kind === 'write' ? flagWrite : 0) | (operation.fua ? flagFua : 0) | (message.dataToken === null ? 0 : flagToken);
  offset = head.writeUInt8(flags, offset);
  offset = writeString(head, offset, operation.pageKey.volume, volumeBytes);
  offset = head.writeUInt32BE(operation.pageKey.page, offset);
  offset = head.writeUInt32BE(operation.offsetBlocks, offset);
  offset = head.writeUInt32BE(operation.lengthBlocks, offset);
  offset = head.writeUInt32BE(message.senderIncarnation, offset);
  if (message.dataToken !== null) offset = writeString(head, offset, message.dataToken, tokenBytes);
  return head;
}

function encodeAnswer(message: AnswerMessage, prefixBytes: number): Buffer | null {
  const { outcome } = message;
  if (message.routeProvisional !== undefined && (message.routeProvisional !== true || outcome.status !== 'stale')) return null;
  if (!isU32(message.retry)) return null;
  const idBytes = stringFieldBytes(message.requestId);
  const tokenBytes = message.dataToken === null ? 0 : stringFieldBytes(message.dataToken);
  let outcomeBytes = 1;
  let textBytes = 0;
  if (outcome.status === 'stale') {
    if (!isU32(outcome.epoch)) return null;
    textBytes = stringFieldBytes(outcome.owner);
    outcomeBytes += textBytes + 4;
  } else if (outcome.status === 'error') {
    if (!isI32(outcome.errno)) return null;
    textBytes = stringFieldBytes(outcome.reason);
    outcomeBytes += 4 + textBytes;
  } else if (outcome.status !== 'ok') return null;
  if (idBytes < 0 || tokenBytes < 0 || textBytes < 0 || message.holders.length > 0xff) return null;
  let holdersBytes = 1;
  for (const holder of message.holders) {
    const serverBytes = stringFieldBytes(holder.server);
    if (serverBytes < 0 || !isU32(holder.lossEpoch)) return null;
    holdersBytes += serverBytes + 4;
  }
  const head = Buffer.allocUnsafe(prefixBytes + 1 + idBytes + 4 + 1 + outcomeBytes + tokenBytes + holdersBytes);
  let offset = prefixBytes;
  head.writeUInt8(compactAnswerKind, offset);
  offset = writeString(head, offset + 1, message.requestId, idBytes);
  offset = head.writeUInt32BE(message.retry, offset);
  offset = head.writeUInt8((message.dataToken === null ? 0 : flagToken) | (message.routeProvisional === true ? flagRouteProvisional : 0), offset);
  if (outcome.status === 'ok') {
    offset = head.writeUInt8(statusOk, offset);
  } else if (outcome.status === 'stale') {
    offset = head.writeUInt8(statusStale, offset);
    offset = writeString(head, offset, outcome.owner, textBytes);
    offset = head.writeUInt32BE(outcome.epoch, offset);
  } else {
    offset = head.writeUInt8(statusError, offset);
    offset = head.writeInt32BE(outcome.errno, offset);
    offset = writeString(head, offset, outcome.reason, textBytes);
  }
  if (message.dataToken !== null) offset = writeString(head, offset, message.dataToken, tokenBytes);
  offset = head.writeUInt8(message.holders.length, offset);
  for (const holder of message.holders) {
    offset = writeString(head, offset, holder.server, stringFieldBytes(holder.server));
    offset = head.writeUInt32BE(holder.lossEpoch, offset);
  }
  return head;
}

/** Reads a compact header's fields in order, never past `end`. */
class HeaderReader {
  #offset: number;

  constructor(readonly bytes: Buffer, start: number, readonly end: number) {
    this.#offset = start;
  }

  #claim(count: number): number {
    const at = this.#offset;
    if (at + count > this.end) throw new Error('compact peer header is truncated');
    this.#offset = at + count;
    return at;
  }

  u8(): number {
    return this.bytes.readUInt8(this.#claim(1));
  }

  u32(): number {
    return this.bytes.readUInt32BE(this.#claim(4));
  }

  i32(): number {
    return this.bytes.readInt32BE(this.#claim(4));
  }

  text(): string {
    const length = this.u16();
    const at = this.#claim(length);
    return this.bytes.toString('utf8', at, at + length);
  }

  u16(): number {
    return this.bytes.readUInt16BE(this.#claim(2));
  }

  finish(): void {
    if (this.#offset !== this.end) throw new Error('compact peer header has trailing bytes');
  }
}

/** Decodes `bytes[start, end)`, the body after the kind byte, of a header of kind `kind`. */
export function decodeCompactRequestHeader(kind: number, bytes: Buffer, start: number, end: number): PeerMessage {
  const reader = new HeaderReader(bytes, start, end);
  if (kind === compactForwardKind) {
    const requestId = reader.text();
    const hopCount = reader.u32();
    const retry = reader.u32();
    const flags = reader.u8();
    if ((flags & ~(flagWrite | flagFua | flagToken)) !== 0) throw new Error('compact forward header has unknown flags');
    const volume = reader.text();
    const page = reader.u32();
    const offsetBlocks = reader.u32();
    const lengthBlocks = reader.u32();
    const senderIncarnation = reader.u32();
    const dataToken = (flags & flagToken) !== 0 ? reader.text() : null;
    reader.finish();
    return {
      type: 'request.forward', requestId, hopCount, retry,
      operation: { kind: (flags & flagWrite) !== 0 ? 'write' : 'read', pageKey: { volume, page }, offsetBlocks, lengthBlocks, fua: (flags & flagFua) !== 0 },
      dataToken, senderIncarnation,
    };
  }
  if (kind === compactAnswerKind) {
    const requestId = reader.text();
    const retry = reader.u32();
    const flags = reader.u8();
    if ((flags & ~(flagToken | flagRouteProvisional)) !== 0) throw new Error('compact answer header has unknown flags');
    const status = reader.u8();
    let outcome: AnswerMessage['outcome'];
    if (status === statusOk) outcome = { status: 'ok' };
    else if (status === statusStale) {
      const owner = reader.text();
      outcome = { status: 'stale', owner, epoch: reader.u32() };
    } else if (status === statusError) {
      const errno = reader.i32();
      outcome = { status: 'error', errno, reason: reader.text() };
    } else throw new Error(`compact answer header has unknown status ${status}`);
    const dataToken = (flags & flagToken) !== 0 ? reader.text() : null;
    const holderCount = reader.u8();
    const holders: Array<{ server: string; lossEpoch: number }> = [];
    for (let index = 0; index < holderCount; index += 1) holders.push({ server: reader.text(), lossEpoch: reader.u32() });
    reader.finish();
    if ((flags & flagRouteProvisional) !== 0 && outcome.status !== 'stale') throw new Error('compact answer header marks a route provisional on an answer that names none');
    return { type: 'request.answer', requestId, retry, outcome, dataToken, holders, ...((flags & flagRouteProvisional) !== 0 ? { routeProvisional: true as const } : {}) };
  }
  throw new Error(`unknown peer header kind ${kind}`);
}
