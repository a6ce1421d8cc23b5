/**
 * A first-in, first-out server of fixed speed: each job occupies it for its
 * cost divided by the rate, and jobs queue behind each other. An idle pacer
 * banks no capacity: a job that arrives after the queue drained starts at
 * once. Used for the emulated disk of one-host benchmarks (operations per
 * second; an operation completes when its slot ends); the page copies have
 * a pacer of their own whose rate follows the clients (copy-pacer.ts).
 */
import { assert } from '../../machines/identifiers.js';

export interface PacedSlot {
  /** Milliseconds from now until the job's slot starts. */
  readonly startInMs: number;
  /** Milliseconds from now until it ends. */
  readonly endInMs: number;
}

export class FifoPacer {
  readonly #unitsPerSecond: number;
  readonly #nowMs: () => number;
  /** When the last job queued so far ends. */
  #busyUntilMs = 0;

  constructor(unitsPerSecond: number, nowMs: () => number = () => performance.now()) {
    assert(Number.isFinite(unitsPerSecond) && unitsPerSecond > 0, 'a pacer serves a positive number of units per second');
    this.#unitsPerSecond = unitsPerSecond;
    this.#nowMs = nowMs;
  }

  /**
   * Queues a job of `units` and returns its slot. `unitsPerSecond` overrides the pacer's rate for this job (a pacer
   * whose rate varies, copy-pacer.ts); 0 makes the job free: it starts behind the queue and takes no time.
   */
  reserve(units: number, unitsPerSecond = this.#unitsPerSecond): PacedSlot {
    assert(Number.isFinite(unitsPerSecond) && unitsPerSecond >= 0, 'a job\'s rate is a number of units per second, 0 for free');
    const nowMs = this.#nowMs();
    const startMs = Math.max(nowMs, this.#busyUntilMs);
    if (unitsPerSecond > 0) this.#busyUntilMs = startMs + (units * 1000) / unitsPerSecond;
    return { startInMs: startMs - nowMs, endInMs: Math.max(startMs, this.#busyUntilMs) - nowMs };
  }
}
