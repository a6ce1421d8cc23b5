import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forgetServer } from '../cli/membership-admin.js';
import type { AdminCall } from '../cli/membership-admin.js';
import type { ClusterFixture } from './cluster-fixture.js';
import { eventually, runTool, startCluster } from './cluster-fixture.js';

/**
 * A source that dies for good between its destination's commit and its flip
 * (machines/node/dead-source-takeover.ts), on real processes. Before, the
 * destination served the page but could never move it on, and `server
 * forget` of the dead source was refused for good.
 *
 * The window, made certain with SIGSTOP: the source logs that its "finish
 * move" stage (Table 1 stage 3, which asks for the commit) is durable, and
 * sends the commit at the end of that turn. At the log line the destination
 * is stopped (its commit, a sync and a metadata commit, takes milliseconds;
 * this takes well under one), the source is given time to send, and is
 * stopped too; then the destination goes on, commits, and answers a source
 * that never reads the answer. The source is killed, and the administrator
 * forgets it through the third server with the CLI's own procedure: it sees
 * the copy committed at the destination, drains the source, and asks until
 * the destination has taken the page over and every member confirmed.
 */
const sendGraceMs = 100;
const windowAttemptsMax = 3;

describe('a source that dies for good between its destination\'s commit and its flip', () => {
  let cluster: ClusterFixture;
  beforeAll(async () => {
    // Base port 22509: peers 23509-23511, admin 24509-24511, balance 24609-24611, none of the other tests' ranges.
    cluster = await startCluster(22_509);
  }, 60_000);
  afterAll(async () => cluster?.close());

  it('is forgotten, and its destination takes the page over: the data reads back through every server, and the page moves on', async () => {
    const group = cluster.group;
    // s1 is to own only the page that moves: its pages of the fixture's volumes move to s2 first.
    for (const volume of ['alpha', 'beta']) {
      await group.admin('s1', '/moves', { volume, page: 0, to: 's2', kind: 'unit' });
      await eventually(async () => (await group.status('s1')).moves.length === 0 && (await group.status('s1')).routes[`${volume}/0`]?.owner === 's2', 30_000, 100);
    }
    // The window is hit unless the destination finished its commit before the test stopped it (it takes milliseconds,
    // the stop well under one); then s1 flips as usual, and the next attempt, on a new volume, tries again.
    let volume = '';
    for (let attempt = 0; attempt < windowAttemptsMax && volume === ''; attempt += 1) {
      const name = `solo${attempt}`;
      await group.admin('s1', '/volumes', { name, pageCount: 1, servers: ['s1'], piecesPerPage: 1 });
      await eventually(async () => (await Promise.all(['s2', 's3'].map((id) => group.status(id)))).every((status) => status.routes[`${name}/0`]?.owner === 's1'), 5_000);
      const write = await runTool('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 1M 1M', '-c', 'flush', group.nbdUri('s1', name)], 30_000);
      expect(write.exitCode, write.stdout + write.stderr).toBe(0);

      const commitAsked = cluster.waitForLine(new RegExp(`\\[s1\\] checkpoint ${name}/0 stage 3 attempt 1 durable`), 30_000);
      await group.admin('s1', '/moves', { volume: name, page: 0, to: 's2', kind: 'unit' });
      await commitAsked;
      process.kill(group.pid('s2')!, 'SIGSTOP');
      await new Promise((resolve) => setTimeout(resolve, sendGraceMs));
      process.kill(group.pid('s1')!, 'SIGSTOP');
      process.kill(group.pid('s2')!, 'SIGCONT');
      // s2 commits (a valid copy); if its table still names s1, the flip never came.
      await eventually(async () => (await group.status('s2')).copies[`${name}/0`]?.startsWith('valid') === true, 20_000);
      if ((await group.status('s2')).routes[`${name}/0`]?.owner === 's1') {
        volume = name;
      } else {
        console.log(`attempt ${attempt}: s2 answered before it was stopped, and s1 flipped; again on another volume`);
        process.kill(group.pid('s1')!, 'SIGCONT');
        await eventually(async () => (await group.status('s1')).moves.length === 0, 20_000, 50);
      }
    }
    expect(volume, `the window between commit and flip hit within ${windowAttemptsMax} attempts`).not.toBe('');
    const pageText = `${volume}/0`;
    await group.kill('s1');

    // Stuck as before: s2 refuses to move the page on while it waits for the flip.
    await expect(group.admin('s2', '/moves', { volume, page: 0, to: 's3', kind: 'unit' })).rejects.toThrow(/has not yet learnt that its last move's source flipped/);

    const lines: string[] = [];
    const admin: AdminCall = (server, path, body) => group.admin(server.id, path, body);
    // Through s3, whose table names s1 owner of the page: the command sees the copy committed at s2, drains s1, and
    // s2 takes the page over on the forget's check.
    await forgetServer([group.server('s1')], group.server('s3'), [group.server('s2')], admin, (line) => lines.push(line), 30_000);
    expect(lines.join('\n')).toContain(`${pageText} (committed at s2): copied by moves from s1 that never flipped; draining it`);
    expect(lines.join('\n')).toMatch(/s3: s1 forgotten: membership epoch \d+: s2 \(weight 1\), s3 \(weight 1\)/);

    for (const id of ['s2', 's3']) {
      await eventually(async () => (await group.status(id)).routes[pageText]?.owner === 's2', 5_000);
      const read = await runTool('qemu-io', ['-f', 'raw', '-c', 'read -P 0x5a 1M 1M', '-c', 'read -P 0 0 1M', group.nbdUri(id, volume)], 30_000);
      expect(read.exitCode, read.stdout + read.stderr).toBe(0);
      expect(read.stdout).not.toContain('Pattern verification failed');
    }
    // And the page moves on from its new owner.
    await group.admin('s2', '/moves', { volume, page: 0, to: 's3', kind: 'unit' });
    await eventually(async () => (await group.status('s2')).moves.length === 0 && (await group.status('s3')).routes[pageText]?.owner === 's3', 30_000, 100);
    const moved = await runTool('qemu-io', ['-f', 'raw', '-c', 'read -P 0x5a 1M 1M', group.nbdUri('s3', volume)], 30_000);
    expect(moved.stdout + moved.stderr).not.toContain('Pattern verification failed');
    expect(moved.exitCode).toBe(0);
  }, 120_000);
});
