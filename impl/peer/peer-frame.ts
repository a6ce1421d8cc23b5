/**
 * The wire format between servers of a group.
 *
 * A frame is `u32 frameBytes | u8 version | u32 headerBytes | header | data`,
 * big-endian. The header opens with a kind byte: `jsonHeaderKind` is
 * followed by the JSON of a `PeerEnvelope` (a `PeerMessage` or the hello
 * that opens a connection); the two per-request messages, `request.forward`
 * and `request.answer`, are sent in a binary layout of their own
 * (`compact-request-header.ts`), since every forwarded request pays for
 * them twice. `data` is the bytes the runtime holds under the message's data
 * token, if any. Lengths are checked against fixed bounds before anything is
 * allocated, so a corrupt or hostile stream closes its connection instead of
 * exhausting memory. Version 2 introduced the kind byte, version 3 the loss
 * epochs (machines/node/loss-watch.ts), version 4 abandoned moves and the
 * move epoch on every answer about a move (machines/node/messages.ts),
 * version 5 the hello's `to` (the server the sender meant to reach, so one
 * that reached another, through a wrong or stale address, is refused),
 * version 6 `request.cancel` (a write's forward that timed out is failed only
 * once its target has cancelled it), version 7 `block.cancel` (the same for a
 * move's part), version 8 the incarnation fence (the sender's incarnation on
 * forwards and parts, the hop count on cancels, `fence.raise` and
 * `fence.confirmed`: machines/node/incarnation-fence.ts), version 9
 * `lost.check` and `lost.answer` (declaring lost the pages of a server dead
 * for good: machines/node/lost-pages.ts); a peer of another version is
 * refused at its first frame.
 */
import type { ServerId } from '../../machines/identifiers.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import { decodeCompactRequestHeader, encodeCompactRequestHeader } from './compact-request-header.js';

export const peerProtocolVersion = 9;
/** The header kind whose body is the JSON of an envelope. */
export const jsonHeaderKind = 1;
/** Generous for a piece copy (default page 4 MiB) plus its header. */
export const peerFrameBytesMax = 64 * 1024 * 1024;
export const peerHeaderBytesMax = 1024 * 1024;
const prefixBytes = 9;

export type PeerEnvelope =
  | { readonly kind: 'hello'; readonly from: ServerId; readonly to: ServerId; readonly group: string }
  | { readonly kind: 'message'; readonly message: PeerMessage };

export interface PeerFrame {
  readonly envelope: PeerEnvelope;
  readonly data: Buffer | null;
}

export function encodePeerFrame(envelope: PeerEnvelope, data: Buffer | null): Buffer {
  return Buffer.concat(encodePeerFrameParts(envelope, data));
}

/**
 * The frame as the buffers to write one after another: the prefix and
 * header in one small buffer, then the data as it is (not copied; the
 * runtime never changes the bytes behind a token, so the socket may read
 * them later). A 4 MiB piece copy is thereby never copied on the way out.
 */
export function encodePeerFrameParts(envelope: PeerEnvelope, data: Buffer | null): Buffer[] {
  let head = envelope.kind === 'message' ? encodeCompactRequestHeader(envelope.message, prefixBytes) : null;
  if (head === null) {
    const json = JSON.stringify(envelope);
    head = Buffer.allocUnsafe(prefixBytes + 1 + Buffer.byteLength(json, 'utf8'));
    head.writeUInt8(jsonHeaderKind, prefixBytes);
    head.write(json, prefixBytes + 1, 'utf8');
  }
  const headerBytes = head.length - prefixBytes;
  const dataBytes = data?.length ?? 0;
  const frameBytes = 5 + headerBytes + dataBytes;
  if (headerBytes > peerHeaderBytesMax || frameBytes > peerFrameBytesMax) throw new Error(`peer frame of ${frameBytes} bytes exceeds the bound`);
  head.writeUInt32BE(frameBytes, 0);
  head.writeUInt8(peerProtocolVersion, 4);
  head.writeUInt32BE(headerBytes, 5);
  return data && dataBytes > 0 ? [head, data] : [head];
}

/**
 * Reassembles frames from stream chunks. `push` returns the frames completed
 * by a chunk (at most `framesMax`; the rest stay buffered for the next push,
 * which may be of an empty chunk), or throws on a malformed stream (the
 * caller closes the socket).
 *
 * Cost. Chunks are kept as they arrive and joined once, when a whole frame
 * is there: a frame costs at most one copy of its bytes, and none when it
 * lies inside one chunk (its data is then a view of that chunk). Joining on
 * every chunk instead made a 4 MiB piece cost some 64 copies of a growing
 * buffer (quadratic in the frame size).
 */
