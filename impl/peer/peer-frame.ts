/**
 * The wire format between servers of a group.
 *
 * A frame is `u32 frameBytes | u8 version | u32 headerBytes | header | data`,
 * big-endian. The header is the JSON of a `PeerEnvelope` (a `PeerMessage` or
 * the hello that opens a connection); `data` is the bytes the runtime holds
 * under the message's data token, if any. Lengths are checked against fixed
 * bounds before anything is allocated, so a corrupt or hostile stream closes
 * its connection instead of exhausting memory.
 */
import type { ServerId } from '../../machines/identifiers.js';
import type { PeerMessage } from '../../machines/node/messages.js';

export const peerProtocolVersion = 1;
/** Generous for a piece copy (default page 4 MiB) plus its header. */
export const peerFrameBytesMax = 64 * 1024 * 1024;
export const peerHeaderBytesMax = 1024 * 1024;
const prefixBytes = 9;

export type PeerEnvelope =
  | { readonly kind: 'hello'; readonly from: ServerId; readonly group: string }
  | { readonly kind: 'message'; readonly message: PeerMessage };

export interface PeerFrame {
  readonly envelope: PeerEnvelope;
  readonly data: Buffer | null;
}

export function encodePeerFrame(envelope: PeerEnvelope, data: Buffer | null): Buffer {
  const header = Buffer.from(JSON.stringify(envelope), 'utf8');
  const dataBytes = data?.length ?? 0;
  const frameBytes = 5 + header.length + dataBytes;
  if (header.length > peerHeaderBytesMax || frameBytes > peerFrameBytesMax) throw new Error(`peer frame of ${frameBytes} bytes exceeds the bound`);
  const prefix = Buffer.alloc(prefixBytes);
  prefix.writeUInt32BE(frameBytes, 0);
  prefix.writeUInt8(peerProtocolVersion, 4);
  prefix.writeUInt32BE(header.length, 5);
  return Buffer.concat(data ? [prefix, header, data] : [prefix, header]);
}

/**
 * Reassembles frames from stream chunks. `push` returns the frames completed
 * by a chunk, or throws on a malformed stream (the caller closes the socket).
 */
export class PeerFrameDecoder {
  #chunks: Buffer[] = [];
  #bufferedBytes = 0;

  push(chunk: Buffer): PeerFrame[] {
    this.#chunks.push(chunk);
    this.#bufferedBytes += chunk.length;
    const frames: PeerFrame[] = [];
    for (;;) {
      if (this.#bufferedBytes < prefixBytes) return frames;
      const buffered = this.#flatten();
      const frameBytes = buffered.readUInt32BE(0);
      const version = buffered.readUInt8(4);
      const headerBytes = buffered.readUInt32BE(5);
      if (version !== peerProtocolVersion) throw new Error(`peer protocol version ${version}, expected ${peerProtocolVersion}`);
      if (frameBytes > peerFrameBytesMax || headerBytes > peerHeaderBytesMax || headerBytes + 5 > frameBytes) throw new Error('malformed peer frame lengths');
      if (buffered.length < 4 + frameBytes) return frames;
      const header = buffered.subarray(prefixBytes, prefixBytes + headerBytes);
      const dataEnd = 4 + frameBytes;
      const data = dataEnd > prefixBytes + headerBytes ? Buffer.from(buffered.subarray(prefixBytes + headerBytes, dataEnd)) : null;
      frames.push({ envelope: parseEnvelope(header), data });
      const rest = buffered.subarray(dataEnd);
      this.#chunks = rest.length > 0 ? [rest] : [];
      this.#bufferedBytes = rest.length;
    }
  }

  #flatten(): Buffer {
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks)];
    return this.#chunks[0] ?? Buffer.alloc(0);
  }
}

function parseEnvelope(header: Buffer): PeerEnvelope {
  const value: unknown = JSON.parse(header.toString('utf8'));
  if (typeof value !== 'object' || value === null || !('kind' in value)) throw new Error('peer frame header is not an envelope');
  const kind = (value as { kind: unknown }).kind;
  if (kind === 'hello' && typeof (value as { from?: unknown }).from === 'string') return value as PeerEnvelope;
  if (kind === 'message' && typeof (value as { message?: { type?: unknown } }).message?.type === 'string') return value as PeerEnvelope;
  throw new Error('unknown peer envelope');
}
