import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerConfig } from '../cli/group-config.js';
import { drainServer, joinServer, nextServerConfig } from '../cli/membership-admin.js';
import { adminRequest } from '../cli/admin-client.js';
import type { ServerStatus } from '../runtime/status-report.js';
import type { ClusterFixture } from './cluster-fixture.js';
import { eventually, ownerOf, runTool, startCluster } from './cluster-fixture.js';

/**
 * Issue 5 against real clients: a fourth server joins the running group and
 * receives a page; then s2 is drained while qemu-io and fio write and verify
 * through other servers; s2 ends up owning nothing, leaves the membership and
 * stops, and every byte verifies through s1, s3 and s4.
 */
const admin = <T>(server: ServerConfig, path: string, body?: unknown) => adminRequest<T>(server.id, server.admin, path, body);
const mib = 1024 * 1024;

describe('adding a server online and draining one', () => {
  let cluster: ClusterFixture;
  beforeAll(async () => {
    cluster = await startCluster(13_809, { moveThrottleMBps: 4 });
  }, 60_000);
  afterAll(async () => cluster?.close());

  const qemuIo = async (server: string, volume: string, commands: string[]) => {
    const result = await runTool('qemu-io', ['-f', 'raw', ...commands.flatMap((command) => ['-c', command]), cluster.group.nbdUri(server, volume)], 60_000);
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).not.toContain('Pattern verification failed');
    return result;
  };
  const fioJob = (server: string, verifyOnly: boolean) => runTool('fio', [
    '--name=drain', '--ioengine=nbd', `--uri=${cluster.group.nbdUri(server, 'alpha')}`, '--rw=randwrite', '--bs=4k', `--offset=${4 * mib}`, '--size=4M',
    '--iodepth=4', '--verify=crc32c', '--do_verify=1', '--verify_fatal=1', ...(verifyOnly ? ['--verify_only=1'] : []), '--output-format=json',
  ], 180_000, cluster.directory);
  /** The last pattern qemu-io wrote at each offset of beta during the drain of s2, to read back later. */
  const patterns: string[] = [];
  const members = (status: ServerStatus) => status.membership.members.map((member) => `${member.id}${member.draining ? '*' : ''}`);

  it('s4 joins, learns the volumes and routes, and a page moves to it although its volume was created over s1-s3', async () => {
    // A pattern over all of alpha (12 MiB) and beta (8 MiB), written through s1.
    await qemuIo('s1', 'alpha', ['write -P 0x5a 0 12M']);
    await qemuIo('s1', 'beta', ['write -P 0x6b 0 8M']);
    const s4 = nextServerConfig(cluster.group.config, 's4', 2);
    cluster.group.reconfigure({ ...cluster.group.config, servers: [...cluster.group.config.servers, s4] });
    await cluster.group.start('s4');
    const lines: string[] = [];
    await joinServer(cluster.group.config, s4, admin, (line) => lines.push(line));
    console.log(lines.join('\n'));
    await eventually(async () => (await Promise.all(['s1', 's2', 's3', 's4'].map((id) => cluster.group.status(id)))).every((status) => members(status).join() === 's1,s2,s3,s4'), 10_000);
    // s4 presents both volumes and forwards to their owners.
    await qemuIo('s4', 'alpha', ['read -P 0x5a 0 12M']);
    await qemuIo('s4', 'beta', ['read -P 0x6b 0 8M']);
    await cluster.group.admin('s1', '/moves', { volume: 'alpha', page: 0, to: 's4', kind: 'piecewise' });
    await eventually(async () => (await ownerOf(cluster.group, 'alpha/0')) === 's4', 30_000);
    for (const id of ['s1', 's2', 's3', 's4']) await qemuIo(id, 'alpha', ['read -P 0x5a 0 4M']);
    // Moves to a server outside the group are refused.
    await expect(cluster.group.admin('s3', '/moves', { volume: 'alpha', page: 2, to: 's9', kind: 'unit' })).rejects.toThrow('unknown server s9');
  }, 180_000);

  it('s2 drains while qemu-io and fio write and verify through s1 and s3; it ends owning nothing, leaves and stops, and the data verifies through s1, s3 and s4', async () => {
    const before = await cluster.group.status('s2');
    const ownedBefore = Object.entries(before.copies).filter(([, copy]) => copy.startsWith('valid')).map(([page]) => page);
    expect(ownedBefore.sort()).toEqual(['alpha/1', 'beta/1']);
    let drained = false;
    const progress: string[] = [];
    const drain = drainServer(cluster.group.server('s2'), admin, (line) => progress.push(line), 120_000).then(() => { drained = true; });
    // qemu-io through s1 on beta/1 (s2's page) until the drain is over: every round writes a pattern and reads it back.
    const qemuLoop = (async () => {
      let rounds = 0;
      while ((!drained || rounds < 2) && rounds < 400) {
        const pattern = 0x10 + (rounds % 200);
        const offset = 4 * mib + (rounds % 16) * 256 * 1024;
        await qemuIo('s1', 'beta', [`write -P ${pattern} ${offset} 256k`, `read -P ${pattern} ${offset} 256k`]);
        patterns[rounds % 16] = `${pattern}@${offset}`;
        rounds += 1;
      }
      return rounds;
    })();
    // fio with crc32c verification through s3 on alpha/1 (s2's page) at the same time.
    const fioStartedDuringDrain = !drained;
    const fio = await fioJob('s3', false);
    expect(fio.exitCode, fio.stdout + fio.stderr).toBe(0);
    const fioFinishedDuringDrain = !drained;
    await drain;
    const rounds = await qemuLoop;
    console.log(`${progress.join('\n')}\n${rounds} qemu-io write+verify rounds through s1; fio started ${fioStartedDuringDrain ? 'while the drain ran' : 'after the drain'} and finished ${fioFinishedDuringDrain ? 'before' : 'after'} it ended`);
    expect(fioStartedDuringDrain, 'fio ran during the drain').toBe(true);
    expect(rounds, 'qemu-io rounds ran during the drain').toBeGreaterThan(1);
    expect(progress.some((line) => /moves running/.test(line)), 'progress was reported').toBe(true);

    // s2 owns nothing, no move involves it, and every remaining member's record has dropped it.
    const s2 = await cluster.group.status('s2');
    expect(Object.values(s2.copies).filter((copy) => copy.startsWith('valid') || copy.startsWith('receiving'))).toEqual([]);
    expect(s2.moves).toEqual([]);
    await eventually(async () => (await Promise.all(['s1', 's3', 's4'].map((id) => cluster.group.status(id)))).every((status) => members(status).join() === 's1,s3,s4'), 10_000);
    await cluster.group.stop('s2');
    cluster.group.reconfigure({ ...cluster.group.config, servers: cluster.group.config.servers.filter((server) => server.id !== 's2') });
    const statuses = await Promise.all(['s1', 's3', 's4'].map((id) => cluster.group.status(id)));
    for (const page of ownedBefore) {
      const holders = statuses.filter((status) => status.copies[page]?.startsWith('valid')).map((status) => status.server);
      expect(holders, `${page} has exactly one valid copy`).toHaveLength(1);
    }
    console.log(`after the drain: ${ownedBefore.map((page) => `${page} on ${statuses.find((status) => status.copies[page]?.startsWith('valid'))?.server}`).join(', ')}`);
    await eventually(async () => (await Promise.all(['s1', 's3', 's4'].map((id) => cluster.group.status(id)))).every((status) => Object.values(status.routes).every((route) => route.owner !== 's2')), 10_000);

    // Every byte verifies through each remaining server: the untouched pattern, the last qemu-io patterns, and fio's blocks.
    const lastPatterns = patterns.flatMap((entry) => {
      const [pattern, offset] = entry.split('@');
      return [`read -P ${pattern} ${offset} 256k`];
    });
    for (const id of ['s1', 's3', 's4']) {
      await qemuIo(id, 'alpha', ['read -P 0x5a 0 4M', 'read -P 0x5a 8M 4M']);
      await qemuIo(id, 'beta', ['read -P 0x6b 0 4M', ...lastPatterns]);
      const verify = await fioJob(id, true);
      expect(verify.exitCode, `fio verify through ${id}: ${verify.stdout}${verify.stderr}`).toBe(0);
    }
  }, 300_000);

  it('a server that was down (kill -9) while s5 joined and received a page catches up when it restarts (the record sent to it lost): it adopts the newer record and reaches s5', async () => {
    await cluster.group.kill('s3');
    const s5 = nextServerConfig(cluster.group.config, 's5', 1);
    cluster.group.reconfigure({ ...cluster.group.config, servers: [...cluster.group.config.servers, s5] });
    await cluster.group.start('s5');
    await joinServer(cluster.group.config, s5, admin, () => undefined);
    const source = await ownerOf(cluster.group, 'alpha/1');
    expect(source).toBe('s4');
    await cluster.group.admin('s4', '/moves', { volume: 'alpha', page: 1, to: 's5', kind: 'unit' });
    await eventually(async () => (await ownerOf(cluster.group, 'alpha/1')) === 's5', 30_000);
    const epochBefore = (await cluster.group.status('s1')).membership.epoch;
    // s1's transport still queues the record it sent s3; a clean restart of s1 drops that queue, so s3 must catch up by itself.
    await cluster.group.stop('s1');
    await cluster.group.start('s1');
    await cluster.group.start('s3');
    await eventually(async () => {
      const status = await cluster.group.status('s3');
      return status.membership.epoch === epochBefore && members(status).join() === 's1,s3,s4,s5';
    }, 15_000);
    // Through s3: its stale route names s4, whose stale answer points at s5, which s3 only knows from the adopted record.
    await eventually(async () => (await fioJob('s3', true)).exitCode === 0, 30_000, 500);
    await qemuIo('s3', 'alpha', ['read -P 0x5a 0 4M', 'read -P 0x5a 8M 4M']);
  }, 180_000);

  it('a drain survives a kill -9 of the draining server mid-move: it restarts still marked draining, resumes its moves and leaves', async () => {
    const owned = Object.entries((await cluster.group.status('s4')).copies).filter(([, copy]) => copy.startsWith('valid')).map(([page]) => page);
    expect(owned.length).toBeGreaterThan(0);
    const checkpoint = cluster.waitForLine(/\[s4\] checkpoint \S+ stage [3-9]/, 30_000);
    await cluster.group.admin('s4', '/members/drain', { id: 's4' });
    console.log(`killing s4 at: ${await checkpoint}`);
    await cluster.group.kill('s4');
    await cluster.group.start('s4');
    const progress: string[] = [];
    await drainServer(cluster.group.server('s4'), admin, (line) => progress.push(line), 120_000);
    console.log(progress.join('\n'));
    expect(progress[0]).toBe('s4 is already draining; following it');
    const s4 = await cluster.group.status('s4');
    expect(Object.values(s4.copies).filter((copy) => copy.startsWith('valid') || copy.startsWith('receiving'))).toEqual([]);
    await cluster.group.stop('s4');
    const remaining = ['s1', 's3', 's5'];
    await eventually(async () => (await Promise.all(remaining.map((id) => cluster.group.status(id)))).every((status) => members(status).join() === 's1,s3,s5'), 10_000);
    const statuses = await Promise.all(remaining.map((id) => cluster.group.status(id)));
    for (const page of owned) expect(statuses.filter((status) => status.copies[page]?.startsWith('valid')), `${page} has one valid copy`).toHaveLength(1);
    const lastPatterns = patterns.map((entry) => {
      const [pattern, offset] = entry.split('@');
      return `read -P ${pattern} ${offset} 256k`;
    });
    for (const id of remaining) {
      await eventually(async () => (await fioJob(id, true)).exitCode === 0, 30_000, 500);
      await qemuIo(id, 'alpha', ['read -P 0x5a 0 4M', 'read -P 0x5a 8M 4M']);
      await qemuIo(id, 'beta', ['read -P 0x6b 0 4M', ...lastPatterns]);
    }
  }, 240_000);
});
