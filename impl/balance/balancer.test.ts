import { describe, expect, it } from 'vitest';
import { defaultAllocationConfig } from '../../machines/allocation/allocation-config.js';
import type { PageKey } from '../../machines/identifiers.js';
import { membersMax } from '../../machines/membership/membership.js';
import type { BlockOperation } from '../../machines/node/messages.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { initialOwner } from '../../machines/node/volume.js';
import type { RuntimeReply, ServerRuntime } from '../runtime/server-runtime.js';
import { VolumeBackend } from '../runtime/volume-backend.js';
import { startBalancing } from './balance-wiring.js';
import type { BalancerOptions } from './balancer.js';
import { Balancer } from './balancer.js';
import type { LoadReport } from './load-monitor.js';
import { LoadMonitor } from './load-monitor.js';
import { RingView } from './ring-view.js';

/**
 * The balancer of one server against a stand-in runtime: each case is one a
 * review reproduced against the old code (a tick that crashed the server, a
 * dead server drawing every move, a ring cut at a dead successor, sequential
 * streams counted as random, a request counted once per piece).
 */
const volume: VolumeDefinition = { name: 'v', pageCount: 30, pageSizeBlocks: 8192, blockSizeBytes: 512, piecesPerPage: 8, servers: ['s1', 's2', 's3'] };
const three = ['s1', 's2', 's3'].map((id) => ({ id, capacityWeight: 1 }));

function balancerOver(changes: Partial<BalancerOptions> & { volumes?: Record<string, VolumeDefinition> } = {}) {
  const moves: string[] = [];
  const lines: string[] = [];
  let nowMs = 1_000_000;
  const volumes = changes.volumes ?? { v: volume };
  // Like a node's, the table holds a route for every page of every volume.
  const routes: Map<string, { owner: string; epoch: number }> = new Map(Object.values(volumes).flatMap((defined) => Array.from({ length: defined.pageCount }, (_, page) => [`${defined.name}/${page}`, { owner: initialOwner(defined, page), epoch: 1 }] as const)));
  const runtime = {
    self: 's1',
    state: { routes, volumes, moves: {} },
    move: async (pageKey: PageKey, to: string) => { moves.push(`${pageKey.volume}/${pageKey.page}->${to}`); return { ok: true, message: '' }; },
  };
  const balancer = new Balancer({
    runtime: runtime as never, servers: three, allocation: defaultAllocationConfig('s1'), sampleIntervalMs: 1_000, halfLifeMs: 3_000,
    sendReports: async () => true, requestRemoteMove: async () => ({ ok: true, message: '' }), log: (line) => lines.push(line), nowMs: () => nowMs,
    ...changes,
  });
  return { balancer, runtime, moves, lines, advance: (ms: number) => { nowMs += ms; }, now: () => nowMs };
}

