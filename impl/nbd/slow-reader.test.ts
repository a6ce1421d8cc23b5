import { afterEach, describe, expect, it } from 'vitest';
import { NBD_CMD_READ, NBD_OPT_LIST, NBD_REP_ACK } from './protocol-constants.js';
import { RawClient } from './raw-client.js';
import { startTestServer, type TestServer } from './test-support.js';

/**
 * Clients that read their replies late, or never. What a server sends and
 * the client has not read sits in the server's send buffer, so a server that
 * goes on sending regardless holds what a client decides it holds; and one
 * that gives up on a slow client too early throws replies away that the
 * spec says it must deliver (a review found both).
 */
let server: TestServer | null = null;
const clients: RawClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await server?.close();
  server = null;
});

async function connect(port: number): Promise<RawClient> {
  const client = await RawClient.connect(port);
  clients.push(client);
  return client;
}

/** Each of these reads is 4 MiB. */
const readBytes = 4 * 2 ** 20;

/** A client that sends eight reads of 4 MiB (32 MiB of replies) and NBD_CMD_DISC, and reads nothing yet. */
async function readsThenDisconnect(port: number): Promise<RawClient> {
  const client = await connect(port);
  await client.negotiate('vol-a', false);
  client.stopReading();
  for (let index = 0; index < 8; index += 1) client.sendRequest({ type: NBD_CMD_READ, handle: BigInt(index), offset: index * readBytes, lengthBytes: readBytes });
  client.sendDisconnect();
  return client;
}

describe('a client that reads slowly or not at all', () => {
  it('makes a negotiating server buffer at most about one option\'s replies, however many options it pipelines', async () => {
    // 400 exports with descriptions of 1 KiB: each NBD_OPT_LIST answers about 400 KiB.
    server = await startTestServer(Array.from({ length: 400 }, (_, index) => ({ name: `vol-${index}`, sizeBytes: 1024 * 1024, description: 'd'.repeat(1000) })));
    const client = await connect(server.port);
    await client.greet(3);
    client.stopReading();
    const before = process.memoryUsage().arrayBuffers;
    // 255 options of 16 bytes: 4 KiB from the client. Sent regardless of the client, their lists came to about 100 MB.
    for (let index = 0; index < 255; index += 1) client.sendOption(NBD_OPT_LIST);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const grownBytes = process.memoryUsage().arrayBuffers - before;
    console.log(`the server buffered about ${(grownBytes / 2 ** 20).toFixed(1)} MiB for 255 pipelined NBD_OPT_LISTs not read`);
    expect(grownBytes).toBeLessThan(16 * 2 ** 20);
    // A client that then reads gets every list, in order.
    client.resumeReading();
    let lists = 0;
    while (lists < 255) {
      const reply = await client.readOptionReply();
      expect(reply.option).toBe(NBD_OPT_LIST);
      if (reply.replyType === NBD_REP_ACK) lists += 1;
    }
  }, 30_000);

  it('is answered every request it sent before NBD_CMD_DISC, however late it reads them', async () => {
    // A short linger, to keep the test quick; it used to start before the replies had left, and cut them off.
    server = await startTestServer(undefined, { delayMs: (operation) => (operation === 'read' ? 100 : 0) }, { lingerMs: 300 });
    const client = await readsThenDisconnect(server.port);
    // The client gets to its replies after a second (a slow link, a busy host): 32 MiB wait in the server's send buffer.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    client.resumeReading();
    const handles: bigint[] = [];
    for (let index = 0; index < 8; index += 1) {
      const reply = await client.readSimpleReply();
      expect(reply.errno).toBe(0);
      await client.read(readBytes);
      handles.push(reply.handle);
    }
    expect(handles).toEqual([0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n]);
  }, 30_000);

  it('is not cut off while it reads the replies left after NBD_CMD_DISC slowly but steadily (a review)', async () => {
    // A 1 s stall time-out; the client reads at about 6 MiB/s, so no reply leaves in full within it (the replies of a
    // turn go out in one writev, which Node shows as done only once all of it is written).
    server = await startTestServer(undefined, { delayMs: (operation) => (operation === 'read' ? 100 : 0) }, { lingerMs: 300, replyStallTimeoutMs: 1000 });
    const client = await readsThenDisconnect(server.port);
    const socket = client.rawSocket();
    socket.removeAllListeners('data');
    const expectedBytes = 8 * (16 + readBytes);
    let readSoFar = 0;
    let closed = false;
    socket.on('close', () => { closed = true; });
    const started = Date.now();
    while (!closed && readSoFar < expectedBytes && Date.now() - started < 20_000) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      const chunk = (socket.read(64 * 1024) ?? socket.read()) as Buffer | null;
      if (chunk) readSoFar += chunk.length;
    }
    expect(server.logLines.filter((line) => line.includes('cutting it off'))).toEqual([]);
    expect(readSoFar).toBe(expectedBytes);
  }, 30_000);

  it('is cut off once it has not read the replies left after NBD_CMD_DISC by their deadline', async () => {
    // The reads take a while, so the NBD_CMD_DISC behind them is read before their replies fill the send buffer (a
    // connection that has not read it yet is cut off by the reply stall of transmission, as before).
    server = await startTestServer(undefined, { delayMs: (operation) => (operation === 'read' ? 100 : 0) }, { lingerMs: 300, replyStallTimeoutMs: 400, lastRepliesBytesPerSecondMin: 64 * 2 ** 20 });
    const client = await readsThenDisconnect(server.port);
    // The deadline: the reply stall time-out, plus what waits at 64 MiB/s (half a second at most).
    const cutOff = (): boolean => server!.logLines.some((line) => line.includes('did not read its last replies'));
    for (let waitedMs = 0; !cutOff() && waitedMs < 5_000; waitedMs += 50) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(cutOff(), server!.logLines.join('\n')).toBe(true);
  }, 30_000);
});
