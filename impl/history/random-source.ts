/**
 * A small seeded pseudo-random source (mulberry32) for the checker's
 * self-tests, the benchmark and the fault harness. Every random run derives
 * all of its choices from one 32-bit seed and prints it, so a run that finds
 * something can be repeated; `Math.random` is never used for a decision.
 */
export class RandomSource {
  #state: number;

  constructor(readonly seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let mixed = this.#state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4_294_967_296;
  }

  /** An integer in [0, boundExclusive). */
  below(boundExclusive: number): number {
    return Math.floor(this.next() * boundExclusive);
  }

  /** An integer in [low, high]. */
  between(low: number, high: number): number {
    return low + this.below(high - low + 1);
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  /**
   * An independent source for one stream of choices (the nemesis, each
   * worker), a function of the seed and the stream alone: concurrent users
   * of one shared source draw in whatever order they are scheduled, so the
   * same seed gave a different plan each run (a review found it).
   */
  derive(stream: number): RandomSource {
    let mixed = Math.imul((this.seed >>> 0) ^ Math.imul(stream + 1, 0x9e3779b1), 0x85ebca6b);
    mixed ^= mixed >>> 13;
    mixed = Math.imul(mixed, 0xc2b2ae35);
    return new RandomSource((mixed ^ (mixed >>> 16)) >>> 0);
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.below(items.length)] as T;
  }
}

/** A fresh seed for a run that was not given one (the run prints it). */
export function freshSeed(): number {
  return (Date.now() ^ (process.pid << 16)) >>> 0;
}
