/**
 * The bytes a connection has received but not yet parsed.
 *
 * Socket chunks arrive at arbitrary boundaries; the parsers ask for a whole
 * message (a header, an option, a write payload) only once enough bytes are
 * queued, so a message split across chunks and several messages packed into
 * one chunk look the same to them. Chunks are kept as a list and joined only
 * when a message straddles them, so a large write payload is copied once.
 * The queue itself has no bound: the connection bounds it by pausing the
 * socket, and the parsers bound what they ask for.
 */

export class ReceiveQueue {
  private chunks: Buffer[] = [];
  private queuedBytes = 0;

  get lengthBytes(): number {
    return this.queuedBytes;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.queuedBytes += chunk.length;
  }

  /** The first `lengthBytes` bytes without consuming them, or null if fewer are queued. */
  peek(lengthBytes: number): Buffer | null {
    if (lengthBytes > this.queuedBytes) return null;
    const first = this.chunks[0];
    if (lengthBytes === 0) return Buffer.alloc(0);
    if (first !== undefined && first.length >= lengthBytes) return first.subarray(0, lengthBytes);
    // Join only the chunks the message spans, so a backlog of small chunks
    // is not copied again for every message.
    let spannedChunks = 0;
    let spannedBytes = 0;
    while (spannedBytes < lengthBytes) {
      spannedBytes += this.chunks[spannedChunks]?.length ?? 0;
      spannedChunks += 1;
    }
    const joined = Buffer.concat(this.chunks.slice(0, spannedChunks), spannedBytes);
    this.chunks.splice(0, spannedChunks, joined);
    return joined.subarray(0, lengthBytes);
  }

  /** Consumes and returns the first `lengthBytes` bytes, or null if fewer are queued. */
  take(lengthBytes: number): Buffer | null {
    const bytes = this.peek(lengthBytes);
    if (bytes === null) return null;
    this.skip(lengthBytes);
    return bytes;
  }

  /** Discards up to `lengthBytes` bytes and returns how many were discarded. */
  skip(lengthBytes: number): number {
    let remainingBytes = Math.min(lengthBytes, this.queuedBytes);
    const skippedBytes = remainingBytes;
    while (remainingBytes > 0) {
      const first = this.chunks[0];
      if (first === undefined) break;
      if (first.length <= remainingBytes) {
        this.chunks.shift();
        remainingBytes -= first.length;
      } else {
        this.chunks[0] = first.subarray(remainingBytes);
        remainingBytes = 0;
      }
    }
    this.queuedBytes -= skippedBytes;
    return skippedBytes;
  }

  clear(): void {
    this.chunks = [];
    this.queuedBytes = 0;
  }
}
