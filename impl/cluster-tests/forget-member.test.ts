import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forgetServer } from '../cli/membership-admin.js';
import type { AdminCall } from '../cli/membership-admin.js';
import type { ClusterFixture } from './cluster-fixture.js';
import { connectNbd, eventually, flushErrno, ownerOf, startCluster } from './cluster-fixture.js';

/**
 * A member that is down for good and holds nothing is forgotten by another
 * (machines/node/member-forget.ts; `blockshift server forget`). Before, it
 * stayed a member for ever: a server that crashed and restarted while it was
 * down excuses no one from a FLUSH until a barrier over every member has
 * completed, so every FLUSH through that server failed with EIO until the
 * dead member came back, which it never would. A member that still owns a
 * page cannot be forgotten: the refusal names its pages, unless the
 * administrator has them declared lost (`--declare-lost`), which s1 then
 * serves empty.
 *
 * Volume alpha's three pages start on s1, s2 and s3; the client talks to s1.
 */
const blockBytes = 4096;
const pageBytes = 4 * 1024 * 1024;

describe('forgetting a member that is down for good', () => {
  let cluster: ClusterFixture;
  beforeAll(async () => {
    // Base port 22309: peers 23309-23311, admin 24309-24311, balance 24409-24411.
    cluster = await startCluster(22_309);
  }, 60_000);
  afterAll(async () => cluster?.close());

  it('forgets a dead member whose page moved away, after which FLUSH works after a crash of the client\'s server; is refused for one that owns pages', async () => {
    const group = cluster.group;
    const admin: AdminCall = (server, path, body) => group.admin(server.id, path, body);
    const lines: string[] = [];
    const report = (line: string) => { lines.push(line); };
    expect(await ownerOf(group, 'alpha/2')).toBe('s3');

    // s3's page moves away; then s3 dies for good.
    await group.admin('s3', '/moves', { volume: 'alpha', page: 2, to: 's1', kind: 'piecewise' });
    await group.admin('s3', '/moves/wait', { volume: 'alpha', page: 2, waitMs: 20_000 });
    // Killed only once s1 has learnt the flip: killed between its copy's commit and the flip's push, s3 would strand
    // the page at s1 (a valid copy awaiting a flip only s3 can make; the forget is then refused, saying so).
    await eventually(async () => (await group.status('s1')).routes['alpha/2']?.owner === 's1', 10_000);
    await group.kill('s3');

    await forgetServer([group.server('s3')], group.server('s1'), [group.server('s2')], admin, report, 20_000);
    expect(lines.at(-1)).toMatch(/s1: s3 forgotten: membership epoch \d+: s1 \(weight 1\), s2 \(weight 1\)/);
    for (const id of ['s1', 's2']) {
      await eventually(async () => !(await group.status(id)).membership.members.some((member) => member.id === 's3'), 5_000);
    }

    // s1 crashes and restarts: its first barrier needs every member, which no longer includes s3.
    const connect = () => connectNbd(group, 's1', 'alpha');
    const before = await connect();
    try {
      await before.write(2 * pageBytes, Buffer.alloc(blockBytes, 0x71), false, 5_000);
      await before.write(1 * pageBytes, Buffer.alloc(blockBytes, 0x72), false, 5_000);
    } finally {
      before.close();
    }
    await group.kill('s1');
    await group.start('s1');
    const after = await connect();
    try {
      const startedMs = performance.now();
      expect(await flushErrno(after, 15_000), 'the first FLUSH after s1 restarted from a crash').toBe(0);
      const flushMs = performance.now() - startedMs;
      console.log(`FLUSH after a crash of s1, s3 forgotten: ${flushMs.toFixed(1)} ms`);
      expect(flushMs).toBeLessThan(2_000);
      expect((await after.read(2 * pageBytes, blockBytes, 5_000)).equals(Buffer.alloc(blockBytes, 0x71))).toBe(true);
      expect((await after.read(1 * pageBytes, blockBytes, 5_000)).equals(Buffer.alloc(blockBytes, 0x72))).toBe(true);
    } finally {
      after.close();
    }

    // s2 dies owning pages (one written through s1 just before): it cannot be forgotten, and the refusal says why.
    const lastWrite = await connect();
    try {
      await lastWrite.write(1 * pageBytes + blockBytes, Buffer.alloc(blockBytes, 0x73), true, 5_000);
    } finally {
      lastWrite.close();
    }
    await group.kill('s2');
    await expect(forgetServer([group.server('s2')], group.server('s1'), [], admin, report, 5_000)).rejects.toThrow(/cannot forget s2: s1's routes name s2 owner of 2 pages \(alpha\/1, beta\/1\)/);
    // Refused before anything changed: s2 was not marked draining (a drain cannot be taken back).
    expect((await group.status('s1')).membership.members.find((entry) => entry.id === 's2')?.draining).toBe(false);

    // With the administrator's leave (server forget --declare-lost), its pages are declared lost and s1 serves them
    // empty (machines/node/lost-pages.ts): drained, claimed, declared, then forgotten.
    const declaredLines: string[] = [];
    await forgetServer([group.server('s2')], group.server('s1'), [], admin, (line) => { declaredLines.push(line); }, 60_000, true);
    console.log(declaredLines.join('\n'));
    expect(declaredLines.some((line) => /declaring 2 pages lost \(alpha\/1, beta\/1\): s1 serves them empty/.test(line))).toBe(true);
    expect(declaredLines.at(-1)).toMatch(/s1: s2 forgotten: membership epoch \d+: s1 \(weight 1\)$/);
    const status = await group.status('s1');
    expect(status.membership.members.map((entry) => entry.id)).toEqual(['s1']);
    expect(status.routes['alpha/1']?.owner).toBe('s1');
    expect(status.routes['beta/1']?.owner).toBe('s1');
    const lost = await connect();
    try {
      // What s2 held is gone (even the FUA write): the page reads as zeros, takes writes, and reads them back.
      expect((await lost.read(1 * pageBytes + blockBytes, blockBytes, 5_000)).equals(Buffer.alloc(blockBytes))).toBe(true);
      await lost.write(1 * pageBytes, Buffer.alloc(blockBytes, 0x74), false, 5_000);
      expect(await flushErrno(lost, 15_000)).toBe(0);
      expect((await lost.read(1 * pageBytes, blockBytes, 5_000)).equals(Buffer.alloc(blockBytes, 0x74))).toBe(true);
      // s1's own pages are as they were.
      expect((await lost.read(2 * pageBytes, blockBytes, 5_000)).equals(Buffer.alloc(blockBytes, 0x71))).toBe(true);
    } finally {
      lost.close();
    }
    // A restart of s1 keeps the declared pages (their record and route were durable before they were served).
    await group.kill('s1');
    await group.start('s1');
    const restarted = await connect();
    try {
      expect((await restarted.read(1 * pageBytes, blockBytes, 5_000)).equals(Buffer.alloc(blockBytes, 0x74))).toBe(true);
    } finally {
      restarted.close();
    }
  }, 180_000);
});