const hotPage = (page: number, opsPerSecond: number) => ({ pageKey: { volume: 'v', page }, randomOpsPerSecond: opsPerSecond, sequentialOpsPerSecond: 0, bytesPerSecond: 4096 * opsPerSecond, latencyMsMean: 1 });
const reportOf = (server: string, takenAtMs: number, pages: LoadReport['pages']): LoadReport => ({ server, takenAtMs, ageMs: 0, pages, clients: [] });
const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('the balancer', () => {
  it('takes a tick whose reports name more hot pages than a sample may carry, keeping the hottest', () => {
    const big: VolumeDefinition = { ...volume, name: 'big', pageCount: 262_144 };
    const { balancer } = balancerOver({ volumes: { big } });
    const pages = (from: number, opsPerSecond: number) => Array.from({ length: 40_000 }, (_, index) => ({ ...hotPage(0, opsPerSecond), pageKey: { volume: 'big', page: from + index } }));
    balancer.receiveReports([reportOf('s2', 1, pages(0, 1)), reportOf('s3', 1, pages(100_000, 2))]);
    expect(() => balancer.tick()).not.toThrow();
    const { counters } = balancer.status() as { counters: { samplesAccepted: number } };
    expect(counters.samplesAccepted).toBe(1);
  });

  it('takes a tick over a group of as many members as a membership may have', () => {
    const servers = Array.from({ length: membersMax }, (_, index) => ({ id: `s${index + 1}`, capacityWeight: 1 }));
    const { balancer } = balancerOver({ servers });
    balancer.setServers(servers);
    expect(() => balancer.tick()).not.toThrow();
  });

  it('logs a tick that throws, and ticks again', async () => {
    const { balancer, runtime, lines } = balancerOver({ sampleIntervalMs: 5 });
    const state = runtime.state;
    let failures = 1;
    Object.defineProperty(runtime, 'state', { get: () => { if (failures-- > 0) throw new Error('a runtime in a bad way'); return state; } });
    balancer.start();
    try {
      await new Promise((resolve) => setTimeout(resolve, 60));
    } finally {
      balancer.stop();
    }
    expect(lines.some((line) => line.includes('tick failed') && line.includes('a runtime in a bad way'))).toBe(true);
    expect((balancer.status() as { counters: { samplesAccepted: number } }).counters.samplesAccepted).toBeGreaterThan(0);
  });

  it('sends its view past a successor that does not take it, and says where it goes', async () => {
    const sent: string[] = [];
    const { balancer, lines } = balancerOver({ sendReports: async (to) => { sent.push(to); return to !== 's2'; } });
    balancer.tick();
    await flush();
    expect(sent).toEqual(['s2', 's3']);
    expect(lines).toContain('balance: the load view goes to s3');
  });

  it('never plans a move onto a server whose load it has not heard of (a dead one looks idle)', async () => {
    const { balancer, moves, advance, now } = balancerOver();
    for (let second = 0; second < 10; second += 1) {
      for (let index = 0; index < 400; index += 1) {
        balancer.observe({ pageKey: { volume: 'v', page: 3 * (index % 4) }, kind: 'write', offsetBlocks: (index * 977) % 8000, lengthBlocks: 8, bytes: 4096, clientId: 'c' });
      }
      // s3 reports each second (its clients on its own pages); s2 never does.
      balancer.receiveReports([reportOf('s3', now(), [hotPage(2, 100), hotPage(5, 100)])]);
      balancer.tick();
      await flush();
      advance(1_000);
    }
    expect(moves.length).toBeGreaterThan(0);
    expect(moves.filter((move) => move.endsWith('->s2'))).toEqual([]);
  });

  it('starts the cool-down of a page that arrives by another server\'s move, so it is not passed straight back', async () => {
    // s1 is over its share with v/0 (300 ops/s) and v/3 (1000), and would move v/3 first; but v/3 has just arrived from s2.
    const { balancer, runtime, moves, advance, now } = balancerOver();
    const routes = new Map(Array.from({ length: 30 }, (_, page) => [`v/${page}`, { owner: ['s1', 's2', 's3'][page % 3]!, epoch: 1 }]));
    runtime.state.routes = new Map(routes);
    balancer.tick();
    runtime.state.routes = new Map(routes).set('v/3', { owner: 's1', epoch: 2 });
    for (let second = 0; second < 6; second += 1) {
      balancer.receiveReports([reportOf('s2', now(), [hotPage(0, 300), hotPage(3, 1_000)]), reportOf('s3', now(), [])]);
      balancer.tick();
      await flush();
      advance(1_000);
    }
    expect(moves.filter((move) => move.startsWith('v/0->'))).toHaveLength(1);
    expect(moves.filter((move) => move.startsWith('v/3->'))).toEqual([]);
  });
});

describe('the balancer\'s watch over its own moves', () => {
  it('takes a move the administrator abandoned for failed at once, though its record waits for the dead destination', async () => {
    const { balancer, runtime, moves, lines, advance, now } = balancerOver();
    const state = runtime.state as { moves: Record<string, unknown> };
    for (let second = 0; second < 10 && moves.length === 0; second += 1) {
      for (let index = 0; index < 400; index += 1) {
        balancer.observe({ pageKey: { volume: 'v', page: 3 * (index % 4) }, kind: 'write', offsetBlocks: (index * 977) % 8000, lengthBlocks: 8, bytes: 4096, clientId: 'c' });
      }
      balancer.receiveReports([reportOf('s2', now(), []), reportOf('s3', now(), [])]);
      balancer.tick();
      await flush();
      advance(1_000);
    }
    expect(moves.length).toBeGreaterThan(0);
    const [text] = moves[0]!.split('->');
    // The node runs the move, then the administrator abandons it: its machine rests in `abandoned`, still active.
    state.moves[text!] = { kind: 'piecewise', snapshot: { status: 'active', matches: (value: unknown) => value === 'abandoned', context: {} } };
    balancer.tick();
    expect(lines.some((line) => line.includes(`move ${text} failed: the administrator abandoned it`))).toBe(true);
  });
});

describe('the balancer\'s watch over a swap\'s remote half', () => {
  it('gives the half up with the machine, so a late arrival of its page is not taken for its completion', async () => {
    const remote: string[] = [];
    const { balancer, runtime, lines, advance, now } = balancerOver({
      allocation: { ...defaultAllocationConfig('s1'), pageCountSlackRelative: 0 },
      requestRemoteMove: async (owner, move) => { remote.push(`${owner}: v/${move.pageKey.page}->${move.to}`); return { ok: true, message: '' }; },
    });
    // Ten pages each; s1's v/0 is hot, and any server it could go to is at its page bound, so a cold page must come back.
    const routes = new Map(Array.from({ length: 30 }, (_, page) => [`v/${page}`, { owner: ['s1', 's2', 's3'][page % 3]!, epoch: 1 }]));
    runtime.state.routes = routes;
    for (let second = 0; second < 5 && remote.length === 0; second += 1) {
      balancer.receiveReports([reportOf('s2', now(), [hotPage(0, 1_000), hotPage(3, 600)]), reportOf('s3', now(), [])]);
      balancer.tick();
      await flush();
      advance(1_000);
    }
    expect(remote).toHaveLength(1);
    const page = Number(/v\/(\d+)->/.exec(remote[0]!)![1]);
    for (let second = 0; second < 70; second += 1) {
      balancer.receiveReports([reportOf('s2', now(), []), reportOf('s3', now(), [])]);
      balancer.tick();
      advance(1_000);
    }
    expect(lines.some((line) => line.includes(`move v/${page}`) && line.includes('given up'))).toBe(true);
    runtime.state.routes = new Map(routes).set(`v/${page}`, { owner: 's1', epoch: 2 });
    balancer.tick();
    expect(lines.filter((line) => line.includes(`move v/${page}`) && line.endsWith('completed'))).toEqual([]);
  });
});

