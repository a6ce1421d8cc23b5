import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { GroupConfig, ServerConfig } from './group-config.js';
import { groupConfigProblem, localGroupConfig, nbdConnectionBoundsOf } from './group-config.js';
import { LocalGroup } from './local-group.js';
import { nextServerConfig, writeGroupConfig } from './membership-admin.js';
import { startJsonHttpServer } from '../runtime/json-http-server.js';

/**
 * Bad input to the command line and to a group config is refused with a clear message and changes nothing.
 * Commands that must find nobody listening use base port 30500 (admin 32500), and stand-in admin APIs listen on
 * 32700 and 32900 (base ports 30700 and 30900); real groups run on base ports 29009 and 28409: the cluster tests' ranges
 * (cluster-fixture.ts) run at the same time, and 19809 put the admin port on real-clients' NBD port 21809.
 */
function blockshift(args: string[]): Promise<{ status: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/blockshift.mjs', ...args], { timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ status: error ? (typeof error.code === 'number' ? error.code : -1) : 0, output: String(stdout) + String(stderr) });
    });
  });
}

type StandInHandle = Parameters<typeof startJsonHttpServer>[0]['handle'];

/** Runs `body` while a stand-in for s1's admin API (group base port 30700) answers with `handle`. */
async function withStandInS1(handle: StandInHandle, body: () => Promise<void>): Promise<void> {
  const group = localGroupConfig('/nonexistent-blockshift', 3, 30700);
  const admin = await startJsonHttpServer({ host: '127.0.0.1', port: group.servers[0]!.admin.port, thrownStatus: 500, handle });
  try {
    await body();
  } finally {
    await admin.close();
  }
}

