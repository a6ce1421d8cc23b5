/**
 * The request payload bytes one NBD server holds for all its connections at
 * once: the data of reads from the moment they are accepted until their
 * replies have left the process (handed to the kernel), and the data of
 * writes until they are answered.
 *
 * Theory of operation. Each connection bounds its own share
 * (`inFlightBytesMax`, connection.ts), but with hundreds of connections those
 * bounds add up to more memory than a host has: a review's client that asked
 * for 64 reads of 24 MiB and never read a reply made a server hold 264 MiB,
 * and eight such connections 2.3 GB within seconds. So every connection also
 * draws on this one budget. A connection takes a request's bytes when it
 * accepts the request and gives them back once the reply is written out; it
 * accepts no new request while the budget is spent (it may overshoot by one
 * request, at most the export's maximum payload), and waits to be woken when
 * room is given back. A client that never reads its replies holds its share
 * until the connection's reply stall time-out closes it (connection.ts).
 */
import { assert } from '../../machines/identifiers.js';

export class PayloadBudget {
  readonly bytesMax: number;
  #usedBytes = 0;
  /** Connections waiting for room, woken (each once) when bytes are given back below the bound. */
  readonly #waiting = new Set<() => void>();

  constructor(bytesMax: number) {
    assert(bytesMax > 0, 'a payload budget holds some bytes');
    this.bytesMax = bytesMax;
  }

  get usedBytes(): number {
    return this.#usedBytes;
  }

  /** Whether no new request may be accepted until bytes are given back. */
  get isSpent(): boolean {
    return this.#usedBytes >= this.bytesMax;
  }

  take(bytes: number): void {
    this.#usedBytes += bytes;
  }

  give(bytes: number): void {
    this.#usedBytes -= bytes;
    assert(this.#usedBytes >= 0, 'a payload budget gives back only what was taken');
    if (this.isSpent || this.#waiting.size === 0) return;
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const wake of waiting) wake();
  }

  /** Calls `wake` once, the next time bytes are given back below the bound. */
  waitForRoom(wake: () => void): void {
    this.#waiting.add(wake);
  }

  /** Stops waiting (a connection that closed). */
  stopWaiting(wake: () => void): void {
    this.#waiting.delete(wake);
  }
}
