import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { PeerMessage } from '../../machines/node/messages.js';
import { encodePeerFrame, peerProtocolVersion } from './peer-frame.js';
import { PeerTransport } from './peer-transport.js';

/**
 * What a connection to the peer port may cost before it says a valid hello,
 * and what a peer that stops reading or refuses our hello costs
 * (peer-transport.ts, "Strangers", "Back-pressure", "Back-off"). A review
 * helper found each of these with a script; every test binds ephemeral ports.
 */
const closers: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

const stored = (piece: number): PeerMessage => ({ type: 'piece.stored', pageKey: { volume: 'v', page: 0 }, attempt: 1, epoch: 2, piece, offsetBlocks: 0, lengthBlocks: 8 });
const hello = (from: string, group = 'test', to = 's1'): Buffer => encodePeerFrame({ kind: 'hello', from, to, group }, null);
const message = (piece: number): Buffer => encodePeerFrame({ kind: 'message', message: stored(piece) }, null);

async function until(condition: () => boolean, timeoutMs = 3_000): Promise<void> {
  for (let waitedMs = 0; !condition() && waitedMs < timeoutMs; waitedMs += 10) await new Promise((resolve) => setTimeout(resolve, 10));
}

/** A listening transport s1 whose peers are s2 and s3 (at unused addresses), recording what reaches its node. */
async function receiver(options: { helloTimeoutMs?: number; log?: (line: string) => void } = {}): Promise<{ transport: PeerTransport; port: number; received: Array<[string, number]> }> {
  const received: Array<[string, number]> = [];
  const transport = new PeerTransport({
    self: 's1', groupName: 'test', listen: { host: '127.0.0.1', port: 0 },
    peers: { s2: { host: '127.0.0.1', port: 1 }, s3: { host: '127.0.0.1', port: 1 } }, log: () => undefined,
    onMessage: (from, delivered) => { if (delivered.type === 'piece.stored') received.push([from, delivered.piece]); },
    ...options,
  });
  await transport.listen();
  closers.push(() => transport.close());
  return { transport, port: transport.listeningPort!, received };
}

/** A raw client connection; resolves `closed` when the transport closes it. */
async function stranger(port: number): Promise<{ socket: net.Socket; closed: () => boolean }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  let closed = false;
  socket.on('close', () => { closed = true; });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  closers.push(() => { socket.destroy(); });
  return { socket, closed: () => closed };
}

describe('peer transport, against strangers', () => {
  it('refuses a hello naming no peer of its own (constructor, __proto__, itself), and still serves a real peer', async () => {
    const { port, received } = await receiver();
    for (const name of ['constructor', '__proto__', 'toString', 's1', 's9']) {
      const connection = await stranger(port);
      connection.socket.write(Buffer.concat([hello(name), message(1)]));
      await until(connection.closed);
      expect(connection.closed(), `hello from ${name}`).toBe(true);
    }
    const peer = await stranger(port);
    peer.socket.write(Buffer.concat([hello('s2'), message(7)]));
    await until(() => received.length > 0);
    expect(received).toEqual([['s2', 7]]);
  });

  it('refuses a hello meant for another server (a swapped or stale peer address), and one of another group', async () => {
    const { port, received } = await receiver();
    for (const [group, to] of [['test', 's3'], ['other', 's1']] as const) {
      const connection = await stranger(port);
      connection.socket.write(Buffer.concat([hello('s2', group, to), message(1)]));
      await until(connection.closed);
      expect(connection.closed(), `hello of group ${group} meant for ${to}`).toBe(true);
    }
    const peer = await stranger(port);
    peer.socket.write(Buffer.concat([hello('s2'), message(8)]));
    await until(() => received.length > 0);
    expect(received).toEqual([['s2', 8]]);
  });

  it('logs a refusal that keeps coming back at its 1st, 10th, 100th, ... time, not every time', async () => {
    // A forgotten server that is restarted dials its old peers every couple of seconds; each refusal was logged.
    const lines: string[] = [];
    const { port } = await receiver({ log: (line) => lines.push(line) });
    for (let attempt = 0; attempt < 12; attempt += 1) {
      const connection = await stranger(port);
      connection.socket.write(hello('s2', 'test', 's3'));
      await until(connection.closed);
    }
    expect(lines).toEqual([
      "peer connection closed: hello from s2 meant for s3 refused: this is s1 (is s3's peer address in s2's config this server's?)",
      "peer connection closed: hello from s2 meant for s3 refused: this is s1 (is s3's peer address in s2's config this server's?) (10 times)",
    ]);
  });

  it('closes a connection whose first frame claims more than a hello may, without waiting for its bytes', async () => {
    const { port } = await receiver();
    const connection = await stranger(port);
    const prefix = Buffer.alloc(9);
    prefix.writeUInt32BE(60 * 2 ** 20, 0);
    prefix.writeUInt8(peerProtocolVersion, 4);
    prefix.writeUInt32BE(100, 5);
    connection.socket.write(prefix);
    await until(connection.closed, 1_000);
    expect(connection.closed()).toBe(true);
  });

  it('closes a connection that says nothing within helloTimeoutMs', async () => {
    const { port } = await receiver({ helloTimeoutMs: 200 });
    const connection = await stranger(port);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(connection.closed()).toBe(false);
    await until(connection.closed, 2_000);
    expect(connection.closed()).toBe(true);
  });

  it('refuses a second hello on a connection that has said one', async () => {
    const { port, received } = await receiver();
    const connection = await stranger(port);
    connection.socket.write(Buffer.concat([hello('s2'), message(1), hello('s3'), message(2)]));
    await until(connection.closed);
    expect(connection.closed()).toBe(true);
    expect(received).toEqual([['s2', 1]]);
  });

  it('closes the inbound connection of a server that left the group (setPeers)', async () => {
    const { transport, port, received } = await receiver();
    const connection = await stranger(port);
    connection.socket.write(Buffer.concat([hello('s2'), message(1)]));
    await until(() => received.length === 1);
    transport.setPeers({ s3: { host: '127.0.0.1', port: 1 } });
    await until(connection.closed);
    expect(connection.closed()).toBe(true);
    expect(received).toEqual([['s2', 1]]);
  });
});

