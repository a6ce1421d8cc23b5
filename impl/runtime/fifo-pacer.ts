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
  readonly #msPerUnit: number;
  readonly #nowMs: () => number;
  /** When the last job queued so far ends. */
  #busyUntilMs = 0;

  constructor(unitsPerSecond: number, nowMs: () => number = () => performance.now()) {
    assert(Number.isFinite(unitsPerSecond) && unitsPerSecond > 0, 'a pacer serves a positive number of units per second');
    this.#msPerUnit = 1000 / unitsPerSecond;
    this.#nowMs = nowMs;
  }

  /** Queues a job of `units` and returns its slot. */
  reserve(units: number): PacedSlot {
    const nowMs = this.#nowMs();
    const startMs = Math.max(nowMs, this.#busyUntilMs);
    this.#busyUntilMs = startMs + units * this.#msPerUnit;
    return { startInMs: startMs - nowMs, endInMs: this.#busyUntilMs - nowMs };
  }
}
