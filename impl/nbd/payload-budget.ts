/**
 * The request payload bytes one NBD server holds for all its connections at
 * once: the data of reads from the moment they are accepted until their
 * replies have left the process (handed to the kernel), and the data of
 * writes from the moment their header is read (the payload is then buffered
 * as it arrives) until they are answered.
 *
 * Theory of operation. Each connection bounds its own share
 * (`inFlightBytesMax`, connection.ts), but with hundreds of connections those
 * bounds add up to more memory than a host has: a review's client that asked
 * for 64 reads of 24 MiB and never read a reply made a server hold 264 MiB,
 * and eight such connections 2.3 GB within seconds. So every connection also
 * draws on this one budget. A connection takes a request's bytes when it
 * accepts the request and gives them back once done with them; it accepts no
 * new request while the budget is spent (it may overshoot by one request, at
 * most the export's maximum payload).
 *
 * Fairness. Connections that found the budget spent wait in a queue, first
 * come first served: while any wait, only the one at the head is admitted,
 * and bytes given back wake the head alone (a review found that waking every
 * waiter let the connection that gave the bytes back take them again, ahead
 * of everyone, for as long as its client kept its pipeline full, while a
 * second client's one read waited 2 s behind 200 of the first's; and that
 * every wake-up ran every waiter's parser). The head leaves the queue when
 * it takes a request's bytes, or passes its turn when it has nothing it can
 * take (`passTurn`), and the next is woken while room remains. Wake-ups run
 * in a microtask, never inside `give`: a connection giving bytes back from
 * its reply would otherwise be pumped, and could close, before that reply
 * was sent (a review lost a write's reply that way).
 */
import { assert } from '../../machines/identifiers.js';

/** A waiting connection's wake-up: pumps it again. */
export type BudgetWaiter = () => void;

export class PayloadBudget {
  readonly bytesMax: number;
  #usedBytes = 0;
  /** Connections waiting for room, in arrival order (a Set keeps insertion order). */
  readonly #waiting = new Set<BudgetWaiter>();
  /** Whether a wake-up of the head is queued (one at a time). */
  #wakeQueued = false;

  constructor(bytesMax: number) {
    assert(bytesMax > 0, 'a payload budget holds some bytes');
    this.bytesMax = bytesMax;
  }

  get usedBytes(): number {
    return this.#usedBytes;
  }

  /** Connections waiting for room. */
  get waitingCount(): number {
    return this.#waiting.size;
  }

  /** Whether `waiter` may take a request's bytes now: room is left, and no one waits ahead of it. */
  admits(waiter: BudgetWaiter): boolean {
    if (this.#usedBytes >= this.bytesMax) return false;
    const head = this.#waiting.values().next();
    return head.done === true || head.value === waiter;
  }

  /** Queues `waiter` (if it is not queued already) to be woken when it is at the head and room is left. */
  wait(waiter: BudgetWaiter): void {
    this.#waiting.add(waiter);
  }

  /** Takes a request's bytes; the taker leaves the queue, and the next is woken if room is left. */
  take(waiter: BudgetWaiter, bytes: number): void {
    this.#usedBytes += bytes;
    if (this.#waiting.delete(waiter)) this.#wakeHead();
  }

  give(bytes: number): void {
    this.#usedBytes -= bytes;
    assert(this.#usedBytes >= 0, 'a payload budget gives back only what was taken');
    this.#wakeHead();
  }

  /** The waiter at the head had nothing it could take when admitted: it leaves the queue and the next is woken. */
  passTurn(waiter: BudgetWaiter): void {
    if (this.#usedBytes >= this.bytesMax) return;
    const head = this.#waiting.values().next();
    if (head.done === true || head.value !== waiter) return;
    this.#waiting.delete(waiter);
    this.#wakeHead();
  }

  /** Leaves the queue (a connection that closed); the next is woken if it was the head. */
  stopWaiting(waiter: BudgetWaiter): void {
    if (this.#waiting.delete(waiter)) this.#wakeHead();
  }

  #wakeHead(): void {
    if (this.#wakeQueued || this.#waiting.size === 0 || this.#usedBytes >= this.bytesMax) return;
    this.#wakeQueued = true;
    queueMicrotask(() => {
      this.#wakeQueued = false;
      if (this.#usedBytes >= this.bytesMax) return;
      const head = this.#waiting.values().next();
      if (head.done !== true) head.value();
    });
  }
}
