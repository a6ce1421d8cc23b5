import { describe, expect, it } from 'vitest';
import type { PeerMessage } from '../../machines/node/messages.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { ServerId } from '../../machines/identifiers.js';
import { memoryPages } from './memory-pages.js';
import { ServerRuntime } from './server-runtime.js';

/**
 * A write forwarded to an owner that is down and answered EIO must not run
 * when the owner's link comes back (a review's failed write landed, seconds
 * later, over a write acknowledged since). The runtime withdraws the
 * request's forwards still queued for the peer (peer-transport.ts,
 * `withdrawQueued`); here the peers stand in for a transport whose link to
 * s2 is down, queuing every message.
 */
/** The stand-in transport's `withdrawQueued`: removes from `queued` the messages picked, and counts them. */
function withdrawFrom(queued: Array<{ to: string; message: PeerMessage }>, isWithdrawn: (message: PeerMessage, to: string) => boolean): number {
  const before = queued.length;
  queued.splice(0, queued.length, ...queued.filter(({ message, to }) => !isWithdrawn(message, to)));
  return before - queued.length;
}

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
        withdrawQueued: (isWithdrawn) => withdrawFrom(queued, isWithdrawn),
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

  it('are withdrawn at a middle hop too, by the id they carry there, once it answers the asker with an error', async () => {
    // s2 holds an invalid copy with a forwarding pointer to s3 (down: everything to it queues); s1 forwards a write to s2.
    const queued: Array<{ to: string; message: PeerMessage }> = [];
    const runtime = new ServerRuntime({
      config: { ...defaultNodeConfig('s2', ['s1', 's2', 's3']), forwardTimeoutMs: 50, forwardingPointer: true },
      incarnation: 1,
      pages: { read: async (_pageKey, _offsetBlocks, lengthBlocks, blockSizeBytes) => Buffer.alloc(lengthBlocks * blockSizeBytes), write: async () => undefined, sync: async () => undefined, delete: async () => undefined },
      metadata: {
        load: () => ({
          volumes: [{ name: 'there', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s2'] }],
          routes: [{ pageKey: { volume: 'there', page: 0 }, route: { owner: 's3', epoch: 2 } }],
          replicas: [{ pageKey: { volume: 'there', page: 0 }, record: { status: 'invalid', epoch: 2, owner: 's3', forwardTo: 's3' } }],
          moves: [],
        }),
        commit: async () => undefined,
      },
      peers: {
        send: (to, message) => { queued.push({ to, message }); },
        withdrawQueued: (isWithdrawn) => withdrawFrom(queued, isWithdrawn),
      },
      log: () => undefined,
    });
    runtime.start();
    try {
      runtime.receive('s1', { type: 'request.forward', requestId: 'c:s1.1-7', hopCount: 1, retry: 0, operation: { kind: 'write', pageKey: { volume: 'there', page: 0 }, offsetBlocks: 0, lengthBlocks: 1, fua: false }, dataToken: 'd1', senderIncarnation: 0 }, Buffer.alloc(512, 9));
      for (let waitedMs = 0; !queued.some(({ message }) => message.type === 'request.answer') && waitedMs < 2_000; waitedMs += 20) await new Promise((resolve) => setTimeout(resolve, 20));
      const answer = queued.find(({ message }) => message.type === 'request.answer');
      expect(answer?.to).toBe('s1');
      expect(answer?.message.type === 'request.answer' && answer.message.outcome.status).toBe('error');
      // s2's forwards to s3 carried its own entry id for the request (p:s1:c:s1.1-7:0), not s1's: all gone.
      expect(queued.filter(({ message }) => message.type === 'request.forward')).toEqual([]);
    } finally {
      runtime.stop();
    }
  });

  it('a write whose forward left this process waits for its target to cancel it, with one cancel queued however long the target stays away', async () => {
    // The forward is handed to a live connection (sent); then the link goes down, and every cancel waits in its queue.
    const sent: PeerMessage[] = [];
    const queued: Array<{ to: string; message: PeerMessage }> = [];
    const runtime = new ServerRuntime({
      config: { ...defaultNodeConfig('s1', ['s1', 's2']), forwardTimeoutMs: 30 },
      incarnation: 1,
      pages: { read: async (_pageKey, _offsetBlocks, lengthBlocks, blockSizeBytes) => Buffer.alloc(lengthBlocks * blockSizeBytes), write: async () => undefined, sync: async () => undefined, delete: async () => undefined },
      metadata: {
        load: () => ({ volumes: [{ name: 'there', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s2'] }], routes: [{ pageKey: { volume: 'there', page: 0 }, route: { owner: 's2', epoch: 1 } }], replicas: [], moves: [] }),
        commit: async () => undefined,
      },
      peers: {
        send: (to, message) => { if (message.type === 'request.forward') sent.push(message); else queued.push({ to, message }); },
        withdrawQueued: (isWithdrawn) => withdrawFrom(queued, isWithdrawn),
      },
      log: () => undefined,
    });
    runtime.start();
    try {
      let answered = false;
      const reply = runtime.request({ kind: 'write', pageKey: { volume: 'there', page: 0 }, offsetBlocks: 0, lengthBlocks: 1, fua: false }, Buffer.alloc(512, 5), 'test');
      void reply.then(() => { answered = true; });
      // Five forward time-outs and more: the client is not answered, and one cancel waits for s2.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(sent.filter((message) => message.type === 'request.forward')).toHaveLength(1);
      expect(answered).toBe(false);
      const cancels = queued.filter(({ message }) => message.type === 'request.cancel');
      expect(cancels).toEqual([{ to: 's2', message: { type: 'request.cancel', requestId: (sent[0] as { requestId: string }).requestId, retry: 0, hopCount: 1 } }]);
      // s2 comes back and answers the cancel: the try never ran there and never will, so the write fails now.
      runtime.receive('s2', { type: 'request.answer', requestId: (sent[0] as { requestId: string }).requestId, retry: 0, outcome: { status: 'error', errno: 110, reason: 'forward timed out' }, dataToken: null, holders: [] }, null);
      expect((await reply).outcome).toEqual({ status: 'error', errno: 110, reason: 'forward timed out' });
    } finally {
      runtime.stop();
    }
  });

  it('a part to a piece the destination serves, its link down: one cancel queued however often it is asked again', async () => {
    // A piecewise move s1 → s2 of a page of two pieces: piece 0 is handed over (s2 serves it), piece 1's copy is held.
    // Then s1's link to s2 goes down (everything to s2 queues) and a client writes to piece 0: the write goes to s2 as
    // a part, and every forward time-out asks s2 again to cancel it (node.ts, #retryServe). Each cancel asked replaces
    // the one still queued (server-runtime.ts, peer.send of block.cancel).
    const queued: Array<{ to: string; message: PeerMessage }> = [];
    const heldCopies: Array<() => void> = [];
    let linkDown = false;
    let cancelsSent = 0;
    const runtimes = new Map<ServerId, ServerRuntime>();
    for (const id of ['s1', 's2'] as const) {
      runtimes.set(id, new ServerRuntime({
        config: { ...defaultNodeConfig(id, ['s1', 's2']), forwardTimeoutMs: 30, peerRetryDelayMs: 10 },
        incarnation: 1,
        pages: memoryPages(),
        metadata: { load: () => ({ volumes: [], routes: [], replicas: [], moves: [] }), commit: async () => undefined },
        peers: {
          send: (to: ServerId, message: PeerMessage, data: Buffer | null) => {
            if (message.type === 'block.cancel') cancelsSent += 1;
            const deliver = () => runtimes.get(to)?.receive(id, message, data);
            if (id === 's1' && linkDown) queued.push({ to, message });
            else if (message.type === 'piece.copy' && message.piece === 1) heldCopies.push(deliver);
            else setImmediate(deliver);
          },
          withdrawQueued: (isWithdrawn) => withdrawFrom(queued, isWithdrawn),
        },
        log: () => undefined,
      }));
    }
    const all = [...runtimes.values()];
    for (const runtime of all) runtime.start();
    const s1 = runtimes.get('s1')!;
    const s2 = runtimes.get('s2')!;
    try {
      expect((await s1.createVolume({ name: 'v', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1'] })).ok).toBe(true);
      for (let tries = 0; tries < 100 && !s2.state.volumes['v']; tries += 1) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(await s1.move({ volume: 'v', page: 0 }, 's2', 'piecewise')).toMatchObject({ ok: true });
      for (let tries = 0; tries < 200 && heldCopies.length === 0; tries += 1) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(heldCopies.length, 'piece 0 handed over, piece 1 copying').toBeGreaterThan(0);

      linkDown = true;
      let answered = false;
      void s1.request({ kind: 'write', pageKey: { volume: 'v', page: 0 }, offsetBlocks: 0, lengthBlocks: 1, fua: false }, Buffer.alloc(512, 7), 'test').then(() => { answered = true; });
      // Three time-outs at least (30 ms each), however slowly a loaded machine runs them.
      for (let waitedMs = 0; cancelsSent < 3 && waitedMs < 5_000; waitedMs += 10) await new Promise((resolve) => setTimeout(resolve, 10));
      const parts = queued.filter(({ message }) => message.type === 'block.write');
      expect(parts, 'the write went to s2 as a part').toHaveLength(1);
      const requestId = parts[0]!.message.type === 'block.write' ? parts[0]!.message.requestId : '';
      expect(cancelsSent, 'the cancel was asked again at each time-out').toBeGreaterThanOrEqual(3);
      expect(queued.filter(({ message }) => message.type === 'block.cancel')).toEqual([
        { to: 's2', message: expect.objectContaining({ type: 'block.cancel', requestId }) },
      ]);
      expect(answered, 'no answer while s2 cannot say whether the part landed').toBe(false);
    } finally {
      for (const runtime of all) runtime.stop();
    }
  });

  it('a restarted server\'s fence, asked again at every cancel it holds back, keeps one queued per hop asked for a member that is down', () => {
    // s2 restarted (incarnation 2) and knows nothing of s1's try: every cancel of it waits for s1's and s3's
    // confirmation of s2's fence (machines/node/incarnation-fence.ts). s3's link is down, so everything to s3 queues.
    const queued: Array<{ to: string; message: PeerMessage }> = [];
    const toS1: PeerMessage[] = [];
    const runtime = new ServerRuntime({
      config: defaultNodeConfig('s2', ['s1', 's2', 's3']),
      incarnation: 2,
      pages: memoryPages(),
      metadata: { load: () => ({ volumes: [], routes: [], replicas: [], moves: [] }), commit: async () => undefined },
      peers: {
        send: (to, message) => { if (to === 's3') queued.push({ to, message }); else toS1.push(message); },
        withdrawQueued: (isWithdrawn) => withdrawFrom(queued, isWithdrawn),
      },
      log: () => undefined,
    });
    runtime.start();
    try {
      const cancel: PeerMessage = { type: 'request.cancel', requestId: 'c:s1.4-9', retry: 0, hopCount: 1 };
      for (let asked = 0; asked < 5; asked += 1) runtime.receive('s1', cancel, null);
      expect(queued).toEqual([{ to: 's3', message: { type: 'fence.raise', incarnation: 2, hopCountMin: 2 } }]);
      expect(toS1.filter((message) => message.type === 'fence.raise')).toHaveLength(5);
      expect(toS1.filter((message) => message.type === 'request.answer')).toEqual([]);
      // A cancel of a try of hop 3 asks at hop 4: each hop asked keeps one fence queued (a member confirms each on its
      // own, and the higher one may be what frees the lower), and asking at hop 2 again replaces only the one at 2.
      runtime.receive('s1', { ...cancel, requestId: 'c:s1.4-10', hopCount: 3 }, null);
      expect(queued.map(({ message }) => message.type === 'fence.raise' && message.hopCountMin)).toEqual([2, 4]);
      runtime.receive('s1', cancel, null);
      expect(queued.map(({ message }) => message.type === 'fence.raise' && message.hopCountMin)).toEqual([4, 2]);
      // s1 confirms; s3 is still away, so the cancel still waits, and still one fence per hop is queued for s3.
      runtime.receive('s1', { type: 'fence.confirmed', incarnation: 2, hopCountMin: 2 }, null);
      runtime.receive('s1', cancel, null);
      expect(queued).toHaveLength(2);
      expect(toS1.filter((message) => message.type === 'request.answer')).toEqual([]);
    } finally {
      runtime.stop();
    }
  });
});
