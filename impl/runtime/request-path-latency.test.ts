import { describe, expect, it } from 'vitest';
import type { PeerMessage } from '../../machines/node/messages.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { PathLatencyReport } from './request-path-latency.js';
import { bucketIndex, latencyBucketUpperUs, RequestPathLatencies, requestsFollowedMax } from './request-path-latency.js';
import { ServerRuntime } from './server-runtime.js';

/**
 * The latency histograms behind GET /latency and bench:nbd's account of which
 * requests make up the tail during moves: each request lands once, in the
 * bucket of its latency, under the path the node's messages say it took.
 */

function countsOf(report: PathLatencyReport): Record<string, number> {
  return Object.fromEntries(report.series.map((series) => [`${series.path}${series.movingAway ? ' moving' : ''}`, series.counts.reduce((sum, count) => sum + count, 0)]));
}

describe('request path latencies', () => {
  it('puts a latency in the first bucket whose bound reaches it, and anything slower than the last bound in the last', () => {
    expect(latencyBucketUpperUs[0]).toBe(10);
    for (let index = 1; index < latencyBucketUpperUs.length; index += 1) expect(latencyBucketUpperUs[index]!).toBeGreaterThan(latencyBucketUpperUs[index - 1]!);
    expect(latencyBucketUpperUs.at(-1)!).toBeGreaterThan(10_000_000);
    expect(bucketIndex(0)).toBe(0);
    expect(bucketIndex(10)).toBe(0);
    expect(bucketIndex(11)).toBe(1);
    const index = bucketIndex(5_000);
    expect(latencyBucketUpperUs[index]!).toBeGreaterThanOrEqual(5_000);
    expect(latencyBucketUpperUs[index - 1]!).toBeLessThan(5_000);
    expect(bucketIndex(1e12)).toBe(latencyBucketUpperUs.length - 1);
  });

  it('tells the path from the messages sent for the request: forwarding outranks move parts, which outrank local', () => {
    const latencies = new RequestPathLatencies();
    latencies.started('1', false, 0);
    latencies.started('2', true, 0);
    latencies.started('3', true, 0);
    latencies.started('4', false, 0);
    latencies.sent('c:2', 'block.write');
    latencies.sent('c:3', 'block.read');
    latencies.sent('c:3', 'request.forward');
    latencies.sent('c:4', 'request.forward');
    latencies.sent('c:4', 'block.write');
    // Another request's id, or a message of another kind, changes nothing.
    latencies.sent('c:1', 'request.answer');
    latencies.sent('p:s2:1:0', 'request.forward');
    for (const id of ['1', '2', '3', '4']) latencies.answered(id, 5);
    // A second answer, or one for a request never started, is not counted.
    latencies.answered('1', 6);
    latencies.answered('99', 6);
    expect(countsOf(latencies.report())).toEqual({ local: 1, 'move-parts moving': 1, 'forwarded moving': 1, forwarded: 1 });
    const local = latencies.report().series.find((series) => series.path === 'local')!;
    expect(local.counts[bucketIndex(5_000)]).toBe(1);
  });

  it('follows at most requestsFollowedMax requests at once', () => {
    const latencies = new RequestPathLatencies();
    for (let id = 0; id <= requestsFollowedMax; id += 1) latencies.started(String(id), false, 0);
    latencies.answered(String(requestsFollowedMax), 1);
    expect(latencies.report().series).toEqual([]);
    latencies.answered('0', 1);
    expect(countsOf(latencies.report())).toEqual({ local: 1 });
  });

  it('is fed by the runtime: a request served here counts as local, one sent to the owner as forwarded', async () => {
    const sent: Array<{ to: string; message: PeerMessage }> = [];
    const runtime = new ServerRuntime({
      config: defaultNodeConfig('s1', ['s1', 's2']),
      incarnation: 1,
      pages: {
        read: async (_pageKey, _offsetBlocks, lengthBlocks, blockSizeBytes) => Buffer.alloc(lengthBlocks * blockSizeBytes),
        write: async () => undefined,
        writeNow: () => true,
        sync: async () => undefined,
        delete: async () => undefined,
      },
      metadata: { load: () => ({ volumes: [], routes: [], replicas: [], moves: [] }), commit: async () => undefined },
      peers: {
        send: (to, message) => {
          sent.push({ to, message });
          // s2 grants every volume name s1 reserves (volume-reservation.ts).
          if (message.type === 'volume.reserve') setImmediate(() => runtime.receive(to, { type: 'volume.reserveAnswer', name: message.volume.name, reservationId: message.reservationId, granted: true, reason: null }, null));
        },
      },
      log: () => undefined,
    });
    runtime.start();
    try {
      expect((await runtime.createVolume({ name: 'here', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1'] })).ok).toBe(true);
      expect((await runtime.createVolume({ name: 'there', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s2'] })).ok).toBe(true);
      const local = await runtime.request({ kind: 'write', pageKey: { volume: 'here', page: 0 }, offsetBlocks: 0, lengthBlocks: 1, fua: false }, Buffer.alloc(512, 1), 'test');
      expect(local.outcome.status).toBe('ok');

      const forwarded = runtime.request({ kind: 'read', pageKey: { volume: 'there', page: 0 }, offsetBlocks: 0, lengthBlocks: 1, fua: false }, null, 'test');
      const forward = sent.find(({ message }) => message.type === 'request.forward');
      expect(forward?.to).toBe('s2');
      const { requestId, retry } = forward!.message as Extract<PeerMessage, { type: 'request.forward' }>;
      runtime.receive('s2', { type: 'request.answer', requestId, retry, outcome: { status: 'ok' }, dataToken: 'answer-data', holders: [] }, Buffer.alloc(512, 2));
      expect((await forwarded).outcome.status).toBe('ok');
      expect(countsOf(runtime.requestLatencies.report())).toEqual({ local: 1, forwarded: 1 });
    } finally {
      runtime.stop();
    }
  });
});
