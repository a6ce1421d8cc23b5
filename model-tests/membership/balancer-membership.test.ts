import { describe, expect, it } from 'vitest';
import { defaultAllocationConfig } from '../../machines/allocation/allocation-config.js';
import { overShareServers, planMoves } from '../../machines/allocation/allocation-plan.js';
import type { LoadSample, PageHeat, ServerCapacity } from '../../machines/allocation/load-sample.js';
import { Balancer } from '../../impl/balance/balancer.js';
import { RingView } from '../../impl/balance/ring-view.js';

/**
 * The balancer follows membership: a joined server is a destination and on
 * the report ring; a draining one keeps its ring place but the allocation
 * treats it as closed both ways (machines/allocation/load-sample.ts): no page
 * is planned onto it, and its own pages are left to its drain driver.
 */
const heat = (page: number, owner: string, randomOpsPerSecond: number): PageHeat => ({
  pageKey: { volume: 'alpha', page }, owner, randomOpsPerSecond, sequentialOpsPerSecond: 0, bytesPerSecond: 0,
});
const limits = (sources: string[]) => ({ nowMs: 1_000_000, confirmedSources: new Set(sources), inFlight: {}, lastMovedAtMs: {} });

describe('the balancer under dynamic membership', () => {
  it('never plans a move onto a draining member, however idle and however heavy its weight, and still moves load to the others', () => {
    const config = { ...defaultAllocationConfig('s1'), movesPerSampleMax: 4, concurrentMovesMax: 4 };
    const pages = [heat(0, 's1', 400), heat(1, 's1', 300), heat(2, 's1', 200), heat(3, 's3', 10), heat(4, 's4', 10), heat(5, 's2', 0)];
    const active = [{ id: 's1', capacityWeight: 1 }, { id: 's2', capacityWeight: 4 }, { id: 's3', capacityWeight: 1 }, { id: 's4', capacityWeight: 2 }];
    // Active, idle and heaviest, s2 is where the hottest page goes: so the exclusion below is what keeps pages off it.
    expect(planMoves({ takenAtMs: 1_000_000, servers: active, pages }, limits(['s1']), config)[0]?.to).toBe('s2');
    const servers = active.map((server) => (server.id === 's2' ? { ...server, draining: true } : server));
    const moves = planMoves({ takenAtMs: 1_000_000, servers, pages }, limits(['s1']), config);
    expect(moves.length).toBeGreaterThan(0);
    expect(moves.map((move) => move.to)).not.toContain('s2');
    // s4, the joined server with twice the weight, receives load.
    expect(moves.map((move) => move.to)).toContain('s4');
  });

  it("leaves a draining member's pages to its drain driver, its own balancer included, and keeps them out of the others' shares", () => {
    const config = { ...defaultAllocationConfig(null), movesPerSampleMax: 4, concurrentMovesMax: 4 };
    const pages = [heat(0, 's2', 400), heat(1, 's2', 300), heat(2, 's1', 10), heat(3, 's3', 10)];
    const active = [{ id: 's1', capacityWeight: 1 }, { id: 's2', capacityWeight: 1 }, { id: 's3', capacityWeight: 1 }];
    const sample = (servers: readonly ServerCapacity[]): LoadSample => ({ takenAtMs: 1_000_000, servers, pages });
    // Were s2 active and hot, its balancer would move its pages off it.
    expect(planMoves(sample(active), limits(['s2']), { ...config, self: 's2' }).map((move) => move.from)).toContain('s2');
    const draining = active.map((server) => (server.id === 's2' ? { ...server, draining: true } : server));
    expect(planMoves(sample(draining), limits(['s2']), { ...config, self: 's2' })).toEqual([]);
    expect(planMoves(sample(draining), limits(['s1', 's2', 's3']), config)).toEqual([]);
    // Nor is any server over its share (which would start an over-share streak): s2's load is its drain's to shed, and s1 and s3 carry 10 each.
    expect([...overShareServers(sample(draining), {}, config)]).toEqual([]);
  });

  it("the balancer's status expects nothing of a draining member and shares the load among the others by weight", () => {
    const balancer = new Balancer({
      runtime: { self: 's1' } as never, allocation: defaultAllocationConfig('s1'), sampleIntervalMs: 1_000, halfLifeMs: 3_000, log: () => {},
      servers: [{ id: 's1', capacityWeight: 1 }, { id: 's2', capacityWeight: 1 }, { id: 's3', capacityWeight: 2 }],
      sendReports: async () => true, requestRemoteMove: async () => ({ ok: true, message: '' }), nowMs: () => 0,
    });
    balancer.setServers([{ id: 's1', capacityWeight: 1 }, { id: 's2', capacityWeight: 1, draining: true }, { id: 's3', capacityWeight: 2 }]);
    const { servers } = balancer.status() as { servers: Array<{ id: string; draining: boolean; expectedShare: number }> };
    expect(servers.map(({ id, draining, expectedShare }) => `${id} ${draining} ${expectedShare.toFixed(3)}`)).toEqual(['s1 false 0.333', 's2 true 0.000', 's3 false 0.667']);
  });

  it('the report ring follows the membership and forgets reports of servers that left', () => {
    const ring = new RingView('s1', ['s1', 's2', 's3'], 5_000);
    const report = (server: string, takenAtMs: number) => ({ server, takenAtMs, ageMs: 0, pages: [], clients: [] });
    ring.merge([report('s2', 10), report('s4', 10)], 10);
    expect(ring.fresh(20).map((held) => held.server)).toEqual(['s2']);
    ring.setRing(['s1', 's3', 's4']);
    expect(ring.successors()).toEqual(['s3', 's4']);
    expect(ring.fresh(20)).toEqual([]);
    ring.merge([report('s4', 15)], 20);
    expect(ring.fresh(20).map((held) => held.server)).toEqual(['s4']);
  });
});
