/**
 * How long the client requests a server answers take, by the path each took
 * at that server: a histogram per path that only grows, read through
 * `GET /latency` and compared between two readings (as a Prometheus counter
 * is), so a benchmark can say which requests make up a tail.
 *
 * A request's path is told from the messages the node sends on its behalf
 * (they carry its entry id, see `clientEntryId`):
 *
 *   local        served from this server's copy alone
 *   move-parts   a part went to the destination of a move of its page
 *                (a dual write, or a piece already handed over), with or
 *                without a part here
 *   forwarded    sent on to another server (the owner, or the new owner
 *                after a flip), whatever else happened first
 *
 * and from whether this server was moving the page away when the request
 * came (`movingAway`): a request that waited at a fence (FIG. 7's routing
 * during Table 1 and 2) and was then served or forwarded counts there.
 *
 * Bounds: one entry per request in flight (the node bounds those,
 * requestsInFlightMax), and a fixed set of buckets per path.
 */
import { clientEntryId } from '../../machines/node/node-state.js';

export type RequestPath = 'local' | 'move-parts' | 'forwarded';

/** Requests followed at once; more (far past the node's own bound) are answered but not counted. */
export const requestsFollowedMax = 65_536;

const requestPaths: readonly RequestPath[] = ['local', 'move-parts', 'forwarded'];

/** Bucket upper bounds: 8 µs up to about 16 s, four buckets per doubling (each about 19% wider than the last). */
export const latencyBucketUpperUs: readonly number[] = Array.from({ length: 84 }, (_, index) => Math.round(8 * 2 ** ((index + 1) / 4)));

export interface PathLatencySeries {
  readonly path: RequestPath;
  readonly movingAway: boolean;
  /** Requests per bucket of `latencyBucketUpperUs`; the last bucket also holds everything slower. */
  readonly counts: readonly number[];
}

export interface PathLatencyReport {
  readonly bucketUpperUs: readonly number[];
  readonly series: readonly PathLatencySeries[];
}

interface RequestInFlight {
  readonly startedMs: number;
  readonly movingAway: boolean;
  path: RequestPath;
}

export class RequestPathLatencies {
  readonly #inFlight = new Map<string, RequestInFlight>();
  readonly #counts = new Map<string, number[]>();

  /** A client request `requestId` came in; `movingAway`: this server is moving its page away. */
  started(requestId: string, movingAway: boolean, nowMs: number): void {
    if (this.#inFlight.size >= requestsFollowedMax) return;
    this.#inFlight.set(requestId, { startedMs: nowMs, movingAway, path: 'local' });
  }

  /** The node sent `messageType` on behalf of the request whose entry id is `entryId` (ids of other requests are ignored). */
  sent(entryId: string, messageType: string): void {
    if (messageType !== 'request.forward' && messageType !== 'block.write' && messageType !== 'block.read') return;
    const clientPrefix = clientEntryId('');
    if (!entryId.startsWith(clientPrefix)) return;
    const request = this.#inFlight.get(entryId.slice(clientPrefix.length));
    if (!request) return;
    if (messageType === 'request.forward') request.path = 'forwarded';
    else if ((messageType === 'block.write' || messageType === 'block.read') && request.path === 'local') request.path = 'move-parts';
  }

  /** The request was answered (or failed): its latency is counted under its path. */
  answered(requestId: string, nowMs: number): void {
    const request = this.#inFlight.get(requestId);
    if (!request) return;
    this.#inFlight.delete(requestId);
    const key = seriesKey(request.path, request.movingAway);
    let counts = this.#counts.get(key);
    if (!counts) this.#counts.set(key, counts = emptyLatencyCounts());
    countLatency(counts, (nowMs - request.startedMs) * 1000);
  }

  report(): PathLatencyReport {
    const series: PathLatencySeries[] = [];
    for (const path of requestPaths) {
      for (const movingAway of [false, true]) {
        const counts = this.#counts.get(seriesKey(path, movingAway));
        if (counts) series.push({ path, movingAway, counts: [...counts] });
      }
    }
    return { bucketUpperUs: latencyBucketUpperUs, series };
  }
}

function seriesKey(path: RequestPath, movingAway: boolean): string {
  return `${path}|${movingAway}`;
}

/** A histogram with no latency counted yet: one count per bucket of `latencyBucketUpperUs`. */
export function emptyLatencyCounts(): number[] {
  return new Array<number>(latencyBucketUpperUs.length).fill(0);
}

/** Counts one latency in its bucket. */
export function countLatency(counts: number[], latencyUs: number): void {
  const index = bucketIndex(latencyUs);
  counts[index] = (counts[index] ?? 0) + 1;
}

/** The first bucket whose upper bound is at least `latencyUs` (binary search; the last bucket takes the rest). */
export function bucketIndex(latencyUs: number): number {
  let low = 0;
  let high = latencyBucketUpperUs.length - 1;
  while (low < high) {
    const middle = (low + high) >> 1;
    if ((latencyBucketUpperUs[middle] ?? Infinity) >= latencyUs) high = middle;
    else low = middle + 1;
  }
  return low;
}