describe('peer transport, toward a peer that does not keep up', () => {
  it('drops messages once the socket holds queueBytesMax unsent, instead of buffering without bound', async () => {
    // A peer that accepts and never reads: the kernel's buffers fill, then the socket's own.
    const accepted: net.Socket[] = [];
    const silent = net.createServer((socket) => { accepted.push(socket); socket.pause(); socket.on('error', () => undefined); });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    // A paused socket never sees the other side go: it is destroyed here, or the listener would wait for it for ever.
    closers.push(() => new Promise<void>((resolve) => { for (const socket of accepted) socket.destroy(); silent.close(() => resolve()); }));
    const queueBytesMax = 8 * 2 ** 20;
    const sender = new PeerTransport({
      self: 's1', groupName: 'test', listen: { host: '127.0.0.1', port: 0 }, peers: { s2: { host: '127.0.0.1', port: (silent.address() as AddressInfo).port } },
      log: () => undefined, onMessage: () => undefined, queueBytesMax,
    });
    closers.push(() => sender.close());
    const chunk = Buffer.alloc(2 ** 20, 7);
    sender.send('s2', stored(0), chunk);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const sent = 100;
    for (let round = 0; round < sent; round += 1) {
      sender.send('s2', stored(round), chunk);
      if (round % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // At most queueBytesMax in the socket and what the kernel takes on loopback (a few MiB): most of 100 MiB is dropped.
    expect(sender.droppedMessages).toBeGreaterThan(sent / 2);
  });

  it('backs off while the peer accepts connections but refuses them at once (another group, an unknown member)', async () => {
    let connections = 0;
    const refusing = net.createServer((socket) => { connections += 1; socket.on('error', () => undefined); socket.destroy(); });
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', () => resolve()));
    closers.push(() => new Promise<void>((resolve) => refusing.close(() => resolve())));
    const sender = new PeerTransport({
      self: 's1', groupName: 'test', listen: { host: '127.0.0.1', port: 0 }, peers: { s2: { host: '127.0.0.1', port: (refusing.address() as AddressInfo).port } },
      log: () => undefined, onMessage: () => undefined, reconnectDelayMinMs: 50, reconnectDelayMaxMs: 2_000,
    });
    closers.push(() => sender.close());
    sender.send('s2', stored(0), null);
    await new Promise((resolve) => setTimeout(resolve, 1_600));
    // Delays of 50, 100, 200, 400 and 800 ms: six connections in 1.6 s, not one per 50 ms (32) as when a connection reset the delay.
    expect(connections).toBeGreaterThanOrEqual(3);
    expect(connections).toBeLessThanOrEqual(7);
  });
});