export class PeerFrameDecoder {
  /** The bound on the next frame's size: `firstFrameBytesMax` until a frame has been decoded, then `peerFrameBytesMax`. */
  #frameBytesMax: number;
  #chunks: Buffer[] = [];
  #bufferedBytes = 0;
  /** The frame being assembled, once its prefix has arrived and been checked. */
  #frame: { readonly totalBytes: number; readonly headerBytes: number } | null = null;

  /** `firstFrameBytesMax`: a smaller bound for the first frame (an inbound connection's hello, see peer-transport.ts). */
  constructor(firstFrameBytesMax = peerFrameBytesMax) {
    this.#frameBytesMax = Math.min(firstFrameBytesMax, peerFrameBytesMax);
  }

  push(chunk: Buffer, framesMax = Infinity): PeerFrame[] {
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#bufferedBytes += chunk.length;
    }
    const frames: PeerFrame[] = [];
    for (;;) {
      if (frames.length >= framesMax) return frames;
      if (this.#frame === null) {
        if (this.#bufferedBytes < prefixBytes) return frames;
        const prefix = this.#peek(prefixBytes);
        const frameBytes = prefix.readUInt32BE(0);
        const version = prefix.readUInt8(4);
        const headerBytes = prefix.readUInt32BE(5);
        if (version !== peerProtocolVersion) throw new Error(`peer protocol version ${version}, expected ${peerProtocolVersion}`);
        if (frameBytes > this.#frameBytesMax || headerBytes < 1 || headerBytes > peerHeaderBytesMax || headerBytes + 5 > frameBytes) throw new Error('malformed peer frame lengths');
        this.#frame = { totalBytes: 4 + frameBytes, headerBytes };
      }
      const { totalBytes, headerBytes } = this.#frame;
      if (this.#bufferedBytes < totalBytes) return frames;
      const bytes = this.#take(totalBytes);
      this.#frame = null;
      this.#frameBytesMax = peerFrameBytesMax;
      const dataStart = prefixBytes + headerBytes;
      frames.push({ envelope: parseEnvelope(bytes, prefixBytes, dataStart), data: totalBytes > dataStart ? bytes.subarray(dataStart) : null });
    }
  }

  /** The first `count` buffered bytes, copying only those when they span chunks. */
  #peek(count: number): Buffer {
    const first = this.#chunks[0]!;
    return first.length >= count ? first.subarray(0, count) : Buffer.concat(this.#chunks, count);
  }

  /** Removes and returns the first `count` buffered bytes (count <= buffered). */
  #take(count: number): Buffer {
    const first = this.#chunks[0]!;
    let taken: Buffer;
    if (first.length >= count) {
      taken = first.subarray(0, count);
      if (first.length === count) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(count);
    } else {
      taken = Buffer.allocUnsafe(count);
      let filled = 0;
      while (filled < count) {
        const chunk = this.#chunks[0]!;
        const used = Math.min(chunk.length, count - filled);
        chunk.copy(taken, filled, 0, used);
        filled += used;
        if (used === chunk.length) this.#chunks.shift();
        else this.#chunks[0] = chunk.subarray(used);
      }
    }
    this.#bufferedBytes -= count;
    return taken;
  }
}

/** The envelope in `bytes[start, end)`: a kind byte, then JSON or a compact request header. */
function parseEnvelope(bytes: Buffer, start: number, end: number): PeerEnvelope {
  const kind = bytes.readUInt8(start);
  if (kind !== jsonHeaderKind) return { kind: 'message', message: decodeCompactRequestHeader(kind, bytes, start + 1, end) };
  const value: unknown = JSON.parse(bytes.toString('utf8', start + 1, end));
  if (typeof value !== 'object' || value === null || !('kind' in value)) throw new Error('peer frame header is not an envelope');
  const envelopeKind = (value as { kind: unknown }).kind;
  if (envelopeKind === 'hello' && typeof (value as { from?: unknown }).from === 'string' && typeof (value as { to?: unknown }).to === 'string') return value as PeerEnvelope;
  if (envelopeKind === 'message' && typeof (value as { message?: { type?: unknown } }).message?.type === 'string') return value as PeerEnvelope;
  throw new Error('unknown peer envelope');
}
