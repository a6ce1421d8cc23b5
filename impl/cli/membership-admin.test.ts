import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServerConfig } from './group-config.js';
import { localGroupConfig, readGroupConfig } from './group-config.js';
import { AdminRefusedError } from './admin-client.js';
import type { AdminCall } from './membership-admin.js';
import { changeGroupConfig, drainServer, forgetServer, nextServerConfig, writeGroupConfig } from './membership-admin.js';

/**
 * The administrator's side of membership, against a real configuration file
 * and a stand-in admin API. Each case is one a review reproduced with real
 * servers: two commands at once lost one's change of the file; a drain whose
 * server had already left could never be finished.
 */
const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function configFile(): string {
  const directory = mkdtempSync(join(tmpdir(), 'blockshift-membership-admin-'));
  directories.push(directory);
  const path = join(directory, 'group.json');
  writeGroupConfig(path, localGroupConfig(directory, 3, 30800));
  return path;
}

describe('changes of the group configuration file', () => {
  it('made at once by two processes both land (each re-reads the file under its lock)', async () => {
    const path = configFile();
    // Each process takes 300 ms between reading the file and writing it back, as a command does while it waits on servers.
    const script = (id: string) => `import { changeGroupConfig, nextServerConfig } from ${JSON.stringify(join(process.cwd(), 'impl/cli/membership-admin.ts'))};
      await changeGroupConfig(${JSON.stringify(path)}, (group) => { const until = Date.now() + 300; while (Date.now() < until); return { ...group, servers: [...group.servers, nextServerConfig(group, '${id}', 1)] }; });`;
    const run = (id: string) => new Promise<number>((resolve) => spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script(id)], { stdio: 'inherit' }).once('exit', (code) => resolve(code ?? -1)));
    expect(await Promise.all([run('s4'), run('s5')])).toEqual([0, 0]);
    const servers = readGroupConfig(path).servers;
    expect(servers.map((server) => server.id).sort()).toEqual(['s1', 's2', 's3', 's4', 's5']);
    // Each new server got ports of its own.
    expect(new Set(servers.map((server) => server.admin.port)).size).toBe(servers.length);
  });

  it('take over a lock whose holder is gone, and wait for one whose holder lives', async () => {
    const path = configFile();
    writeFileSync(`${path}.lock`, '999999999\n');
    await changeGroupConfig(path, (group) => ({ ...group, moveThrottleMBps: 7 }));
    expect(readGroupConfig(path).moveThrottleMBps).toBe(7);
    writeFileSync(`${path}.lock`, `${process.pid}\n`);
    let done = false;
    const waiting = changeGroupConfig(path, (group) => ({ ...group, moveThrottleMBps: 9 })).then(() => { done = true; });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(done).toBe(false);
    rmSync(`${path}.lock`);
    await waiting;
    expect(readGroupConfig(path).moveThrottleMBps).toBe(9);
  });
});

describe('a drain asked again', () => {
  it('of a server that has already left is followed to its end instead of refused', async () => {
    const path = configFile();
    const group = readGroupConfig(path);
    const s2 = group.servers.find((server) => server.id === 's2')!;
    const without = { epoch: 3, members: group.servers.filter((server) => server.id !== 's2').map((server) => ({ id: server.id, peer: server.peer, admin: server.admin, capacityWeight: 1, draining: false })) };
    const admin: AdminCall = async <T>(server: ServerConfig, path: string) => {
      if (path === '/members/drain') throw new AdminRefusedError(`${server.id}: s2 is not a member`, { reason: 'notAMember', servers: ['s2'] });
      return { server: server.id, membership: without, drain: null } as unknown as T;
    };
    const lines: string[] = [];
    await drainServer(s2, admin, (line) => lines.push(line), 5_000, 1_000);
    expect(lines[0]).toBe('s2 has already left; confirming that every member follows');
    expect(lines.at(-1)).toMatch(/^s2 holds nothing and left the group \(membership epoch 3\)/);
  });
});