describe('the report ring', () => {
  it('ages a report by the age it travels with, whatever its sender\'s clock stamped on it', () => {
    const ring = new RingView('s1', ['s1', 's2', 's3'], 5_000);
    ring.merge([{ ...reportOf('s2', 1e300, []), ageMs: 1_000 }], 100_000);
    expect(ring.fresh(103_000).map((report) => [report.server, report.ageMs])).toEqual([['s2', 4_000]]);
    expect(ring.fresh(104_001)).toEqual([]);
    // Once the far-future report aged out, s2's real ones are taken again.
    ring.merge([reportOf('s2', 50, [])], 104_002);
    expect(ring.fresh(104_002).map((report) => report.takenAtMs)).toEqual([50]);
    // A report already too old when it arrives is not kept.
    ring.merge([{ ...reportOf('s3', 1, []), ageMs: 6_000 }], 104_002);
    expect(ring.fresh(104_002).map((report) => report.server)).toEqual(['s2']);
  });

  it('always takes this server\'s own report, even stamped earlier than the last (its clock started afresh)', () => {
    const ring = new RingView('s1', ['s1', 's2'], 5_000);
    ring.merge([reportOf('s1', 9_000, [hotPage(0, 5)])], 10);
    ring.merge([reportOf('s1', 20, [hotPage(0, 7)])], 20);
    expect(ring.fresh(20)[0]?.pages[0]?.randomOpsPerSecond).toBe(7);
  });
});

describe('the load monitor through the volume backend', () => {
  /** A backend whose runtime answers every request it holds, in the reverse of the order they came. */
  function reversingBackend(monitor: LoadMonitor, clock: () => number) {
    const held: Array<() => void> = [];
    const runtime = {
      state: { volumes: { v: volume } },
      request(_operation: BlockOperation): Promise<RuntimeReply> {
        return new Promise((resolve) => held.push(() => resolve({ outcome: { status: 'ok' }, data: Buffer.alloc(_operation.lengthBlocks * 512) } as never)));
      },
    } as unknown as ServerRuntime;
    const backend = new VolumeBackend(runtime, {
      issued: (pageKey, kind, offsetBlocks, lengthBlocks, bytes, clientId) => monitor.observe({ pageKey, kind, offsetBlocks, lengthBlocks, bytes, clientId }, clock()),
      answered: (pageKey, latencyMs) => monitor.answered(pageKey, latencyMs, clock()),
      failed: (error) => { throw error; },
    });
    return { backend, answerAll: () => { for (const answer of held.splice(0).reverse()) answer(); } };
  }

  it('sees a sequential stream as sequential however out of order its answers come, and a request split in pieces as one operation', async () => {
    const monitor = new LoadMonitor({ server: 's1', halfLifeMs: 3_600_000, pagesMax: 100, clientsMax: 10, reportOpsPerSecondMin: 0, reportPagesMax: 10, reportClientsMax: 10 });
    const { backend, answerAll } = reversingBackend(monitor, () => 1_000);
    // Eight 128 KiB reads in flight at once, one after another in the page; then the next 1 MiB, over two pieces.
    const reads = Array.from({ length: 8 }, (_, index) => backend.read('v', index * 128 * 1024, 128 * 1024, 'client'));
    answerAll();
    await Promise.all(reads);
    const split = backend.read('v', 1024 * 1024, 1024 * 1024, 'client');
    answerAll();
    await split;
    const page = monitor.report(1_000).pages.find((entry) => entry.pageKey.page === 0)!;
    const total = page.randomOpsPerSecond + page.sequentialOpsPerSecond;
    // Nine operations (ten, were the split read counted per piece): the first is random (nothing before it), the other eight sequential.
    expect(page.sequentialOpsPerSecond / total).toBeCloseTo(8 / 9, 6);
  });
});

describe('balance settings', () => {
  it('refuses a half-life or sampling interval of zero before serving anything', async () => {
    const group = { servers: [{ id: 's1', admin: { host: '127.0.0.1', port: 1 } }] } as never;
    for (const name of ['BLOCKSHIFT_BALANCE_HALF_LIFE_MS', 'BLOCKSHIFT_BALANCE_INTERVAL_MS']) {
      await expect(startBalancing(group, 's1', { self: 's1' } as never, () => undefined, { BLOCKSHIFT_BALANCE: '1', [name]: '0' })).rejects.toThrow(`${name} must be a positive number`);
    }
  });
});
