import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBackend } from './memory-backend.js';
import { startNbdServer } from './nbd-server.js';
import type { NbdServerHandle } from './nbd-server.js';
import { DEFAULT_TEST_EXPORTS } from './test-support.js';

/**
 * The listener's bound per remote address (nbd-server.ts, "Per address"):
 * one host's connections beyond it are closed before the greeting, while
 * another address still gets in, and a slot freed is taken again.
 */
const servers: NbdServerHandle[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(servers.splice(0).map((server) => server.close(0)));
});

/** Connects from `localAddress` and says what came first: the 18-byte greeting, or a close without one. */
function connectFrom(port: number, localAddress: string): Promise<{ socket: net.Socket; outcome: 'greeted' | 'closed' }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress });
    sockets.push(socket);
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => reject(new Error(`neither a greeting nor a close from ${localAddress} within 5 s`)), 5_000);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 18) {
        clearTimeout(timer);
        resolve({ socket, outcome: 'greeted' });
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ socket, outcome: 'closed' });
    });
    socket.on('error', () => undefined);
  });
}

describe('connections per address', () => {
  it('closes one address\'s connections beyond the bound before the greeting, lets another address in, and frees a slot on close', async () => {
    const logLines: string[] = [];
    const server = await startNbdServer({ host: '127.0.0.1', port: 0, backend: new MemoryBackend(DEFAULT_TEST_EXPORTS), log: (line) => logLines.push(line), connectionsPerAddressMax: 3 });
    servers.push(server);
    const first = await Promise.all([0, 1, 2].map(() => connectFrom(server.port, '127.0.0.1')));
    expect(first.map((connection) => connection.outcome)).toEqual(['greeted', 'greeted', 'greeted']);
    expect((await connectFrom(server.port, '127.0.0.1')).outcome).toBe('closed');
    expect((await connectFrom(server.port, '127.0.0.1')).outcome).toBe('closed');
    // Logged once for the burst, naming the bound.
    expect(logLines.filter((line) => line.includes('connectionsPerAddressMax'))).toEqual(['nbd: 127.0.0.1 already has 3 connections, the most one address may (connectionsPerAddressMax); closing its new ones']);
    // Another host (another loopback address) is not shut out.
    expect((await connectFrom(server.port, '127.0.0.2')).outcome).toBe('greeted');
    // A connection of the first host closes: its slot is free again once the server has seen the close (which comes a
    // little after the client's own), so the new connection is tried until then, for at most 5 s.
    first[0]!.socket.destroy();
    let outcome = 'closed';
    for (const deadline = Date.now() + 5_000; outcome === 'closed' && Date.now() < deadline;) {
      outcome = (await connectFrom(server.port, '127.0.0.1')).outcome;
      if (outcome === 'closed') await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(outcome).toBe('greeted');
  });

  it('refuses a bound below one', async () => {
    await expect(startNbdServer({ host: '127.0.0.1', port: 0, backend: new MemoryBackend(DEFAULT_TEST_EXPORTS), log: () => undefined, connectionsPerAddressMax: 0 })).rejects.toThrow(/connectionsPerAddressMax must be a whole number >= 1/);
  });
});
