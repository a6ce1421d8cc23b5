/**
 * An emulated disk of bounded speed in front of a page store, for benchmarks
 * that run a whole group on one machine.
 *
 * Three servers on one host share its CPU and its disk, so a benchmark there
 * cannot show what spreading load over servers buys: every server draws on
 * the same resources. Real servers each have their own disk. This module
 * gives each server process a disk of its own in the only way one host can —
 * by pacing: a single FIFO queue that serves one operation at a time, each
 * taking `1000 / operationsPerSecondMax` milliseconds per started 64 KiB, so
 * a server's page I/O is limited to that rate whatever its neighbours do.
 * Off unless configured (`BLOCKSHIFT_DISK_IOPS_MAX`); benchmarks that use it
 * say so in their output.
 */
import { assert } from '../../machines/identifiers.js';
import type { BlockSize, PageStoreOptions } from './page-store.js';
import { PageStore } from './page-store.js';
import { FifoPacer } from '../runtime/fifo-pacer.js';

/** An operation counts once per started chunk of this many bytes, as a disk rated in IOPS for small requests. */
export const emulatedOperationBytes = 64 * 1024;

export class DiskServicePacer {
  readonly #pacer: FifoPacer;
  #waiting = 0;

  constructor(operationsPerSecondMax: number, nowMs?: () => number) {
    assert(Number.isFinite(operationsPerSecondMax) && operationsPerSecondMax > 0, 'an emulated disk serves a positive number of operations per second');
    this.#pacer = new FifoPacer(operationsPerSecondMax, nowMs);
  }

  /** Operations queued or in service now (bounded by what the server keeps in flight: its request and copy bounds). */
  get waiting(): number {
    return this.#waiting;
  }

  /** When an operation of `bytes` queued now would complete, in ms from now; reserves its slot. */
  reserve(bytes: number): number {
    return this.#pacer.reserve(Math.max(1, Math.ceil(bytes / emulatedOperationBytes))).endInMs;
  }

  /** Resolves once the emulated disk has served an operation of `bytes` queued now. */
  async serve(bytes: number): Promise<void> {
    const delayMs = this.reserve(bytes);
    this.#waiting += 1;
    try {
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    } finally {
      this.#waiting -= 1;
    }
  }
}

/** A page store whose reads and writes each wait for the emulated disk first; syncs are not paced. */
export class EmulatedDiskPageStore extends PageStore {
  readonly #pacer: DiskServicePacer;

  constructor(directory: string, options: PageStoreOptions, operationsPerSecondMax: number) {
    super(directory, options);
    this.#pacer = new DiskServicePacer(operationsPerSecondMax);
  }

  override async read(...args: Parameters<PageStore['read']>): Promise<Buffer> {
    const [, , lengthBlocks, blockSize] = args;
    await this.#pacer.serve(lengthBlocks * blockSizeBytesOf(blockSize));
    return super.read(...args);
  }

  override async write(...args: Parameters<PageStore['write']>): Promise<void> {
    await this.#pacer.serve(args[2].length);
    return super.write(...args);
  }

  /** Never at once: every read waits for the emulated disk. */
  override readNow(): null {
    return null;
  }

  /** Never at once: every write waits for the emulated disk. */
  override writeNow(): false {
    return false;
  }
}

function blockSizeBytesOf(blockSize: BlockSize): number {
  return typeof blockSize === 'number' ? blockSize : blockSize.blockSizeBytes;
}
