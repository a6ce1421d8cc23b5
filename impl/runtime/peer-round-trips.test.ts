import { describe, expect, it } from 'vitest';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { PeerExchangeSeries } from './peer-round-trips.js';
import { exchangesFollowedMax, PeerRoundTrips } from './peer-round-trips.js';
import { bucketIndex } from './request-path-latency.js';

/**
 * The peer round trips and service times behind GET /latency's `peers`: each
 * exchange lands once, at its latency, under its peer and kind; a retry
 * restarts the clock; answers with no request followed, and other messages,
 * count nothing; the exchanges followed are bounded.
 */
const pageKey = { volume: 'alpha', page: 0 };
const forward = (requestId: string): PeerMessage => ({ type: 'request.forward', requestId, hopCount: 1, retry: 0, operation: { kind: 'write', pageKey, offsetBlocks: 0, lengthBlocks: 8, fua: false }, dataToken: 'd', senderIncarnation: 0 });
const answer = (requestId: string): PeerMessage => ({ type: 'request.answer', requestId, retry: 0, outcome: { status: 'ok' }, dataToken: null, holders: [] });
const blockWrite = (requestId: string): PeerMessage => ({ type: 'block.write', requestId, pageKey, attempt: 1, epoch: 1, offsetBlocks: 0, lengthBlocks: 8, sequence: 1, fua: false, dataToken: 'd', senderIncarnation: 0 });
const written = (requestId: string): PeerMessage => ({ type: 'block.written', requestId, ok: true, lossEpoch: 0 });

/** The bucket each exchange of the series landed in, once per exchange. */
function landed(series: readonly PeerExchangeSeries[], peer: string, kind: string): number[] {
  const counts = series.find((entry) => entry.peer === peer && entry.kind === kind)?.counts ?? [];
  return counts.flatMap((count, index) => new Array<number>(count).fill(index));
}

describe('peer round trips', () => {
  it('times each request to a peer from its latest try to its answer, by peer and kind', () => {
    const trips = new PeerRoundTrips();
    trips.sent('s2', forward('c:1'), 0);
    trips.sent('s2', forward('c:1'), 4); // a retry: the clock restarts
    trips.sent('s3', blockWrite('c:1'), 1); // the same id, another peer and kind
    trips.received('s3', written('c:1'), 3);
    trips.received('s2', answer('c:1'), 9);
    trips.received('s2', answer('c:1'), 20); // a duplicated answer counts once
    trips.received('s2', answer('c:unknown'), 20);
    const { roundTrips, served } = trips.report();
    expect(landed(roundTrips, 's2', 'forward')).toEqual([bucketIndex(5_000)]);
    expect(landed(roundTrips, 's3', 'write')).toEqual([bucketIndex(2_000)]);
    expect(served).toEqual([]);
    expect(trips.inFlight).toEqual({ asked: 0, answering: 0 });
  });

  it('times each request a peer makes of this server from its arrival to the answer sent', () => {
    const trips = new PeerRoundTrips();
    trips.received('s1', forward('c:7'), 10);
    trips.received('s1', blockWrite('c:8'), 11);
    trips.sent('s1', written('c:8'), 11.25);
    trips.sent('s1', answer('c:7'), 12.5);
    trips.sent('s1', { type: 'route.update', pageKey, owner: 's1', epoch: 2 }, 13);
    const { roundTrips, served } = trips.report();
    expect(roundTrips).toEqual([]);
    expect(landed(served, 's1', 'forward')).toEqual([bucketIndex(2_500)]);
    expect(landed(served, 's1', 'write')).toEqual([bucketIndex(250)]);
  });

  it('follows at most exchangesFollowedMax exchanges, forgetting the oldest (a peer that never answers)', () => {
    const trips = new PeerRoundTrips();
    for (let index = 0; index <= exchangesFollowedMax; index += 1) trips.sent('s2', forward(`c:${index}`), index);
    expect(trips.inFlight.asked).toBe(exchangesFollowedMax);
    trips.received('s2', answer('c:0'), 1e6); // forgotten: counts nothing
    trips.received('s2', answer(`c:${exchangesFollowedMax}`), exchangesFollowedMax + 1);
    expect(landed(trips.report().roundTrips, 's2', 'forward')).toEqual([bucketIndex(1_000)]);
  });
});
