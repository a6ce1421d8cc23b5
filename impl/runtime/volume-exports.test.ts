import { afterEach, describe, expect, it } from 'vitest';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { startNbdServer, type NbdServerHandle } from '../nbd/nbd-server.js';
import { NBD_OPT_GO, NBD_OPT_INFO, NBD_OPT_LIST, NBD_REP_ACK, NBD_REP_ERR_UNKNOWN, NBD_REP_INFO, NBD_REP_SERVER } from '../nbd/protocol-constants.js';
import { encodeGoData, RawClient } from '../nbd/raw-client.js';
import type { ServerRuntime } from './server-runtime.js';
import { describedServersMax, VolumeBackend } from './volume-backend.js';

/**
 * A server's volumes as NBD exports, over a real socket with a stand-in
 * runtime: what a client may name, and what it is told. A review found an
 * export named `constructor` closing the connection (the volumes are a
 * plain object, whose prototype's members looked like volumes), and a volume
 * over many servers that no client could open (its description, naming
 * every server, passed the spec's 4096 bytes).
 */
let handle: NbdServerHandle | null = null;
const clients: RawClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await handle?.close(100);
  handle = null;
});

async function serverOf(volumes: Record<string, VolumeDefinition>): Promise<number> {
  const runtime = {
    state: { volumes },
    request: () => new Promise(() => undefined),
    connectionClosed: () => undefined,
    batch: <T>(body: () => T): T => body(),
  } as unknown as ServerRuntime;
  handle = await startNbdServer({ host: '127.0.0.1', port: 0, backend: new VolumeBackend(runtime), log: () => undefined });
  return handle.port;
}

async function greeted(port: number): Promise<RawClient> {
  const client = await RawClient.connect(port);
  clients.push(client);
  await client.greet(3);
  return client;
}

const volume: VolumeDefinition = { name: 'v', pageCount: 4, pageSizeBlocks: 2048, blockSizeBytes: 512, piecesPerPage: 4, servers: ['s1'] };

describe('volumes as NBD exports', () => {
  it('answers an export named like a member of Object.prototype NBD_REP_ERR_UNKNOWN, and goes on negotiating', async () => {
    const client = await greeted(await serverOf({ v: volume }));
    for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      for (const option of [NBD_OPT_INFO, NBD_OPT_GO]) {
        client.sendOption(option, encodeGoData(name, []));
        expect({ name, option, replyType: (await client.readOptionReply()).replyType }).toEqual({ name, option, replyType: NBD_REP_ERR_UNKNOWN });
      }
    }
    client.sendOption(NBD_OPT_GO, encodeGoData('v', []));
    expect((await client.readOptionReply()).replyType).toBe(NBD_REP_INFO);
  });

  it('lists and opens a volume over more servers than its description names, its description within 4096 bytes', async () => {
    // 130 members with ids of 32 characters, the longest a member id may be: naming them all took 4,480 bytes.
    const servers = Array.from({ length: 130 }, (_, index) => `server-${String(index).padStart(25, '0')}`);
    const client = await greeted(await serverOf({ wide: { ...volume, name: 'wide', servers } }));
    client.sendOption(NBD_OPT_LIST);
    const entry = await client.readOptionReply();
    expect(entry.replyType).toBe(NBD_REP_SERVER);
    const description = entry.data.subarray(4 + entry.data.readUInt32BE(0)).toString('utf8');
    expect(description.length).toBeLessThanOrEqual(4096);
    expect(description).toContain(`${servers[describedServersMax - 1]} and ${130 - describedServersMax} more`);
    expect((await client.readOptionReply()).replyType).toBe(NBD_REP_ACK);
    client.sendOption(NBD_OPT_GO, encodeGoData('wide', []));
    let replyType = NBD_REP_INFO;
    while (replyType === NBD_REP_INFO) replyType = (await client.readOptionReply()).replyType;
    expect(replyType).toBe(NBD_REP_ACK);
  });
});
