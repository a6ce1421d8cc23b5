import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterFixture } from './cluster-fixture.js';
import { eventually, ownerOf, runTool, startCluster } from './cluster-fixture.js';

/**
 * A move whose destination is killed and not brought back (machines/migration/move-setup.ts, "Abandoning"). Without
 * the abandon the source restarts the move toward the dead server for ever and writes to the piece in transit fail.
 * Abandoned at the source, the page is served by the source alone at once: a client writes and reads it through
 * another server. When the destination does come back it lets go of its partial copy, and the page can move again.
 */
describe('abandoning a move toward a server that died', () => {
  let cluster: ClusterFixture;
  beforeAll(async () => {
    cluster = await startCluster(24_909, { moveThrottleMBps: 2, moveProgressTimeoutMs: 1_500 });
    // 8 MiB pages of two pieces: at 2 MB/s a piece's four 1 MiB chunks take two seconds to copy.
    await cluster.group.admin('s1', '/volumes', { name: 'gone', pageCount: 3, servers: ['s1', 's2', 's3'], pageSizeBlocks: 16_384, piecesPerPage: 2 });
    await eventually(async () => (await cluster.group.status('s3')).volumes.some((volume) => volume.name === 'gone'), 5_000);
  }, 60_000);
  afterAll(async () => cluster?.close());

  const qemuIo = (command: string, server: string) => runTool('qemu-io', ['-f', 'raw', '-c', command, cluster.group.nbdUri(server, 'gone')], 30_000);

  it('serves the page from the source alone, and the returning destination lets go of its copy', async () => {
    expect(await ownerOf(cluster.group, 'gone/0')).toBe('s1');
    const before = await qemuIo('write -P 0x51 0 1M', 's3');
    expect(before.exitCode, before.stdout + before.stderr).toBe(0);

    // The first piece is in transit (throttled copy) when the destination dies, holding its first chunk: its receiving
    // record is durable a few milliseconds after it shows, and the next chunk comes half a second later.
    const inTransit = cluster.waitForLine(/\[s1\] checkpoint gone\/0 stage 2 attempt 1 durable/, 30_000);
    await cluster.group.admin('s1', '/moves', { volume: 'gone', page: 0, to: 's2', kind: 'piecewise' });
    await inTransit;
    await eventually(async () => (await cluster.group.status('s2')).copies['gone/0']?.startsWith('receiving') === true, 10_000, 10);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await cluster.group.kill('s2');

    const abandonLogged = cluster.waitForLine(/\[s1\] checkpoint gone\/0 move abandoned \(piecewise move s1→s2/, 30_000);
    const abandoned = await cluster.group.admin<{ ok: boolean; message: string }>('s1', '/moves/abandon', { volume: 'gone', page: 0 });
    await abandonLogged;
    expect(abandoned.ok, abandoned.message).toBe(true);
    expect(abandoned.message).toContain('serves it alone at epoch 3');
    await expect(cluster.group.admin('s1', '/moves/abandon', { volume: 'gone', page: 0 })).rejects.toThrow(/already abandoned/);
    const waiting = (await cluster.group.status('s1')).moves.find((move) => move.page === 'gone/0');
    expect(waiting?.abandoned).toBe(true);

    // With s2 still down, writes to the page (the piece that was in transit included) and reads succeed through s3.
    const write = await qemuIo('write -P 0x52 0 1M', 's3');
    expect(write.exitCode, write.stdout + write.stderr).toBe(0);
    for (const server of ['s1', 's3']) {
      const read = await qemuIo('read -P 0x52 0 1M', server);
      expect(read.exitCode, read.stdout + read.stderr).toBe(0);
      expect(read.stdout).not.toContain('Pattern verification failed');
    }

    const recordRemoved = cluster.waitForLine(/\[s1\] checkpoint gone\/0 abandoned move record removed/, 30_000);
    await cluster.group.start('s2');
    await recordRemoved;
    await eventually(async () => (await cluster.group.status('s1')).moves.every((move) => move.page !== 'gone/0'), 30_000, 50);
    expect((await cluster.group.status('s2')).copies['gone/0']).toBe('invalid (epoch 3)');
    expect((await cluster.group.status('s1')).copies['gone/0']).toBe('valid (epoch 3)');
    const through = await qemuIo('read -P 0x52 0 1M', 's2');
    expect(through.exitCode, through.stdout + through.stderr).toBe(0);
    expect(through.stdout).not.toContain('Pattern verification failed');

    // The page moves to s2 again, from its new epoch.
    await cluster.group.admin('s1', '/moves', { volume: 'gone', page: 0, to: 's2', kind: 'unit' });
    await eventually(async () => (await ownerOf(cluster.group, 'gone/0')) === 's2' && (await cluster.group.status('s1')).moves.length === 0, 60_000, 50);
    const moved = await qemuIo('read -P 0x52 0 1M', 's3');
    expect(moved.exitCode, moved.stdout + moved.stderr).toBe(0);
    expect(moved.stdout).not.toContain('Pattern verification failed');
  }, 180_000);

  it('is refused once a piece is served by the destination alone', async () => {
    expect(await ownerOf(cluster.group, 'gone/1')).toBe('s2');
    const secondPieceStarted = cluster.waitForLine(/\[s2\] checkpoint gone\/1 stage 4 attempt 1 durable/, 60_000);
    await cluster.group.admin('s2', '/moves', { volume: 'gone', page: 1, to: 's3', kind: 'piecewise' });
    await secondPieceStarted;
    await expect(cluster.group.admin('s2', '/moves/abandon', { volume: 'gone', page: 1 })).rejects.toThrow(/served by s3 alone/);
    await eventually(async () => (await ownerOf(cluster.group, 'gone/1')) === 's3' && (await cluster.group.status('s2')).moves.length === 0, 60_000, 50);
  }, 120_000);
});
