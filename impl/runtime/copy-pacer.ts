/**
 * How fast a server sends page copies, paced the way Linux md paces a
 * resync (its speed_limit_max and speed_limit_min): as fast as
 * `maxBytesPerSecond` allows while this server's clients are quiet, and no
 * faster than `underLoadBytesPerSecond` while they are active, that is while
 * a client request (from an NBD client, or forwarded by a peer) arrived
 * within the last `clientQuietMs`.
 *
 * Why. On a busy server a copy takes the same event loop, cores and disk as
 * the clients' requests, and a client whose page moves also pays for dual
 * writes and forwards for as long as the move lasts; the clients' tail
 * latency is what a move costs them, so while they are active the copy
 * yields. A move still ends: at the default 32 MiB/s under load a 4 MiB page
 * leaves in about 130 ms, so the balancer can still relieve a hot server.
 * An idle server copies as fast as it can (the idle copy-rate benchmark).
 * The figures that chose the default are in the commit that introduced this
 * file and in README ("Moves yield to clients").
 *
 * Pieces queue first in, first out across all of the server's moves; an
 * idle pacer banks no capacity (a piece that comes after the queue drained
 * goes at once). Either rate may be 0: no limit of that kind.
 */
import { assert } from '../../machines/identifiers.js';
import { FifoPacer } from './fifo-pacer.js';

export interface CopyPacing {
  /** The copy rate with no client about (0: unpaced). */
  readonly maxBytesPerSecond: number;
  /** The copy rate while clients are active (0: no lower rate under load). */
  readonly underLoadBytesPerSecond: number;
  /** Clients count as active for this long after a request of theirs arrived. */
  readonly clientQuietMs: number;
}

/** md's idea of "other I/O is going on": a request within the last 100 ms. */
export const defaultClientQuietMs = 100;

export class CopyPacer {
  readonly #pacing: CopyPacing;
  readonly #nowMs: () => number;
  /** The queue of pieces; each is reserved at the rate that applies when it is queued. */
  readonly #queue: FifoPacer;
  #lastClientRequestMs = Number.NEGATIVE_INFINITY;

  constructor(pacing: CopyPacing, nowMs: () => number = () => performance.now()) {
    for (const rate of [pacing.maxBytesPerSecond, pacing.underLoadBytesPerSecond]) {
      assert(Number.isFinite(rate) && rate >= 0, 'a copy rate is a number of bytes per second, 0 for no limit');
    }
    assert(Number.isFinite(pacing.clientQuietMs) && pacing.clientQuietMs >= 0, 'clientQuietMs is a duration');
    this.#pacing = pacing;
    this.#nowMs = nowMs;
    this.#queue = new FifoPacer(1, nowMs);
  }

  /** Whether this pacer ever delays a piece: a server configured with neither rate skips it. */
  get paces(): boolean {
    return this.#pacing.maxBytesPerSecond > 0 || this.#pacing.underLoadBytesPerSecond > 0;
  }

  /** A client request arrived at this server at `nowMs` (an NBD request, or one a peer forwarded). */
  clientRequestArrived(nowMs: number): void {
    this.#lastClientRequestMs = nowMs;
  }

  /** Queues a piece of `bytes` and returns how many milliseconds from now it may be sent (0: at once). */
  reserve(bytes: number): number {
    return this.#queue.reserve(bytes, this.#rate(this.#nowMs())).startInMs;
  }

  /** The rate that applies now: the lower of the two while clients are active. */
  #rate(nowMs: number): number {
    const { maxBytesPerSecond, underLoadBytesPerSecond, clientQuietMs } = this.#pacing;
    const clientsActive = nowMs - this.#lastClientRequestMs < clientQuietMs;
    if (!clientsActive || underLoadBytesPerSecond === 0) return maxBytesPerSecond;
    return maxBytesPerSecond === 0 ? underLoadBytesPerSecond : Math.min(maxBytesPerSecond, underLoadBytesPerSecond);
  }
}
