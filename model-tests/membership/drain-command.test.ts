import { describe, expect, it } from 'vitest';
import { AdminRefusedError } from '../../impl/cli/admin-client.js';
import { drainServer } from '../../impl/cli/membership-admin.js';
import type { ServerConfig } from '../../impl/cli/group-config.js';
import type { Member } from '../../machines/membership/membership.js';

/**
 * The `server drain` command's wait (impl/cli/membership-admin.ts) against a
 * scripted admin API, no sockets: it returns only once the drained server's
 * record and every remaining member's record leave it out, and gives up with
 * a clear error (the server still running) when a member never catches up.
 */
const address = (port: number) => ({ host: '127.0.0.1', port });
const s2: ServerConfig = { id: 's2', nbd: address(1), peer: address(2), admin: address(3002), dataDirectory: '/tmp/s2', capacityWeight: 1 };
const member = (id: string, draining = false): Member => ({ id, peer: address(2), admin: address(3000 + Number(id.slice(1))), capacityWeight: 1, draining });
const left = { epoch: 3, members: [member('s1'), member('s3')] };
const stillListing = { epoch: 2, members: [member('s1'), member('s2', true), member('s3')] };

/** An admin API where s2 has already left, and s1 learns of it only after `s1PollsBehind` polls of its status. */
function scriptedAdmin(s1PollsBehind: number) {
  const calls: string[] = [];
  let s1Polls = 0;
  const admin = async <T>(server: ServerConfig, path: string): Promise<T> => {
    calls.push(`${server.id}${path}`);
    if (path === '/members/drain') throw new AdminRefusedError('s2: s2 is already draining', { reason: 'alreadyDraining', servers: ['s2'] });
    if (path === '/shutdown') throw new Error('the command must not stop the server');
    const port = server.admin.port;
    const membership = port === 3002 ? left : port === 3001 && (s1Polls += 1) <= s1PollsBehind ? stillListing : left;
    return { membership, drain: null, moves: [] } as T;
  };
  return { admin, calls };
}

describe('server drain waits for every remaining member', () => {
  it('does not return while a remaining member still lists the drained server', async () => {
    const { admin, calls } = scriptedAdmin(3);
    const lines: string[] = [];
    await drainServer(s2, admin, (line) => lines.push(line), 10_000, 5_000);
    expect(calls.filter((call) => call === 's1/status').length).toBe(4);
    expect(lines).toContainEqual(expect.stringContaining('waiting for s1 (epoch 2) to follow it'));
    expect(lines.at(-1)).toContain('every remaining member follows a record without it');
  });

  it('gives up with a clear error, without stopping the server, when a member never follows', async () => {
    const { admin, calls } = scriptedAdmin(Number.POSITIVE_INFINITY);
    await expect(drainServer(s2, admin, () => {}, 10_000, 500)).rejects.toThrow(/s2 left at membership epoch 3, but after 500 ms s1 \(epoch 2\) still list it; s2 is kept running/);
    expect(calls).not.toContain('s2/shutdown');
  });
});
