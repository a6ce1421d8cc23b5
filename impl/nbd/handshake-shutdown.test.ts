import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBackend } from './memory-backend.js';
import { startNbdServer } from './nbd-server.js';
import type { NbdServerHandle } from './nbd-server.js';
import { NBD_FLAG_C_FIXED_NEWSTYLE, NBD_FLAG_C_NO_ZEROES, NBD_OPT_ABORT, NBD_OPT_EXPORT_NAME, NBD_OPT_GO, NBD_OPT_LIST, NBD_REP_ACK, NBD_REP_ERR_SHUTDOWN, NBD_REP_SERVER } from './protocol-constants.js';
import { RawClient, encodeGoData } from './raw-client.js';
import { DEFAULT_TEST_EXPORTS } from './test-support.js';

/**
 * A server that stops while a client negotiates (handshake.ts, connection.ts
 * `shutdown`): the client's options are answered NBD_REP_ERR_SHUTDOWN, as
 * the specification provides, instead of a bare close mid-negotiation;
 * NBD_OPT_ABORT is still acknowledged, and the connection ends once the
 * client leaves or the grace runs out. One that has not sent its flags yet
 * is closed at once.
 */
const clients: RawClient[] = [];
let server: NbdServerHandle | null = null;
let logLines: string[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await server?.close(0);
  server = null;
});

async function negotiatingClient(): Promise<RawClient> {
  logLines = [];
  server = await startNbdServer({ host: '127.0.0.1', port: 0, backend: new MemoryBackend(DEFAULT_TEST_EXPORTS), log: (line) => logLines.push(line) });
  const client = await RawClient.connect(server.port);
  clients.push(client);
  await client.greet(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  // In its options: a LIST is answered as usual before the stop.
  client.sendOption(NBD_OPT_LIST);
  let reply = await client.readOptionReply();
  while (reply.replyType === NBD_REP_SERVER) reply = await client.readOptionReply();
  expect(reply.replyType).toBe(NBD_REP_ACK);
  return client;
}

describe('a server stopping during a handshake', () => {
  it('answers the client\'s options NBD_REP_ERR_SHUTDOWN (NBD_OPT_GO and an oversized one included), acknowledges its NBD_OPT_ABORT, and then closes', async () => {
    const client = await negotiatingClient();
    const stopped = server!.close(5_000);
    client.sendOption(NBD_OPT_LIST);
    const refused = await client.readOptionReply();
    expect(refused).toMatchObject({ option: NBD_OPT_LIST, replyType: NBD_REP_ERR_SHUTDOWN });
    expect(refused.data.toString('utf8')).toBe('server shutting down');
    // NBD_OPT_GO too (no export is opened), and one whose data is too long to be read (refused as stopping, not as long).
    client.sendOption(NBD_OPT_GO, encodeGoData('vol-a', []));
    expect(await client.readOptionReply()).toMatchObject({ option: NBD_OPT_GO, replyType: NBD_REP_ERR_SHUTDOWN });
    client.sendOption(NBD_OPT_GO, Buffer.alloc(9_000));
    expect(await client.readOptionReply()).toMatchObject({ option: NBD_OPT_GO, replyType: NBD_REP_ERR_SHUTDOWN });
    client.sendOption(NBD_OPT_ABORT);
    expect(await client.readOptionReply()).toMatchObject({ option: NBD_OPT_ABORT, replyType: NBD_REP_ACK });
    expect(await client.waitForClose()).toBe(true);
    await stopped;
    expect(logLines.some((line) => line.includes('server stopping during the handshake; answering options with NBD_REP_ERR_SHUTDOWN'))).toBe(true);
  });

  it('closes a client that says nothing more once the grace runs out, and one that asks NBD_OPT_EXPORT_NAME (no error reply exists for it)', async () => {
    const silent = await negotiatingClient();
    const startedMs = performance.now();
    await server!.close(300);
    expect(await silent.waitForClose()).toBe(true);
    expect(performance.now() - startedMs).toBeGreaterThanOrEqual(250);

    const named = await negotiatingClient();
    const stopped = server!.close(5_000);
    named.sendOption(NBD_OPT_EXPORT_NAME, Buffer.from('vol-a'));
    expect(await named.waitForClose()).toBe(true);
    await stopped;
  });

  it('closes at once a client that has not sent its flags', async () => {
    server = await startNbdServer({ host: '127.0.0.1', port: 0, backend: new MemoryBackend(DEFAULT_TEST_EXPORTS), log: () => undefined });
    const client = await RawClient.connect(server.port);
    clients.push(client);
    await client.read(18);
    const startedMs = performance.now();
    await server.close(5_000);
    expect(await client.waitForClose()).toBe(true);
    expect(performance.now() - startedMs).toBeLessThan(2_000);
  });
});
