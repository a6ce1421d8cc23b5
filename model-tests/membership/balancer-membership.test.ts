import { describe, expect, it } from 'vitest';
import { defaultAllocationConfig } from '../../machines/allocation/allocation-config.js';
import { planMoves } from '../../machines/allocation/allocation-plan.js';
import type { LoadSample, PageHeat } from '../../machines/allocation/load-sample.js';
import { drainingCapacityWeight } from '../../impl/balance/balance-wiring.js';
import { RingView } from '../../impl/balance/ring-view.js';

/**
 * The balancer follows membership: a joined server is a destination and on
 * the report ring; a draining one keeps its ring place but gets a vanishing
 * capacity share, so the allocation moves load off it and never onto it.
 */
const heat = (page: number, owner: string, randomOpsPerSecond: number): PageHeat => ({
  pageKey: { volume: 'alpha', page }, owner, randomOpsPerSecond, sequentialOpsPerSecond: 0, bytesPerSecond: 0,
});
const limits = (sources: string[]) => ({ nowMs: 1_000_000, confirmedSources: new Set(sources), inFlight: {}, lastMovedAtMs: {} });

describe('the balancer under dynamic membership', () => {
  it('never plans a move onto a draining member, however idle it is, and moves load off it', () => {
    const config = { ...defaultAllocationConfig('s1'), movesPerSampleMax: 4, concurrentMovesMax: 4 };
    const pages = [heat(0, 's1', 400), heat(1, 's1', 300), heat(2, 's1', 200), heat(3, 's3', 10), heat(4, 's4', 10), heat(5, 's2', 0)];
    const servers = [{ id: 's1', capacityWeight: 1 }, { id: 's2', capacityWeight: drainingCapacityWeight }, { id: 's3', capacityWeight: 1 }, { id: 's4', capacityWeight: 2 }];
    const sample: LoadSample = { takenAtMs: 1_000_000, servers, pages };
    const moves = planMoves(sample, limits(['s1']), config);
    expect(moves.length).toBeGreaterThan(0);
    expect(moves.map((move) => move.to)).not.toContain('s2');
    // s4, the joined server with twice the weight, receives load.
    expect(moves.map((move) => move.to)).toContain('s4');
    // A draining member that carries load is over its (vanishing) share: its own balancer moves its pages elsewhere.
    const busyDrain: LoadSample = { takenAtMs: 1_000_000, servers, pages: [...pages.slice(3, 5), heat(5, 's2', 300)] };
    expect(planMoves(busyDrain, limits(['s2']), { ...config, self: 's2' }).map((move) => `${move.from}→${move.to}`)).toEqual(['s2→s4']);
  });

  it('the report ring follows the membership and forgets reports of servers that left', () => {
    const ring = new RingView('s1', ['s1', 's2', 's3'], 5_000);
    ring.merge([{ server: 's2', takenAtMs: 10, pages: [], clients: [] } as never, { server: 's4', takenAtMs: 10, pages: [], clients: [] } as never]);
    expect(ring.fresh(20).map((report) => report.server)).toEqual(['s2']);
    ring.setRing(['s1', 's3', 's4']);
    expect(ring.successor()).toBe('s3');
    expect(ring.fresh(20)).toEqual([]);
    ring.merge([{ server: 's4', takenAtMs: 15, pages: [], clients: [] } as never]);
    expect(ring.fresh(20).map((report) => report.server)).toEqual(['s4']);
  });
});
