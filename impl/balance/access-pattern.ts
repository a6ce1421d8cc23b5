/**
 * Tells sequential from random access per stream: an operation is
 * sequential when it starts where the same client's previous operation on
 * the same page ended (or within `gapBlocksMax` after it), as a read-ahead
 * or streaming writer does. The memory of stream ends is bounded; the oldest
 * stream is forgotten first.
 */
export class AccessPattern {
  readonly #ends = new Map<string, number>();

  constructor(readonly streamsMax = 4096, readonly gapBlocksMax = 8) {}

  /** Records the operation and says whether it continued a stream. */
  isSequential(streamKey: string, offsetBlocks: number, lengthBlocks: number): boolean {
    const previousEnd = this.#ends.get(streamKey);
    const sequential = previousEnd !== undefined && offsetBlocks >= previousEnd && offsetBlocks - previousEnd <= this.gapBlocksMax;
    // Re-inserting moves the stream to the back of the map's order, so eviction drops the longest-idle one.
    this.#ends.delete(streamKey);
    this.#ends.set(streamKey, offsetBlocks + lengthBlocks);
    if (this.#ends.size > this.streamsMax) {
      const oldest = this.#ends.keys().next().value;
      if (oldest !== undefined) this.#ends.delete(oldest);
    }
    return sequential;
  }
}
