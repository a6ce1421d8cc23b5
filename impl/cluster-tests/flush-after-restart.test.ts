import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NbdErrorReply } from '../jepsen/nbd-client.js';
import type { ClusterFixture } from './cluster-fixture.js';
import { connectNbd, eventually, ownerOf, startCluster } from './cluster-fixture.js';

/**
 * A FLUSH asks the servers holding the writes it covers, which the server the
 * client talks to keeps in memory (machines/node/flush-barrier.ts). When that
 * server restarts, it has forgotten them, yet another server may still hold
 * an acknowledged write unsynced: so its first FLUSH after a start asks every
 * member. A review found the FLUSH after a kill -9 of the client's server
 * answered ok asking no one, and a power cut of the owner then took the
 * write. Servers run with BLOCKSHIFT_POWER_LOSS=1, so a kill drops every
 * write not yet synced.
 */
const servers = ['s1', 's2', 's3'] as const;
const blockBytes = 4096;
const pageBytes = 1024 * 1024;

describe('FLUSH after the server a client talks to restarted', () => {
  let cluster: ClusterFixture;
  beforeAll(async () => {
    // Base port 19609: peers 20609-20611, admin 21609-21611, balance 21709-21711.
    cluster = await startCluster(19_609, {}, { BLOCKSHIFT_POWER_LOSS: '1' });
    await cluster.group.admin('s1', '/volumes', { name: 'cut', pageCount: 3, servers: [...servers], pageSizeBlocks: 2048, piecesPerPage: 1 });
    await eventually(async () => (await cluster.group.status('s3')).volumes.some((volume) => volume.name === 'cut'), 5_000);
  }, 60_000);
  afterAll(async () => cluster?.close());

  it('makes a write the restarted server acknowledged before durable on its owner, which then survives a power cut', async () => {
    const owners = await Promise.all([0, 1, 2].map((page) => ownerOf(cluster.group, `cut/${page}`)));
    const page = owners.findIndex((owner) => owner !== 's1');
    const owner = owners[page]!;
    const connect = () => connectNbd(cluster.group, 's1', 'cut');
    const before = await connect();
    try {
      await before.flush(10_000); // s1's first barrier since its start asks every member
      await before.write(page * pageBytes, Buffer.alloc(blockBytes, 0x61), false, 5_000); // forwarded: the owner holds it unsynced
    } finally {
      before.close();
    }
    await cluster.group.kill('s1');
    await cluster.group.start('s1');
    const after = await connect();
    try {
      await after.flush(15_000).catch((error: unknown) => {
        throw new Error(`the FLUSH after the restart failed: ${error instanceof NbdErrorReply ? `errno ${error.errno}` : String(error)}`);
      });
      await cluster.group.kill(owner);
      await cluster.group.start(owner);
      expect((await after.read(page * pageBytes, blockBytes, 10_000)).equals(Buffer.alloc(blockBytes, 0x61)), `the write on ${owner} after its power cut`).toBe(true);
    } finally {
      after.close();
    }
  }, 120_000);
});
