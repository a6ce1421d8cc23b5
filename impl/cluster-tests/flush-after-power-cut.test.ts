import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterFixture } from './cluster-fixture.js';
import { connectNbd, eventually, flushErrno, ownerOf, startCluster } from './cluster-fixture.js';

/**
 * NBD: a FLUSH that answers ok promises every write acknowledged before it is
 * durable. A write acknowledged without FUA sits unsynced on the server that
 * owns its page; a power cut there loses it; the restarted owner then syncs
 * what is left and would answer the group-wide sync barrier ok. The FLUSH
 * must fail instead (machines/node/loss-watch.ts). Servers run with
 * BLOCKSHIFT_POWER_LOSS=1, so a kill drops every write not yet synced and
 * the restart raises the owner's loss epoch.
 *
 * The client talks to another server than the owner, so the connection
 * outlives the cut (a client whose own server died has lost its connection
 * and, by NBD, any promise about its unflushed writes). The loss is reported
 * once per connection open when it was found, as Linux reports writeback
 * errors: a second FLUSH on the same connection, and a FLUSH on a connection
 * opened afterwards, answer ok.
 */
const servers = ['s1', 's2', 's3'] as const;
const blockBytes = 4096;
const pageBytes = 1024 * 1024;
const errnoIo = 5;

describe('FLUSH after a power cut of a server holding an unflushed write', () => {
  let cluster: ClusterFixture;
  beforeAll(async () => {
    cluster = await startCluster(18_950, {}, { BLOCKSHIFT_POWER_LOSS: '1' });
    await cluster.group.admin('s1', '/volumes', { name: 'cut', pageCount: 3, servers: [...servers], pageSizeBlocks: 2048, piecesPerPage: 1 });
    await eventually(async () => (await cluster.group.status('s3')).volumes.some((volume) => volume.name === 'cut'), 5_000);
  }, 60_000);
  afterAll(async () => cluster?.close());

  it('fails with EIO on every connection open when the loss is found, once, and not on a connection opened later', async () => {
    const page = 0;
    const owner = (await ownerOf(cluster.group, `cut/${page}`))!;
    const through = servers.find((server) => server !== owner)!;
    const connect = () => connectNbd(cluster.group, through, 'cut');
    const writer = await connect();
    const bystander = await connect();
    try {
      // Before any cut a FLUSH covering an unflushed write succeeds.
      await writer.write(page * pageBytes, Buffer.alloc(blockBytes, 0x11), false, 5_000);
      expect(await flushErrno(writer)).toBe(0);
      await bystander.read(page * pageBytes, blockBytes, 5_000);

      await writer.write(page * pageBytes + blockBytes, Buffer.alloc(blockBytes, 0x22), false, 5_000);
      await cluster.group.kill(owner);
      await cluster.group.start(owner);

      expect(await flushErrno(writer), 'the FLUSH covering the write the cut took').toBe(errnoIo);
      expect(await flushErrno(writer), 'the same connection, once told').toBe(0);
      expect(await flushErrno(bystander), 'another connection open when the loss was found').toBe(errnoIo);
      expect(await flushErrno(bystander)).toBe(0);
      const later = await connect();
      try {
        expect(await flushErrno(later), 'a connection opened after the loss was found').toBe(0);
        // A write after the cut is covered afresh, and survives.
        await later.write(page * pageBytes + blockBytes, Buffer.alloc(blockBytes, 0x33), false, 5_000);
        expect(await flushErrno(later)).toBe(0);
        expect((await later.read(page * pageBytes + blockBytes, blockBytes, 5_000)).equals(Buffer.alloc(blockBytes, 0x33))).toBe(true);
      } finally {
        later.close();
      }
    } finally {
      writer.close();
      bystander.close();
    }
  }, 120_000);
});
