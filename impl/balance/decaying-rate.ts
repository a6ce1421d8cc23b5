/**
 * A rate over an exponentially decaying window: each amount added counts
 * fully now and half as much every `halfLifeMs` later, so a page that turns
 * cold fades out on its own and a burst does not dominate for long. Time is
 * passed in by the caller (never read here), so tests drive it exactly.
 */
export class DecayingRate {
  #value = 0;
  #atMs: number;

  constructor(readonly halfLifeMs: number, startMs: number) {
    if (!(halfLifeMs > 0)) throw new Error('halfLifeMs must be > 0');
    this.#atMs = startMs;
  }

  add(amount: number, nowMs: number): void {
    this.#decayTo(nowMs);
    this.#value += amount;
  }

  /** Amount per second: the decayed sum divided by the window's effective length (halfLife / ln 2). */
  perSecond(nowMs: number): number {
    this.#decayTo(nowMs);
    return this.#value * Math.LN2 / (this.halfLifeMs / 1000);
  }

  #decayTo(nowMs: number): void {
    // Time never runs backwards for a window; an earlier stamp (another caller's clock skew) just adds undecayed.
    if (nowMs <= this.#atMs) return;
    this.#value *= 2 ** (-(nowMs - this.#atMs) / this.halfLifeMs);
    this.#atMs = nowMs;
  }
}