describe('blockshift command line', () => {
  it('refuses an unknown command and missing or malformed flags with exit 2 and the usage', async () => {
    for (const args of [['teleport'], ['move', '--volume', 'alpha'], ['move', '--volume', 'alpha', '--page', 'first', '--to', 's2'], ['volume', 'delete'],
      ['server', 'remove', '--id', 's2'], ['server', 'drain'], ['server', 'forget'], ['server', 'add', '--id', 's4', '--weight', '0', '--data', '/nonexistent-blockshift'],
      // An unknown option is refused, not ignored (a review's --pices 2 ran a default move).
      ['move', '--volume', 'alpha', '--page', '0', '--to', 's2', '--pices', '2'], ['status', '--bogus'],
      // Digits only: "" was page 0 and 1e1 ten pages (a review).
      ['move', '--data', '/nonexistent-blockshift', '--volume', 'alpha', '--page', '', '--to', 's2'], ['volume', 'create', '--data', '/nonexistent-blockshift', '--name', 'v', '--pages', '1e1', '--servers', 's1']]) {
      const result = await blockshift(args);
      expect(result.status, args.join(' ')).toBe(2);
      expect(result.output).toContain('usage: blockshift');
    }
  });

  it('refuses a --base-port that names another group than the one saved in --data, changing nothing', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'blockshift-cli-base-port-'));
    try {
      writeGroupConfig(join(directory, 'group.json'), localGroupConfig(directory, 3, 30_900));
      // A review's `stop --base-port 5050`, run where ./data/group.json held the group at 5000, stopped that one.
      const result = await blockshift(['stop', '--data', directory, '--base-port', '5050']);
      expect(result.status).toBe(2);
      expect(result.output).toContain('--base-port 5050 names another group than the one saved in');
      // The saved group's own base port is accepted (nothing runs there: stop reports each server not running).
      expect((await blockshift(['stop', '--data', directory, '--base-port', '30900'])).output).not.toContain('names another group');
      // A server that is no member (one drained away, say) is not a usage error: the way back is named instead.
      const start = await blockshift(['server', 'start', '--data', directory, '--id', 's9']);
      expect(start.status).toBe(1);
      expect(start.output).toContain('comes back with npx blockshift server add --id s9 --data');
      expect(start.output).not.toContain('usage: blockshift');
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it('prints its usage for --help and exits 0', async () => {
    for (const args of [['--help'], ['help'], ['move', '--help']]) {
      const result = await blockshift(args);
      expect(result.status, args.join(' ')).toBe(0);
      expect(result.output).toMatch(/^usage: blockshift up /);
    }
  });

  it('refuses a malformed --pieces before contacting any server', async () => {
    const move = ['move', '--data', '/nonexistent-blockshift', '--base-port', '30500', '--volume', 'alpha', '--page', '0', '--to', 's2'];
    for (const [extra, message] of [
      [['--pieces', '0'], '--pieces must be a positive integer'],
      [['--pieces', 'eight'], '--pieces must be a non-negative integer'],
      [['--pieces', '2.5'], '--pieces must be a non-negative integer'],
      [['--pieces'], '--pieces must be a non-negative integer'],
      [['--kind', 'unit', '--pieces', '4'], 'a unit move is one piece'],
    ] as const) {
      const result = await blockshift([...move, ...extra]);
      expect(result.status, extra.join(' ')).toBe(2);
      expect(result.output).toContain(message);
      expect(result.output).not.toContain('DOWN');
    }
  });

  it('status fails when no server of the group answers; stop reports servers that are not running and succeeds', async () => {
    // Both exited 0 with a raw ECONNREFUSED per server, so `status && …` could not tell a stopped group from a running one.
    const where = ['--data', '/nonexistent-blockshift', '--base-port', '30500'];
    const status = await blockshift(['status', ...where]);
    expect(status.status).toBe(1);
    expect(status.output).toContain('s1: DOWN');
    expect(status.output).toContain('no server of the group answered: it is not running (start it with npx blockshift up --data /nonexistent-blockshift --base-port 30500)');
    const stop = await blockshift(['stop', ...where]);
    expect(stop.status).toBe(0);
    expect(stop.output).toContain('s1: not running\ns2: not running\ns3: not running');
  });

  it('reads --servers of volume create as the volume\'s servers, not as a group size', async () => {
    // It was read as a count and refused ("--servers must be a non-negative integer"), so the documented command never ran.
    // With nothing listening the command gets as far as asking s1.
    const result = await blockshift(['volume', 'create', '--data', '/nonexistent-blockshift', '--base-port', '30500', '--name', 'gamma', '--pages', '4', '--servers', 's1,s2']);
    expect(result.output).not.toContain('--servers must be');
    expect(result.output).toMatch(/ECONNREFUSED|127\.0\.0\.1:32500/);
  });

  it('refuses a saved group config that is not JSON or not valid, naming the file, in every command that reads it', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'blockshift-cli-'));
    try {
      for (const [text, message] of [['{"servers": [', 'is not JSON'], ['{"groupName": "g", "servers": []}', 'bad group config']] as const) {
        writeFileSync(join(directory, 'group.json'), text);
        for (const command of [['status'], ['move', '--volume', 'alpha', '--page', '0', '--to', 's2'], ['stop'], ['server', 'drain', '--id', 's2']]) {
          const result = await blockshift([...command, '--data', directory]);
          expect(result.status, command[0]).not.toBe(0);
          expect(result.output, command[0]).toContain(message);
          expect(result.output, command[0]).toContain(join(directory, 'group.json'));
        }
      }
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it('does not report a move done when its source still holds the page (a move given up, or lost to a restart)', async () => {
    // A stand-in for s1's admin API: it accepts the move, then shows no move running and still the page's valid copy.
    const status = { server: 's1', volumes: [], routes: {}, copies: { 'alpha/0': 'valid (epoch 1)' }, moves: [], requestsInFlight: 0, membership: null, drain: null };
    // GET /moves (the command's poll) and GET /status both answer with the status: it holds the moves.
    await withStandInS1(async (request) => (request.method === 'POST' && request.url === '/moves' ? { status: 200, body: { ok: true, message: 'moving alpha/0 from s1 to s2' } } : { status: 200, body: status }), async () => {
      const result = await blockshift(['move', '--base-port', '30700', '--data', '/nonexistent-blockshift', '--volume', 'alpha', '--page', '0', '--to', 's2']);
      expect(result.status).not.toBe(0);
      expect(result.output).toContain('the move of alpha/0 to s2 ended without moving it: s1 still holds its valid copy');
      expect(result.output).not.toContain('complete in');
    });
  });

  it('move abandon asks the server running the page\'s move, and a running move command stops once it is abandoned', async () => {
    // A stand-in for s1's admin API running a move of alpha/0 toward s2, which an abandon turns into an abandoned move.
    let abandoned = false;
    const asked: string[] = [];
    const move = () => ({ page: 'alpha/0', kind: 'piecewise', destination: 's2', state: abandoned ? '{"abandoned":"notifying"}' : '"interrupted"', durableStage: abandoned ? 1 : 2, stageInProgress: 2, attempt: 1, piece: 0, pieceCount: 4, piecesCopied: 0, bytesCopied: 0, pageBytes: 4_194_304, abandoned });
    const alpha = { name: 'alpha', pageCount: 3, pageSizeBlocks: 8192, blockSizeBytes: 512, piecesPerPage: 4, servers: ['s1', 's2', 's3'] };
    const status = () => ({ server: 's1', volumes: [alpha], routes: {}, copies: { 'alpha/0': 'valid (epoch 1)' }, moves: [move()], requestsInFlight: 0, membership: null, drain: null });
    await withStandInS1(async (request) => {
      asked.push(request.url ?? '');
      if (request.url === '/moves/abandon') {
        abandoned = true;
        return { status: 200, body: { ok: true, message: 'abandoned the move of alpha/0 to s2; s1 serves it alone at epoch 3' } };
      }
      return { status: 200, body: status() };
    }, async () => {
      const flags = ['--base-port', '30700', '--data', '/nonexistent-blockshift', '--volume', 'alpha', '--page', '0'];
      const result = await blockshift(['move', 'abandon', ...flags]);
      expect(result.output).toContain('s1 serves it alone at epoch 3');
      expect(result.status).toBe(0);
      expect(asked).toContain('/moves/abandon');
      const again = await blockshift(['move', 'abandon', ...flags]);
      expect(again.status).not.toBe(0);
      expect(again.output).toContain('the move of alpha/0 to s2 was abandoned already: s1 serves the page alone and waits for s2 to let go of its partial copy');
      // Each other reason in words of its own (one message served a missing volume, a page out of range, no move and a
      // source that is down).
      const where = ['--base-port', '30700', '--data', '/nonexistent-blockshift'];
      for (const [volume, page, message] of [
        ['zeta', '0', 'no volume zeta (the group has alpha)'],
        ['alpha', '7', 'volume alpha has 3 pages (0-2): there is no page 7'],
        ['alpha', '1', 'no move of alpha/1 runs; s2, s3 are down, and a move run by a server that is down can be abandoned only once it is back'],
      ] as const) {
        const refused = await blockshift(['move', 'abandon', ...where, '--volume', volume, '--page', page]);
        expect(refused.status, message).toBe(1);
        expect(refused.output).toContain(message);
      }
      const running = await blockshift(['move', ...flags, '--to', 's2']);
      expect(running.status).not.toBe(0);
      expect(running.output).toContain('the move of alpha/0 to s2 was abandoned: s1 serves it alone again');
    });
  });

  it('server forget asks a running member, drains only once the forget allows it, waits out confirmations, checks the records, drops the server from the config', async () => {
    // A stand-in for s1's admin API: s2 is down (nothing answers on its port), s3 too; s1 first asks for the drain.
    const directory = mkdtempSync(join(tmpdir(), 'blockshift-forget-'));
    const config = localGroupConfig(directory, 3, 30700);
    writeFileSync(join(directory, 'group.json'), JSON.stringify(config));
    mkdirSync(join(directory, 's2'));
    writeFileSync(join(directory, 's2', 'loss-epoch.json'), '{}');
    const asked: string[] = [];
    let forgotten = false;
    const members = () => [{ id: 's1', draining: false }, ...(forgotten ? [] : [{ id: 's2', draining: asked.includes('/members/drain') }]), { id: 's3', draining: false }];
    try {
      await withStandInS1(async (request) => {
        asked.push(request.url ?? '');
        if (request.url === '/members/drain') return { status: 200, body: { ok: true, message: 'membership epoch 1: s1 (weight 1), s2 (weight 1, draining), s3 (weight 1)' } };
        if (request.url === '/members/forget') {
          const tries = asked.filter((url) => url === '/members/forget').length;
          if (tries === 1) return { status: 409, body: { ok: false, message: 'drain s2 first, so that no move toward it starts', refusal: { reason: 'notDraining', servers: ['s2'] } } };
          if (tries === 2) return { status: 409, body: { ok: false, message: 'waiting for s3 to confirm at membership epoch 1 that nothing they know names s2 (a member that is down blocks this; forget it with them)', refusal: { reason: 'waitingFor', servers: ['s3'] } } };
          forgotten = true;
          return { status: 200, body: { ok: true, message: 'membership epoch 2: s1 (weight 1), s3 (weight 1)' } };
        }
        return { status: 200, body: { server: 's1', membership: { epoch: forgotten ? 2 : 1, members: members() } } };
      }, async () => {
        const result = await blockshift(['server', 'forget', '--data', directory, '--id', 's2']);
        expect(result.output).toContain('waiting for s3 to confirm');
        expect(result.output).toContain('s1: s2 forgotten: membership epoch 2: s1 (weight 1), s3 (weight 1)');
        expect(result.output).toContain('s3 does not answer: it learns the record when it is back');
        expect(result.status).toBe(0);
        expect(asked.filter((url) => url !== '/status')).toEqual(['/members/forget', '/members/drain', '/members/forget', '/members/forget']);
        expect((JSON.parse(readFileSync(join(directory, 'group.json'), 'utf8')) as GroupConfig).servers.map((server) => server.id)).toEqual(['s1', 's3']);
        // Its data directory is kept aside: a server added later as s2 starts afresh, not from the forgotten one's records.
        expect(existsSync(join(directory, 's2'))).toBe(false);
        expect(readdirSync(directory).filter((name) => name.startsWith('s2.forgotten-'))).toHaveLength(1);
        expect(result.output).toMatch(/s2's data directory moved to .*s2\.forgotten-/);
        // s1 answers: it is not forgotten (a running server is drained instead).
        const running = await blockshift(['server', 'forget', '--data', directory, '--id', 's1']);
        expect(running.status).toBe(1);
        expect(running.output).toContain('forget only a server that is down for good (drain a running one: server drain --id s1)');
      });
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it('server forget, end to end: a dead member holding nothing leaves the record, the config and its directory; a running one is refused', async () => {
    // Base port 28409: peers 29409-29411, admin 30409-30411, balance 30509-30511, none of the other tests' ranges.
    const directory = mkdtempSync(join(tmpdir(), 'blockshift-forget-'));
    const group = new LocalGroup(localGroupConfig(directory, 3, 28_409), directory, { output: () => undefined });
    try {
      await group.startAll();
      await group.admin('s1', '/volumes', { name: 'two', pageCount: 2, servers: ['s1', 's2'], piecesPerPage: 1 });
      await group.kill('s3');
      const forgotten = await blockshift(['server', 'forget', '--data', directory, '--id', 's3']);
      expect(forgotten.output).toMatch(/s1: s3 forgotten: membership epoch \d+: s1 \(weight 1\), s2 \(weight 1\)/);
      expect(forgotten.status).toBe(0);
      for (const id of ['s1', 's2']) expect((await group.status(id)).membership.members.map((entry) => entry.id)).toEqual(['s1', 's2']);
      expect((JSON.parse(readFileSync(join(directory, 'group.json'), 'utf8')) as GroupConfig).servers.map((server) => server.id)).toEqual(['s1', 's2']);
      expect(readdirSync(directory).filter((name) => name.startsWith('s3.forgotten-'))).toHaveLength(1);
      const running = await blockshift(['server', 'forget', '--data', directory, '--id', 's2']);
      expect(running.status).toBe(1);
      expect(running.output).toContain('s2 answers at 127.0.0.1:30410: forget only a server that is down for good');
    } finally {
      await group.stopAll();
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it('server forget stops after a few seconds when a member it waits for does not answer, naming it, and changes no config', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'blockshift-forget-'));
    writeFileSync(join(directory, 'group.json'), JSON.stringify(localGroupConfig(directory, 3, 30700)));
    try {
      await withStandInS1(async (request) => {
        if (request.url === '/members/forget') return { status: 409, body: { ok: false, message: 'waiting for s3 to confirm at membership epoch 1 that nothing they know names s2 (a member that is down blocks this; forget it with them)', refusal: { reason: 'waitingFor', servers: ['s3'] } } };
        return { status: 200, body: { server: 's1', membership: { epoch: 1, members: [{ id: 's1', draining: false }, { id: 's2', draining: true }, { id: 's3', draining: false }] } } };
      }, async () => {
        const startedMs = performance.now();
        const result = await blockshift(['server', 'forget', '--data', directory, '--id', 's2']);
        expect(result.status).toBe(1);
        expect(result.output).toContain('s3 does not answer; forget it with them (--id s2,s3) if it is down for good, or bring it back');
        expect(performance.now() - startedMs).toBeLessThan(15_000);
        expect((JSON.parse(readFileSync(join(directory, 'group.json'), 'utf8')) as GroupConfig).servers.map((server) => server.id)).toEqual(['s1', 's2', 's3']);
      });
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it('says a move was abandoned when its source serves the page two epochs on, though its record was gone before a poll saw it', async () => {
    let moved = false;
    const status = () => ({ server: 's1', volumes: [], routes: { 'alpha/0': { owner: 's1', epoch: moved ? 3 : 1 } }, copies: { 'alpha/0': `valid (epoch ${moved ? 3 : 1})` }, moves: [], requestsInFlight: 0, membership: null, drain: null });
    await withStandInS1(async (request) => {
      if (request.method !== 'POST' || request.url !== '/moves') return { status: 200, body: status() };
      moved = true;
      return { status: 200, body: { ok: true, message: 'moving alpha/0 from s1 to s2' } };
    }, async () => {
      const result = await blockshift(['move', '--base-port', '30700', '--data', '/nonexistent-blockshift', '--volume', 'alpha', '--page', '0', '--to', 's2']);
      expect(result.status).not.toBe(0);
      expect(result.output).toContain('the move of alpha/0 to s2 was abandoned: s1 serves it alone again (epoch 3)');
    });
  });

  it('server start leaves a server that answers as itself from its data directory alone, and refuses an admin port answered by another', async () => {
    let answer = { server: 's1', dataDirectory: '/nonexistent-blockshift/s1' };
    await withStandInS1(async () => ({ status: 200, body: { ...answer, volumes: [], routes: {}, copies: {}, moves: [], requestsInFlight: 0, membership: null, drain: null } }), async () => {
      const flags = ['--base-port', '30700', '--data', '/nonexistent-blockshift', '--id', 's1'];
      const running = await blockshift(['server', 'start', ...flags]);
      expect(running.status).toBe(0);
      expect(running.output).toContain('s1 is running already');
      answer = { server: 's9', dataDirectory: '/nonexistent-blockshift/s1' };
      const other = await blockshift(['server', 'start', ...flags]);
      expect(other.status).not.toBe(0);
      expect(other.output).toContain("s1's admin address, is answered by s9");
      // Another group's s1 on these ports: the id alone used to pass it for ours.
      answer = { server: 's1', dataDirectory: '/elsewhere/s1' };
      const elsewhere = await blockshift(['server', 'start', ...flags]);
      expect(elsewhere.status).not.toBe(0);
      expect(elsewhere.output).toContain("s1's admin address, is answered by s1 of /elsewhere/s1, not by s1 of /nonexistent-blockshift/s1");
    });
  });

  it('up on a group whose s1 runs already starts only s2 and s3, and Ctrl-C stops all three', async () => {
    // It started every server: s1 failed on its ports, `up` failed, and kept the servers it had started attached.
    // Base port 29009: peers 30009-30011, admin 31009-31011, none of the other tests' ranges.
    const directory = mkdtempSync(join(tmpdir(), 'blockshift-up-'));
    const lines: string[] = [];
    const running = new LocalGroup(localGroupConfig(directory, 3, 29_009), directory, { output: (id, line) => lines.push(`${id} ${line}`) });
    let up: ReturnType<typeof spawn> | null = null;
    try {
      await running.start('s1');
      const child = spawn(process.execPath, ['--import', 'tsx', 'impl/cli/main.ts', '--data', directory, '--no-demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
      up = child;
      let output = '';
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`up did not come up:\n${output}`)), 60_000);
        for (const stream of [child.stdout, child.stderr]) {
          stream.on('data', (chunk: Buffer) => {
            output += chunk.toString('utf8');
            if (output.includes('group is up')) { clearTimeout(timer); resolve(); }
          });
        }
      });
      expect(output).toContain('s1 is running already');
      expect(output).not.toContain('exited while starting');
      for (const id of ['s2', 's3']) expect((await running.admin<{ server: string }>(id, '/status')).server).toBe(id);
      child.kill('SIGINT');
      expect(await exited).toBe(0);
      // s1, which this `up` did not start, was asked to stop with the rest.
      await Promise.race([running.waitForExit(), new Promise((_, reject) => setTimeout(() => reject(new Error('s1 still runs')), 30_000))]);
    } finally {
      // On a failure, the servers `up` started stop with it (Ctrl-C), not linger on these ports.
      if (up !== null && up.exitCode === null) {
        up.kill('SIGINT');
        await new Promise((resolve) => { up!.once('exit', resolve); setTimeout(resolve, 30_000); });
      }
      await running.stopAll();
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it('does not call a group up when a server of it failed to start and another process answers on its admin port', async () => {
    // A stand-in answers as s1 on the admin port a new group's s1 needs, so that s1 cannot listen there.
    const directory = mkdtempSync(join(tmpdir(), 'blockshift-up-'));
    const other = await startJsonHttpServer({ host: '127.0.0.1', port: 32900, thrownStatus: 500, handle: async () => ({ status: 200, body: { server: 's1', pid: 1, volumes: [] } }) });
    try {
      // `npm start -- --data ...` is `up` with those options.
      const result = await new Promise<{ status: number; output: string }>((resolve) => {
        execFile(process.execPath, ['--import', 'tsx', 'impl/cli/main.ts', '--data', directory, '--base-port', '30900', '--servers', '1', '--no-demo'], { timeout: 60_000 }, (error, stdout, stderr) => {
          resolve({ status: error ? (typeof error.code === 'number' ? error.code : -1) : 0, output: String(stdout) + String(stderr) });
        });
      });
      expect(result.status).not.toBe(0);
      expect(result.output).not.toContain('group is up');
      expect(result.output).toContain(`is answered by s1, not by s1 of ${join(directory, 's1')}: another group (or program) uses these ports`);
    } finally {
      await other.close();
      rmSync(directory, { recursive: true, force: true });
    }
  });
});

describe('the configuration of a server added online', () => {
  it('takes the next free ports and a data directory next to the others, and refuses an id already in the group', () => {
    const group = localGroupConfig('data');
    const added = nextServerConfig(group, 's4', 2);
    expect(added).toEqual({ id: 's4', nbd: { host: '127.0.0.1', port: 10812 }, peer: { host: '127.0.0.1', port: 11812 }, admin: { host: '127.0.0.1', port: 12812 }, dataDirectory: 'data/s4', capacityWeight: 2 });
    expect(groupConfigProblem({ ...group, servers: [...group.servers, added] })).toBeNull();
    expect(() => nextServerConfig(group, 's2', 1)).toThrow('already in the group');
  });
});

describe('group config validation', () => {
  const good = localGroupConfig('data');
  it('accepts the embedded defaults', () => {
    expect(groupConfigProblem(good)).toBeNull();
  });
  it('takes the NBD connection bounds a config sets, and the defaults where it sets none', () => {
    expect(nbdConnectionBoundsOf(good)).toEqual({ connectionsMax: 256, connectionsPerAddressMax: 64 });
    const natted = { ...good, nbdConnectionsMax: 1024, nbdConnectionsPerAddressMax: 512 };
    expect(groupConfigProblem(natted)).toBeNull();
    expect(nbdConnectionBoundsOf(natted)).toEqual({ connectionsMax: 1024, connectionsPerAddressMax: 512 });
  });
  it('accepts a config saved before the copy rate under load existed (the server then takes the default)', () => {
    const { moveRateUnderLoadMBps: _dropped, ...saved } = good;
    expect(groupConfigProblem(saved)).toBeNull();
  });
  it.each([
    ['a repeated server id', { ...good, servers: [good.servers[0]!, { ...good.servers[1]!, id: good.servers[0]!.id }] }, 'repeats'],
    ['a port used twice', { ...good, servers: [good.servers[0]!, { ...good.servers[1]!, nbd: good.servers[0]!.nbd }] }, 'used twice'],
    ['a port out of range', { ...good, servers: [{ ...good.servers[0]!, admin: { host: '127.0.0.1', port: 70_000 } }] }, '1-65535'],
    ['a zero capacity weight', { ...good, servers: [{ ...good.servers[0]!, capacityWeight: 0 }] }, 'capacityWeight'],
    ['a negative throttle', { ...good, moveThrottleMBps: -1 }, 'moveThrottleMBps'],
    ['an unbounded throttle', { ...good, moveThrottleMBps: Number.POSITIVE_INFINITY }, 'moveThrottleMBps'],
    ['a negative copy rate under load', { ...good, moveRateUnderLoadMBps: -1 }, 'moveRateUnderLoadMBps'],
    ['a copy rate under load that is not a number', { ...good, moveRateUnderLoadMBps: '32' as unknown as number }, 'moveRateUnderLoadMBps'],
    ['no servers', { ...good, servers: [] }, 'non-empty'],
    ['a config that is null', null as unknown as GroupConfig, 'JSON object'],
    ['a server entry that is null', { ...good, servers: [null as unknown as ServerConfig] }, 'must be an object'],
    ['a forwarding pointer given as the string "false"', { ...good, forwardingPointer: 'false' as unknown as boolean }, 'forwardingPointer must be true or false'],
    ['an infinite capacity weight', { ...good, servers: [{ ...good.servers[0]!, capacityWeight: Number.POSITIVE_INFINITY }] }, 'capacityWeight'],
    ['a capacity weight too small for the allocation\'s arithmetic', { ...good, servers: [{ ...good.servers[0]!, capacityWeight: 1e-320 }] }, 'capacityWeight must be a number from 0.001 to 1000000'],
    ['a progress time-out past Node\'s timer limit', { ...good, moveProgressTimeoutMs: 3e9 }, 'moveProgressTimeoutMs'],
    ['two servers sharing a data directory', { ...good, servers: [good.servers[0]!, { ...good.servers[1]!, dataDirectory: good.servers[0]!.dataDirectory }] }, "another server's too"],
    ['two servers sharing a data directory spelt two ways', { ...good, servers: [good.servers[0]!, { ...good.servers[1]!, dataDirectory: `${good.servers[0]!.dataDirectory}/./` }] }, "another server's too"],
    ['a balance port that is another server\'s port', { ...good, servers: [good.servers[0]!, { ...good.servers[1]!, nbd: { host: '127.0.0.1', port: good.servers[0]!.admin.port + 100 } }] }, 'used twice'],
    ['an admin port with no room for its balance port', { ...good, servers: [{ ...good.servers[0]!, admin: { host: '127.0.0.1', port: 65_500 } }] }, 'balance port'],
    ['an empty host', { ...good, servers: [{ ...good.servers[0]!, peer: { host: '', port: 11_809 } }] }, 'host'],
    ['no NBD connections at all', { ...good, nbdConnectionsMax: 0 }, 'nbdConnectionsMax must be an integer from 1'],
    ['a fractional per-address bound', { ...good, nbdConnectionsPerAddressMax: 2.5 }, 'nbdConnectionsPerAddressMax must be an integer from 1'],
    ['a per-address bound given as a string', { ...good, nbdConnectionsPerAddressMax: '8' as unknown as number }, 'nbdConnectionsPerAddressMax must be an integer from 1'],
    ['a per-address bound above the total', { ...good, nbdConnectionsMax: 16, nbdConnectionsPerAddressMax: 32 }, 'must not exceed nbdConnectionsMax (16)'],
    ['a per-address bound above the default total', { ...good, nbdConnectionsPerAddressMax: 300 }, 'must not exceed nbdConnectionsMax (256)'],
  ])('refuses %s', (_name, config, message) => {
    expect(groupConfigProblem(config)).toContain(message);
  });
});
