import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterFixture } from './cluster-fixture.js';
import { eventually, moveOf, ownerOf, runTool, startCluster } from './cluster-fixture.js';

/**
 * `blockshift move --pieces N` against a real group: the CLI refuses a piece
 * count that does not divide the volume's granularity, a `--pieces 8` move of
 * a page cut into 16 granules runs its 8 pieces (Table 2's final stage is
 * 2·8+2 = 18) while qemu-io writes and verifies patterns through a server
 * that forwards every request, with progress printed as it goes; and a move
 * whose source is killed -9 mid-move resumes with the piece count it was
 * started with, read back from its durable input.
 */
const gammaPiecesPerPage = 16;

function blockshift(args: string[]): Promise<{ status: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/blockshift.mjs', ...args], { timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ status: error ? (typeof error.code === 'number' ? error.code : -1) : 0, output: String(stdout) + String(stderr) });
    });
  });
}

describe('move --pieces N on a local group with real clients', () => {
  let cluster: ClusterFixture;
  beforeAll(async () => {
    cluster = await startCluster(16_809, { moveThrottleMBps: 4, moveProgressTimeoutMs: 3_000 });
    await cluster.group.admin('s1', '/volumes', { name: 'gamma', pageCount: 2, servers: ['s1', 's2'], piecesPerPage: gammaPiecesPerPage });
    await eventually(async () => (await cluster.group.status('s3')).volumes.some((volume) => volume.name === 'gamma'), 5_000);
  }, 60_000);
  afterAll(async () => cluster?.close());

  it('refuses a piece count that does not divide the volume granularity, naming the allowed ones, and starts nothing', async () => {
    const refused = await blockshift(['move', '--data', cluster.directory, '--volume', 'gamma', '--page', '0', '--to', 's3', '--pieces', '3']);
    expect(refused.status, refused.output).toBe(1);
    expect(refused.output).toContain('pieces 3 must divide volume gamma');
    expect(refused.output).toContain('1, 2, 4, 8, 16');
    expect(await moveOf(cluster.group, 's1', 'gamma/0')).toBeNull();
    const unit = await blockshift(['move', '--data', cluster.directory, '--volume', 'gamma', '--page', '0', '--to', 's3', '--kind', 'unit', '--pieces', '4']);
    expect(unit.status, unit.output).toBe(2);
  }, 60_000);

  it('a --pieces 8 move runs 8 pieces while qemu-io writes and verifies through a forwarding server, and prints its progress', async () => {
    const pageText = 'gamma/0';
    expect(await ownerOf(cluster.group, pageText)).toBe('s1');
    const finalStage = cluster.waitForLine(/\[s1\] checkpoint gamma\/0 stage 18 attempt 1 durable/, 60_000);
    const moving = blockshift(['move', '--data', cluster.directory, '--volume', 'gamma', '--page', '0', '--to', 's3', '--pieces', '8']);
    await eventually(async () => (await moveOf(cluster.group, 's1', pageText)) !== null, 10_000, 10);
    const uri = cluster.group.nbdUri('s2', 'gamma');
    const patterns = new Map<number, number>();
    let rounds = 0;
    while ((await moveOf(cluster.group, 's1', pageText)) !== null && rounds < 200) {
      const pattern = 0x20 + (rounds % 200);
      // 64 KiB writes at 192 KiB steps land in every piece of the move over the rounds.
      const offset = ((rounds * 3) % 64) * 64 * 1024;
      const result = await runTool('qemu-io', ['-f', 'raw', '-c', `write -P ${pattern} ${offset} 64k`, '-c', `read -P ${pattern} ${offset} 64k`, uri], 30_000);
      expect(result.exitCode, result.stdout + result.stderr).toBe(0);
      expect(result.stdout).not.toContain('Pattern verification failed');
      patterns.set(offset, pattern);
      rounds += 1;
    }
    const cli = await moving;
    console.log(`${rounds} qemu-io write+verify rounds during the 8-piece move; CLI said:\n${cli.output}`);
    expect(cli.status, cli.output).toBe(0);
    expect(cli.output).toContain('(piecewise, 8 pieces)');
    expect(cli.output).toMatch(/piece [1-8] of 8: \d+\.\d\d of 4\.00 MiB copied/);
    expect(cli.output).toMatch(/move of gamma\/0 to s3 complete in/);
    expect(rounds, 'writes landed while the move ran').toBeGreaterThan(1);
    await finalStage;
    // The move's own geometry, not the volume's 16 granules: no stage beyond 2·8+2 was ever checkpointed.
    expect(cluster.log.filter((line) => /checkpoint gamma\/0 stage (19|[2-9]\d|\d{3}) /.test(line))).toEqual([]);
    await eventually(async () => (await ownerOf(cluster.group, pageText)) === 's3', 20_000);
    for (const id of ['s1', 's2', 's3']) {
      const reads = [...patterns].flatMap(([offset, pattern]) => ['-c', `read -P ${pattern} ${offset} 64k`]);
      const result = await runTool('qemu-io', ['-f', 'raw', ...reads, cluster.group.nbdUri(id, 'gamma')], 30_000);
      expect(result.exitCode, result.stdout + result.stderr).toBe(0);
      expect(result.stdout).not.toContain('Pattern verification failed');
    }
  }, 180_000);

  it('kill -9 of the source mid-move: the restart resumes with the move\'s own 2 pieces, not the volume\'s 16', async () => {
    const pageText = 'gamma/1';
    expect(await ownerOf(cluster.group, pageText)).toBe('s2');
    const write = await runTool('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 4194304 4M', '-c', 'flush', cluster.group.nbdUri('s3', 'gamma')], 30_000);
    expect(write.exitCode, write.stdout + write.stderr).toBe(0);
    // Stage 3 = finish piece 0 of 2: the kill lands while piece 1 (stage 4) is being started or copied.
    const firstPieceDone = cluster.waitForLine(/\[s2\] checkpoint gamma\/1 stage 3 attempt 1 durable/, 30_000);
    await cluster.group.admin('s2', '/moves', { volume: 'gamma', page: 1, to: 's1', kind: 'piecewise', pieces: 2 });
    await firstPieceDone;
    await cluster.group.kill('s2');
    const resumed = cluster.waitForLine(/\[s2\] checkpoint gamma\/1 stage 6 attempt 2 durable/, 60_000);
    await cluster.group.start('s2');
    await resumed;
    await eventually(async () => (await ownerOf(cluster.group, pageText)) === 's1' && (await moveOf(cluster.group, 's2', pageText)) === null, 60_000, 50);
    expect(cluster.log.filter((line) => /checkpoint gamma\/1 stage ([7-9]|\d\d) /.test(line))).toEqual([]);
    for (const id of ['s1', 's2', 's3']) {
      const read = await runTool('qemu-io', ['-f', 'raw', '-c', 'read -P 0x5a 4194304 4M', cluster.group.nbdUri(id, 'gamma')], 30_000);
      expect(read.exitCode, read.stdout + read.stderr).toBe(0);
      expect(read.stdout).not.toContain('Pattern verification failed');
    }
  }, 180_000);

  it('/moves/wait answers once the source holds no move of the page: 408 while the (throttled) move runs, 400 on bad input', async () => {
    const pageText = 'gamma/0';
    const source = (await ownerOf(cluster.group, pageText))!;
    const destination = ['s1', 's2', 's3'].find((id) => id !== source)!;
    const wait = (body: unknown) => cluster.group.admin<{ message: string }>(source, '/moves/wait', body);
    // No move of the page: at once.
    await expect(wait({ volume: 'gamma', page: 0 })).resolves.toMatchObject({ ok: true });
    await expect(wait({ volume: 'gamma', page: '0' })).rejects.toThrow(/expected \{volume/);
    await expect(wait({ volume: 'gamma', page: 0, waitMs: -1 })).rejects.toThrow(/expected \{volume/);
    // The throttle (4 MB/s) makes this 4 MiB move last about a second.
    await cluster.group.admin(source, '/moves', { volume: 'gamma', page: 0, to: destination, kind: 'piecewise', pieces: 4 });
    await expect(wait({ volume: 'gamma', page: 0, waitMs: 50 })).rejects.toThrow(/still moves gamma\/0 after 50 ms/);
    await expect(wait({ volume: 'gamma', page: 0, waitMs: 4_000 })).resolves.toMatchObject({ ok: true });
    expect(await moveOf(cluster.group, source, pageText)).toBe(null);
    expect(await ownerOf(cluster.group, pageText)).toBe(destination);
  }, 60_000);
});
