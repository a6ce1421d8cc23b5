import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterFixture } from './cluster-fixture.js';
import { eventually, moveOf, ownerOf, runTool, startCluster } from './cluster-fixture.js';

/**
 * The group against real NBD clients from Debian: every server presents every
 * volume, data written through one server reads back through the others, and
 * a page keeps serving while it moves.
 */
/** The group's per-address bound on NBD connections in this file (the default is 64). */
const perAddressMax = 6;

/** Opens a TCP connection to an NBD port and says whether the server greeted it (NBDMAGIC) or closed it first. */
function greetingOf(host: string, port: number): Promise<{ socket: Socket; greeted: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let received = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 8) resolve({ socket, greeted: received.subarray(0, 8).toString('latin1') === 'NBDMAGIC' });
    });
    socket.on('close', () => resolve({ socket, greeted: false }));
    socket.on('error', reject);
  });
}

describe('a local group of three servers with real NBD clients', () => {
  let cluster: ClusterFixture;
  beforeAll(async () => {
    // A per-address bound below the default, to check that a server takes it from the group config.
    cluster = await startCluster(21_809, { moveThrottleMBps: 4, nbdConnectionsPerAddressMax: perAddressMax });
  }, 60_000);
  afterAll(async () => cluster?.close());

  it('nbdinfo --list on every server shows both volumes and their sizes (FIG. 9)', async () => {
    for (const id of ['s1', 's2', 's3']) {
      const { nbd } = cluster.group.server(id);
      const result = await runTool('nbdinfo', ['--list', `nbd://${nbd.host}:${nbd.port}`]);
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.stdout).toContain('export="alpha"');
      expect(result.stdout).toContain('export-size: 12582912');
      expect(result.stdout).toContain('export="beta"');
      expect(result.stdout).toContain('export-size: 8388608');
    }
    const unknown = await runTool('nbdinfo', [cluster.group.nbdUri('s1', 'gamma')]);
    expect(unknown.exitCode).not.toBe(0);
  });

  it('qemu-img convert through one server, qemu-img compare through each of the others', async () => {
    const image = join(cluster.directory, 'random.raw');
    writeFileSync(image, randomBytes(12 * 1024 * 1024));
    const convert = await runTool('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', image, cluster.group.nbdUri('s2', 'alpha')], 60_000);
    expect(convert.exitCode, convert.stderr).toBe(0);
    for (const id of ['s1', 's3']) {
      const compare = await runTool('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', image, cluster.group.nbdUri(id, 'alpha')], 60_000);
      expect(compare.stdout + compare.stderr).toContain('Images are identical');
      expect(compare.exitCode).toBe(0);
    }
  }, 120_000);

  it('qemu-io writes and verifies patterns on a page while a piecewise move of that page runs, with zero errors', async () => {
    const pageText = 'alpha/0';
    const source = await ownerOf(cluster.group, pageText);
    expect(source).toBe('s1');
    await cluster.group.admin('s1', '/moves', { volume: 'alpha', page: 0, to: 's3', kind: 'piecewise' });
    const patterns: string[] = [];
    let rounds = 0;
    // Through the server that neither owns nor receives the page, so every request is forwarded.
    const uri = cluster.group.nbdUri('s2', 'alpha');
    while ((await moveOf(cluster.group, 's1', pageText)) !== null && rounds < 200) {
      const pattern = 0x10 + (rounds % 200);
      const offset = (rounds % 16) * 256 * 1024;
      const result = await runTool('qemu-io', ['-f', 'raw', '-c', `write -P ${pattern} ${offset} 256k`, '-c', `read -P ${pattern} ${offset} 256k`, uri], 30_000);
      expect(result.exitCode, result.stdout + result.stderr).toBe(0);
      expect(result.stdout).not.toContain('Pattern verification failed');
      patterns[rounds % 16] = `${pattern}@${offset}`;
      rounds += 1;
    }
    console.log(`${rounds} qemu-io write+verify rounds ran while alpha/0 moved from s1 to s3`);
    expect(rounds, 'writes landed while the move ran').toBeGreaterThan(1);
    await eventually(async () => (await ownerOf(cluster.group, pageText)) === 's3', 20_000);
    // After the move, every block holds its last pattern, read through each server.
    for (const id of ['s1', 's2', 's3']) {
      const reads = patterns.flatMap((entry) => {
        const [pattern, offset] = entry.split('@');
        return ['-c', `read -P ${pattern} ${offset} 256k`];
      });
      const result = await runTool('qemu-io', ['-f', 'raw', ...reads, cluster.group.nbdUri(id, 'alpha')], 30_000);
      expect(result.exitCode, result.stdout + result.stderr).toBe(0);
      expect(result.stdout).not.toContain('Pattern verification failed');
    }
    const statuses = await Promise.all(['s1', 's2', 's3'].map((id) => cluster.group.status(id)));
    // Exactly one valid copy remains, and the pushed routing tables agree on it.
    expect(statuses.filter((status) => status.copies[pageText]?.startsWith('valid')).map((status) => status.server)).toEqual(['s3']);
    await eventually(async () => (await Promise.all(['s1', 's2', 's3'].map((id) => cluster.group.status(id)))).every((status) => status.routes[pageText]?.owner === 's3'), 5_000);
  }, 180_000);

  it('takes its per-address bound on NBD connections from the group config: the one past it is closed before the greeting', async () => {
    const { nbd } = cluster.group.server('s1');
    const opened: Socket[] = [];
    try {
      for (let index = 0; index < perAddressMax; index += 1) {
        const { socket, greeted } = await greetingOf(nbd.host, nbd.port);
        opened.push(socket);
        expect(greeted, `connection ${index + 1} of ${perAddressMax}`).toBe(true);
      }
      const past = await greetingOf(nbd.host, nbd.port);
      opened.push(past.socket);
      expect(past.greeted).toBe(false);
    } finally {
      for (const socket of opened) socket.destroy();
    }
    // Their slots are given back: a real client connects again.
    await eventually(async () => (await runTool('nbdinfo', [cluster.group.nbdUri('s1', 'alpha')])).exitCode === 0, 5_000);
  });

  it('fio with the nbd engine and crc32c verification across a move', async () => {
    const engine = await runTool('fio', ['--enghelp=nbd']);
    expect(engine.exitCode, 'fio has the nbd engine').toBe(0);
    await cluster.group.admin('s2', '/moves', { volume: 'alpha', page: 1, to: 's1', kind: 'unit' });
    const result = await runTool('fio', [
      '--name=across-move', '--ioengine=nbd', `--uri=${cluster.group.nbdUri('s3', 'alpha')}`, '--rw=randwrite', '--bs=4k',
      `--offset=${4 * 1024 * 1024}`, '--size=4M', '--iodepth=8', '--verify=crc32c', '--do_verify=1', '--verify_fatal=1', '--output-format=json',
    ], 120_000, cluster.directory);
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    const report = JSON.parse(result.stdout.slice(result.stdout.indexOf('{'))) as { jobs: Array<{ error: number }> };
    expect(report.jobs[0]?.error).toBe(0);
    await eventually(async () => (await ownerOf(cluster.group, 'alpha/1')) === 's1', 20_000);
  }, 180_000);
});