describe('a forget', () => {
  it('waits for a member of the record that the configuration does not name to follow, asking it at the admin address the record gives', async () => {
    const path = configFile();
    const group = readGroupConfig(path);
    const [s1, s2, s3] = group.servers as [ServerConfig, ServerConfig, ServerConfig];
    // s4 joined through another administrator's configuration file: only s1's record names it.
    const s4 = { id: 's4', peer: { host: '127.0.0.1', port: 39_904 }, admin: { host: '127.0.0.1', port: 39_905 }, capacityWeight: 1, draining: false };
    const record = (epoch: number, ids: string[]) => ({ epoch, members: [...group.servers.map((server) => ({ id: server.id, peer: server.peer, admin: server.admin, capacityWeight: 1, draining: server.id === 's3' })), s4].filter((member) => ids.includes(member.id)) });
    let forgotten = false;
    let s4Lags = 2;
    const calls: string[] = [];
    const admin: AdminCall = async <T>(server: ServerConfig, path: string) => {
      const at = server.admin.port === s4.admin.port ? 's4' : server.id;
      calls.push(`${at}${path}`);
      if (path === '/members/forget') {
        forgotten = true;
        return { ok: true, message: 'membership epoch 3: s1, s2, s4' } as T;
      }
      if (path !== '/status') throw new Error(`unexpected call ${path}`);
      const lists = !forgotten || (at === 's4' && s4Lags > 0);
      if (at === 's4' && forgotten && s4Lags > 0) s4Lags -= 1;
      return { server: at, membership: lists ? record(2, ['s1', 's2', 's3', 's4']) : record(3, ['s1', 's2', 's4']), drain: null } as unknown as T;
    };
    const lines: string[] = [];
    await forgetServer([s3], s1, [s2], admin, (line) => lines.push(line), 10_000);
    // s4 was asked, and the command returned only once s4 followed (it listed s3 at its first two answers).
    expect(calls.filter((call) => call === 's4/status').length).toBe(3);
    expect(s4Lags).toBe(0);
    expect(lines.at(-1)).toBe('s1: s3 forgotten: membership epoch 3: s1, s2, s4');
  });

  it('with declareLost, asks again while pages are declared lost, and follows a refusal naming another claimant to that member', async () => {
    const group = readGroupConfig(configFile());
    const [s1, s2, s3] = group.servers as [ServerConfig, ServerConfig, ServerConfig];
    const record = { epoch: 2, members: group.servers.map((server) => ({ id: server.id, peer: server.peer, admin: server.admin, capacityWeight: 1, draining: server.id === 's3' })) };
    const calls: string[] = [];
    let s1Asks = 0;
    const admin: AdminCall = async <T>(server: ServerConfig, path: string, body?: unknown) => {
      calls.push(`${server.id}${path}`);
      if (path === '/members/forget') {
        expect(body).toEqual({ ids: ['s3'], declareLost: true });
        // s2 holds a claim by s1, which it names; s1 then claims, declares, and forgets.
        if (server.id === 's2') throw new AdminRefusedError('s1 is declaring the pages of s3 lost; ask s1', { reason: 'declaringLost', servers: ['s1'] });
        s1Asks += 1;
        if (s1Asks === 1) throw new AdminRefusedError("s1 claims the declaring of s3's pages lost, and asks every member to accept; ask again", { reason: 'declaringLost', servers: ['s3'] });
        if (s1Asks === 2) throw new AdminRefusedError('declaring 2 pages lost (vol/1, vol/2): s1 serves them empty; ask again', { reason: 'declaringLost', servers: ['s3'] });
        return { ok: true, message: 'membership epoch 3: s1, s2' } as T;
      }
      const forgotten = s1Asks >= 3;
      return { server: server.id, routes: {}, copies: {}, membership: forgotten ? { epoch: 3, members: record.members.filter((member) => member.id !== 's3') } : record, drain: null } as unknown as T;
    };
    const lines: string[] = [];
    await forgetServer([s3], s2, [s1], admin, (line) => lines.push(line), 5_000, true);
    expect(lines).toContain('  s1 is declaring the pages of s3 lost; ask s1: asking s1');
    expect(lines).toContain('  declaring 2 pages lost (vol/1, vol/2): s1 serves them empty; ask again');
    expect(lines.at(-1)).toBe('s1: s3 forgotten: membership epoch 3: s1, s2');
    expect(calls.filter((call) => call === 's2/members/forget')).toHaveLength(1);
    // A claimant that does not answer is not asked: the administrator is told to drain or forget it too.
    const silent: AdminCall = async <T>(server: ServerConfig, path: string) => {
      if (server.id === 's1') throw new Error('connect ECONNREFUSED');
      if (path === '/members/forget') throw new AdminRefusedError('s1 is declaring the pages of s3 lost; ask s1', { reason: 'declaringLost', servers: ['s1'] });
      return { server: server.id, routes: {}, copies: {}, membership: record, drain: null } as unknown as T;
    };
    await expect(forgetServer([s3], s2, [s1], silent, () => undefined, 5_000, true)).rejects.toThrow(/s1 does not answer: if it is down for good, drain it .* or forget it with them \(--id s3,s1\)/);
  });

  it('drains dead servers whose named pages are all copies committed elsewhere before they flipped, and only then', async () => {
    const group = readGroupConfig(configFile());
    const [s1, s2, s3] = group.servers as [ServerConfig, ServerConfig, ServerConfig];
    const record = { epoch: 2, members: group.servers.map((server) => ({ id: server.id, peer: server.peer, admin: server.admin, capacityWeight: 1, draining: false })) };
    const run = async (s2Copy: string | null) => {
      const calls: string[] = [];
      let drained = false;
      let drains = 0;
      const admin: AdminCall = async <T>(server: ServerConfig, path: string, body?: unknown) => {
        calls.push(`${server.id}${path}`);
        if (path === '/members/drain') {
          expect(body).toEqual({ id: 's1' });
          drains += 1;
          drained = true;
          return { ok: true, message: 's1 draining' } as T;
        }
        if (path === '/members/forget') {
          if (!drained) throw new AdminRefusedError("cannot forget s1: s3's routes name s1 owner of 1 page (vol/0)", { reason: 'stillHolds', servers: ['s1'] });
          return { ok: true, message: 'membership epoch 4: s2, s3' } as T;
        }
        const routes = { 'vol/0': { owner: drained ? 's2' : 's1', epoch: drained ? 2 : 1 } };
        const copies = server.id === 's2' && s2Copy !== null ? { 'vol/0': s2Copy } : {};
        return { server: server.id, routes, copies, membership: drained ? { epoch: 4, members: record.members.filter((member) => member.id !== 's1') } : record, drain: null } as unknown as T;
      };
      const lines: string[] = [];
      const outcome = await forgetServer([s1], s3, [s2], admin, (line) => lines.push(line), 1_500).then(() => 'forgotten', (error: Error) => error.message);
      return { outcome, lines, calls, drains };
    };
    const held = await run('valid (epoch 2)');
    expect(held.outcome).toBe('forgotten');
    expect(held.drains).toBe(1);
    expect(held.lines).toContain('  vol/0 (committed at s2): copied by moves from s1 that never flipped; draining it so that the copies are taken over');
    expect(held.calls).toContain('s3/members/drain');
    // Without such a copy the refusal stands, and s1 is not drained (a drain cannot be taken back); nor with a copy
    // whose epoch is not the one above the route (s1 was not its move's source: the node would not take it over).
    for (const copy of [null, 'valid (epoch 3)']) {
      const notHeld = await run(copy);
      expect(notHeld.outcome).toContain("cannot forget s1: s3's routes name s1 owner of 1 page (vol/0)");
      expect(notHeld.calls).not.toContain('s3/members/drain');
    }
  });
});
