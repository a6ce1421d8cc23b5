import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { PeerMessage } from '../../machines/node/messages.js';
import { PeerTransport } from './peer-transport.js';

/**
 * The messages read from one connection reach the runtime at most
 * `framesPerTurnMax` per batch (peer-transport.ts, "Turns"), every one of
 * them, in the order sent. Uses ports 39,951-39,952 under the ports lock.
 */
const transports: PeerTransport[] = [];
afterEach(async () => {
  for (const transport of transports.splice(0)) await transport.close();
});

/** A free port nobody listens on: bound by the system, then closed. */
async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe('peer transport', () => {
  it('hands the runtime at most framesPerTurnMax messages of a connection per batch, all of them in order', async () => {
    const received: number[] = [];
    const batches: number[] = [];
    const addresses = { s1: { host: '127.0.0.1', port: 39_951 }, s2: { host: '127.0.0.1', port: 39_952 } };
    const receiver = new PeerTransport({
      self: 's2', groupName: 'test', listen: addresses.s2, peers: { s1: addresses.s1 }, log: () => undefined, framesPerTurnMax: 3,
      batch: (body) => {
        batches.push(0);
        return body();
      },
      onMessage: (_from, message) => {
        batches[batches.length - 1]! += 1;
        if (message.type === 'piece.stored') received.push(message.piece);
      },
    });
    const sender = new PeerTransport({ self: 's1', groupName: 'test', listen: addresses.s1, peers: { s2: addresses.s2 }, log: () => undefined, onMessage: () => undefined });
    transports.push(receiver, sender);
    await receiver.listen();
    await sender.listen();
    const messageCount = 40;
    // Sent in one turn, they leave in one write and arrive in as few reads as the kernel makes.
    for (let piece = 0; piece < messageCount; piece += 1) {
      const message: PeerMessage = { type: 'piece.stored', pageKey: { volume: 'v', page: 0 }, attempt: 1, epoch: 2, piece, offsetBlocks: 0, lengthBlocks: 8 };
      sender.send('s2', message, null);
    }
    for (let waitedMs = 0; received.length < messageCount && waitedMs < 5_000; waitedMs += 10) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(received).toEqual(Array.from({ length: messageCount }, (_, piece) => piece));
    expect(Math.max(...batches), `messages per batch: ${batches.join(' ')}`).toBe(3);
  });

  it('says a peer is reachable until a link to it has failed, and again once the link is up (a drain plans only to reachable members)', async () => {
    const port = await freePort();
    const sender = new PeerTransport({ self: 's1', groupName: 'test', listen: { host: '127.0.0.1', port: 0 }, peers: { s2: { host: '127.0.0.1', port } }, log: () => undefined, onMessage: () => undefined });
    transports.push(sender);
    expect(sender.isReachable('s2')).toBe(true);
    sender.send('s2', { type: 'route.query', pageKey: { volume: 'v', page: 0 } }, null);
    for (let waitedMs = 0; sender.isReachable('s2') && waitedMs < 2_000; waitedMs += 10) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(sender.isReachable('s2')).toBe(false);
    const receiver = new PeerTransport({ self: 's2', groupName: 'test', listen: { host: '127.0.0.1', port }, peers: { s1: { host: '127.0.0.1', port: 1 } }, log: () => undefined, onMessage: () => undefined });
    transports.push(receiver);
    await receiver.listen();
    for (let waitedMs = 0; !sender.isReachable('s2') && waitedMs < 5_000; waitedMs += 10) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(sender.isReachable('s2')).toBe(true);
  });

  it('withdraws messages still queued for a link that is down, and delivers the rest once it is up', async () => {
    const port = await freePort();
    const sender = new PeerTransport({ self: 's1', groupName: 'test', listen: { host: '127.0.0.1', port: 0 }, peers: { s2: { host: '127.0.0.1', port } }, log: () => undefined, onMessage: () => undefined });
    transports.push(sender);
    const forward = (requestId: string): PeerMessage => ({ type: 'request.forward', requestId, hopCount: 1, retry: 0, operation: { kind: 'write', pageKey: { volume: 'v', page: 0 }, offsetBlocks: 0, lengthBlocks: 1, fua: false }, dataToken: 'd', senderIncarnation: 0 });
    sender.send('s2', forward('c:1'), Buffer.alloc(512, 1));
    sender.send('s2', forward('c:2'), Buffer.alloc(512, 2));
    sender.send('s2', forward('c:1'), Buffer.alloc(512, 1));
    sender.send('s2', { type: 'route.query', pageKey: { volume: 'v', page: 0 } }, null);
    expect(sender.withdrawQueued((message) => message.type === 'request.forward' && message.requestId === 'c:1')).toBe(2);
    expect(sender.withdrawnMessages).toBe(2);
    const received: string[] = [];
    const receiver = new PeerTransport({
      self: 's2', groupName: 'test', listen: { host: '127.0.0.1', port }, peers: { s1: { host: '127.0.0.1', port: 1 } }, log: () => undefined,
      onMessage: (_from, message) => received.push(message.type === 'request.forward' ? `forward ${message.requestId}` : message.type),
    });
    transports.push(receiver);
    await receiver.listen();
    for (let waitedMs = 0; received.length < 2 && waitedMs < 5_000; waitedMs += 10) await new Promise((resolve) => setTimeout(resolve, 10));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(received).toEqual(['forward c:2', 'route.query']);
  });

  it('refuses a per-turn bound below 1', () => {
    expect(() => new PeerTransport({ self: 's1', groupName: 'test', listen: { host: '127.0.0.1', port: 39_953 }, peers: {}, log: () => undefined, onMessage: () => undefined, framesPerTurnMax: 0 }))
      .toThrow(/framesPerTurnMax/);
  });
});
