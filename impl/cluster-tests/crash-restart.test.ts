import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterFixture } from './cluster-fixture.js';
import { eventually, ownerOf, runTool, startCluster } from './cluster-fixture.js';

/**
 * kill -9 during a move, at each stage, of the source, of the destination and
 * of both. Each case moves its own page of the `crash` volume (1 MiB pages of
 * 4 pieces, copies throttled so every stage lasts long enough to be hit): it
 * writes a pattern, starts the move, waits until the source logs that stage
 * durable, kills, restarts, and then the data must verify through every
 * server, the move must complete, and exactly one valid copy must remain.
 */
const servers = ['s1', 's2', 's3'] as const;
type Victim = 'source' | 'destination' | 'both';
const cases: Array<[Victim, 'piecewise' | 'unit', number]> = [];
for (const victim of ['source', 'destination', 'both'] as const) {
  for (let stage = 2; stage <= 9; stage += 1) cases.push([victim, 'piecewise', stage]);
  for (const stage of [2, 3]) cases.push([victim, 'unit', stage]);
}

describe('kill -9 at each stage of a move', () => {
  let cluster: ClusterFixture;
  beforeAll(async () => {
    cluster = await startCluster(24_809, { moveThrottleMBps: 2, moveProgressTimeoutMs: 1_500 });
    await cluster.group.admin('s1', '/volumes', { name: 'crash', pageCount: cases.length, servers: [...servers], pageSizeBlocks: 2048, piecesPerPage: 4 });
    await eventually(async () => (await cluster.group.status('s3')).volumes.some((volume) => volume.name === 'crash'), 5_000);
  }, 60_000);
  afterAll(async () => cluster?.close());

  it.each(cases.map((entry, page) => [...entry, page] as const))('%s killed during a %s move once stage %i is durable (page %i)', async (victim, kind, stage, page) => {
    const pageText = `crash/${page}`;
    const source = servers[page % 3]!;
    const destination = servers[(page + 1) % 3]!;
    const bystander = servers[(page + 2) % 3]!;
    expect(await ownerOf(cluster.group, pageText)).toBe(source);
    const pattern = 0x41 + (page % 60);
    const offsetBytes = page * 1024 * 1024;
    const write = await runTool('qemu-io', ['-f', 'raw', '-c', `write -P ${pattern} ${offsetBytes} 1M`, '-c', 'flush', cluster.group.nbdUri(bystander, 'crash')], 30_000);
    expect(write.exitCode, write.stdout + write.stderr).toBe(0);

    const stageDurable = cluster.waitForLine(new RegExp(`\\[${source}\\] checkpoint ${pageText} stage ${stage} attempt 1 durable`), 30_000);
    await cluster.group.admin(source, '/moves', { volume: 'crash', page, to: destination, kind });
    await stageDurable;
    const victims = victim === 'source' ? [source] : victim === 'destination' ? [destination] : [source, destination];
    await Promise.all(victims.map((id) => cluster.group.kill(id)));
    await Promise.all(victims.map((id) => cluster.group.start(id)));

    await eventually(async () => (await ownerOf(cluster.group, pageText)) === destination &&
      (await cluster.group.status(source)).moves.every((move) => move.page !== pageText), 60_000, 50);
    for (const id of servers) {
      const read = await runTool('qemu-io', ['-f', 'raw', '-c', `read -P ${pattern} ${offsetBytes} 1M`, cluster.group.nbdUri(id, 'crash')], 30_000);
      expect(read.exitCode, read.stdout + read.stderr).toBe(0);
      expect(read.stdout).not.toContain('Pattern verification failed');
    }
    const copies = await Promise.all(servers.map(async (id) => (await cluster.group.status(id)).copies[pageText] ?? 'none'));
    expect(copies.filter((copy) => copy.startsWith('valid'))).toHaveLength(1);
  }, 120_000);
});

/**
 * A server that was down when a volume was created learns it when it comes
 * back, even once the definition queued for it is gone (its creator crashed
 * meanwhile): its announcement names the volumes it knows, and the members
 * that know more send the definitions (`volumes.known`). Its NBD export list then
 * has the volume, and a client reads through it what another server wrote.
 */
describe('a volume created while a member is down', () => {
  let cluster: ClusterFixture;
  beforeAll(async () => {
    cluster = await startCluster(24_859);
  }, 60_000);
  afterAll(async () => cluster?.close());

  it('is known to that member after its restart', async () => {
    await cluster.group.kill('s3');
    const created = await cluster.group.admin<{ ok: boolean; message: string }>('s1', '/volumes', { name: 'late', pageCount: 3, servers: ['s1', 's2', 's3'], piecesPerPage: 4 });
    expect(created.ok, created.message).toBe(true);
    // The definition s1 queued for s3 dies with s1: from now on s3 can only learn the volume by asking.
    await cluster.group.kill('s1');
    await cluster.group.start('s1');
    await cluster.group.start('s3');
    await eventually(async () => (await cluster.group.status('s3')).volumes.some((volume) => volume.name === 'late'), 10_000, 100);
    const list = await runTool('nbdinfo', ['--list', cluster.group.nbdUri('s3', 'late')], 30_000);
    expect(list.exitCode, list.stderr).toBe(0);
    expect(list.stdout).toContain('export="late"');
    // Page 2's first owner is s3, which learnt it with the definition: a write through s1 lands there and reads back through s3.
    const write = await runTool('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 8M 64k', '-c', 'flush', cluster.group.nbdUri('s1', 'late')], 30_000);
    expect(write.exitCode, write.stdout + write.stderr).toBe(0);
    const read = await runTool('qemu-io', ['-f', 'raw', '-c', 'read -P 0x5a 8M 64k', cluster.group.nbdUri('s3', 'late')], 30_000);
    expect(read.exitCode, read.stdout + read.stderr).toBe(0);
    expect(read.stdout).not.toContain('Pattern verification failed');
  }, 90_000);
});
