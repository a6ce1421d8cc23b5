import { afterEach, describe, expect, it } from 'vitest';
import type { ServerId } from '../../machines/identifiers.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { memoryPages } from './memory-pages.js';
import { flipWaitMsMax, ServerRuntime } from './server-runtime.js';

/**
 * A server that has just received a page refuses to move it on until it
 * learns its source's flip (machines/node/copy-standing.ts), which
 * the source's route push normally tells it within milliseconds.
 * `ServerRuntime.move` waits that refusal out for up to `flipWaitMsMax`, so
 * an administrator moving a page straight back sees no error. Two runtimes
 * here, over an in-memory network that can hold the route pushes to s2.
 */
const volume: VolumeDefinition = { name: 'v', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1'] };
const page = { volume: 'v', page: 0 };

interface Group {
  readonly s1: ServerRuntime;
  readonly s2: ServerRuntime;
  /** While true, route updates to s2 wait in `held`. */
  holdRoutes: boolean;
  readonly held: Array<() => void>;
  /** Route queries s2 has sent. */
  routeQueriesFromS2: number;
}

let running: ServerRuntime[] = [];
afterEach(() => {
  for (const runtime of running) runtime.stop();
  running = [];
});

async function twoServers(): Promise<Group> {
  const runtimes = new Map<ServerId, ServerRuntime>();
  const group = { holdRoutes: false, held: [] as Array<() => void>, routeQueriesFromS2: 0 } as Group;
  const peersOf = (self: ServerId) => ({
    send: (to: ServerId, message: PeerMessage, data: Buffer | null) => {
      if (self === 's2' && message.type === 'route.query') group.routeQueriesFromS2 += 1;
      const deliver = () => runtimes.get(to)?.receive(self, message, data);
      if (group.holdRoutes && to === 's2' && message.type === 'route.update') group.held.push(deliver);
      else setImmediate(deliver);
    },
  });
  for (const id of ['s1', 's2'] as const) {
    runtimes.set(id, new ServerRuntime({
      config: defaultNodeConfig(id, ['s1', 's2']), incarnation: 1, pages: memoryPages(),
      metadata: { load: () => ({ volumes: [], routes: [], replicas: [], moves: [] }), commit: async () => undefined },
      peers: peersOf(id), log: () => undefined,
    }));
  }
  running = [...runtimes.values()];
  for (const runtime of running) runtime.start();
  const s1 = runtimes.get('s1')!;
  const s2 = runtimes.get('s2')!;
  expect((await s1.createVolume(volume)).ok).toBe(true);
  for (let tries = 0; tries < 100 && !s2.state.volumes['v']; tries += 1) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(s2.state.volumes['v']).toBeDefined();
  return Object.assign(group, { s1, s2 });
}

/** Moves the page from `from` to `to` and waits until `from` has finished the move (its flip durable, its copy let go). */
async function moveAway(from: ServerRuntime, to: ServerId): Promise<void> {
  expect(await from.move(page, to, 'piecewise')).toMatchObject({ ok: true });
  await from.moveFinished(page);
}

describe('moving a page on from the server it has just arrived at', () => {
  it('waits until the source\'s route push lands, asks the source meanwhile, and then moves', async () => {
    const group = await twoServers();
    group.holdRoutes = true;
    await moveAway(group.s1, 's2');
    setTimeout(() => {
      group.holdRoutes = false;
      for (const deliver of group.held.splice(0)) deliver();
    }, 30);
    const startedMs = performance.now();
    const result = await group.s2.move(page, 's1', 'piecewise');
    expect(result).toMatchObject({ ok: true });
    expect(performance.now() - startedMs).toBeGreaterThanOrEqual(25);
    expect(group.routeQueriesFromS2).toBeGreaterThan(0);
  });

  it('passes the refusal on once the wait is over, if the route never comes', async () => {
    const group = await twoServers();
    group.holdRoutes = true;
    await moveAway(group.s1, 's2');
    const startedMs = performance.now();
    const result = await group.s2.move(page, 's1', 'piecewise');
    expect(result.ok).toBe(false);
    expect(result.message).toContain('has not yet learnt');
    expect(performance.now() - startedMs).toBeGreaterThanOrEqual(flipWaitMsMax);
  });

  it('answers at once when the server stops during the wait', async () => {
    const group = await twoServers();
    group.holdRoutes = true;
    await moveAway(group.s1, 's2');
    const waiting = group.s2.move(page, 's1', 'piecewise');
    setTimeout(() => group.s2.stop(), 20);
    const startedMs = performance.now();
    const result = await waiting;
    expect(result.ok).toBe(false);
    expect(performance.now() - startedMs).toBeLessThan(500);
  });
});
