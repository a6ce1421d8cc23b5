import { describe, expect, it } from 'vitest';
import type { PeerMessage } from '../../machines/node/messages.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import { ServerRuntime } from './server-runtime.js';

/**
 * A write forwarded to an owner that is down and answered EIO must not run
 * when the owner's link comes back (a review's failed write landed, seconds
 * later, over a write acknowledged since). The runtime withdraws the
 * request's forwards still queued for the peer (peer-transport.ts,
 * `withdrawQueued`); here the peers stand in for a transport whose link to
 * s2 is down, queuing every message.
 */
describe('forwards of a failed request', () => {
  it('are withdrawn from the queue of a link that is down once the client is answered with an error', async () => {
    const queued: Array<{ to: string; message: PeerMessage }> = [];
    const runtime = new ServerRuntime({
      // Forwards time out at once, so the write fails within the test.
      config: { ...defaultNodeConfig('s1', ['s1', 's2']), forwardTimeoutMs: 50 },
      incarnation: 1,
      pages: {
        read: async (_pageKey, _offsetBlocks, lengthBlocks, blockSizeBytes) => Buffer.alloc(lengthBlocks * blockSizeBytes),
        write: async () => undefined,
        sync: async () => undefined,
        delete: async () => undefined,
      },
      metadata: { load: () => ({ volumes: [], routes: [], replicas: [], moves: [] }), commit: async () => undefined },
      peers: {
        send: (to, message) => {
          // s2 grants every volume name s1 reserves (volume-reservation.ts); everything else waits in the queue.
          if (message.type === 'volume.reserve') setImmediate(() => runtime.receive(to, { type: 'volume.reserveAnswer', name: message.volume.name, reservationId: message.reservationId, granted: true, reason: null }, null));
          else queued.push({ to, message });
        },
        withdrawQueued: (isWithdrawn) => {
          const before = queued.length;
          queued.splice(0, queued.length, ...queued.filter(({ message }) => !isWithdrawn(message)));
          return before - queued.length;
        },
      },
      log: () => undefined,
    });
    runtime.start();
    try {
      expect((await runtime.createVolume({ name: 'there', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s2'] })).ok).toBe(true);
      const reply = await runtime.request({ kind: 'write', pageKey: { volume: 'there', page: 0 }, offsetBlocks: 0, lengthBlocks: 1, fua: false }, Buffer.alloc(512, 5), 'test');
      expect(reply.outcome.status).toBe('error');
      // Every forward of the failed write is gone from the queue; the other messages queued for s2 stay.
      expect(queued.filter(({ message }) => message.type === 'request.forward')).toEqual([]);
      expect(queued.length).toBeGreaterThan(0);
    } finally {
      runtime.stop();
    }
  });
});
