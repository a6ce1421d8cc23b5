import { afterEach, describe, expect, it } from 'vitest';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { MetadataWrite } from '../../machines/node/node-io.js';
import { ServerRuntime } from './server-runtime.js';

/**
 * A commit nobody waits for that only records a route is held back, then
 * handed to the store ahead of the next commit in the same turn, or alone
 * once its delay runs out, or on stop
 * (server-runtime.ts, "Lazy commits"). Commits that are not lazy are never
 * held, and nothing overtakes a held commit.
 */
const delayMs = 40;

function recordingRuntime(): { runtime: ServerRuntime; handed: Array<{ kinds: string; turn: number }>; nextTurn: () => void } {
  const handed: Array<{ kinds: string; turn: number }> = [];
  let turn = 0;
  const runtime = new ServerRuntime({
    config: { ...defaultNodeConfig('s1', ['s1', 's2']), traceTransitions: false },
    incarnation: 1,
    pages: { read: async () => Buffer.alloc(0), write: async () => undefined, sync: async () => undefined, delete: async () => undefined },
    metadata: {
      load: () => ({ volumes: [], routes: [], replicas: [], moves: [] }),
      commit: async (writes: readonly MetadataWrite[]) => {
        handed.push({ kinds: writes.map((write) => write.kind).join('+'), turn });
      },
    },
    peers: { send: () => undefined },
    log: () => undefined,
    lazyCommitDelayMs: delayMs,
  });
  return { runtime, handed, nextTurn: () => { turn += 1; } };
}

let stopLater: ServerRuntime | null = null;
afterEach(() => stopLater?.stop());

describe('lazy commits', () => {
  it('hold a learnt route until the next commit, which it precedes in the same turn', async () => {
    const { runtime, handed, nextTurn } = recordingRuntime();
    stopLater = runtime;
    runtime.start();
    expect((await runtime.createVolume({ name: 'v', pageCount: 2, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1', 's2'] })).ok).toBe(true);
    // The volume's definition (volume, routes and replica records) is never held.
    expect(handed.map((commit) => commit.kinds)).toEqual(['volume+route+replica+route']);

    nextTurn();
    runtime.receive('s2', { type: 'route.update', pageKey: { volume: 'v', page: 0 }, owner: 's2', epoch: 5 }, null);
    expect(handed, 'the learnt route is held').toHaveLength(1);
    expect(runtime.state.routes.get('v/0'), 'the node knows it at once').toEqual({ owner: 's2', epoch: 5 });

    nextTurn();
    expect((await runtime.createVolume({ name: 'w', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1'] })).ok).toBe(true);
    expect(handed.slice(1), 'the held route goes first, in the same turn as the next commit').toEqual([
      { kinds: 'route', turn: 2 }, { kinds: 'volume+route+replica', turn: 2 },
    ]);
  });

  it('hand a held route to the store alone once the delay runs out, and on stop', async () => {
    const { runtime, handed } = recordingRuntime();
    runtime.start();
    expect((await runtime.createVolume({ name: 'v', pageCount: 2, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1', 's2'] })).ok).toBe(true);
    runtime.receive('s2', { type: 'route.update', pageKey: { volume: 'v', page: 0 }, owner: 's2', epoch: 5 }, null);
    runtime.receive('s2', { type: 'route.update', pageKey: { volume: 'v', page: 1 }, owner: 's1', epoch: 6 }, null);
    expect(handed).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, delayMs * 3));
    expect(handed.slice(1).map((commit) => commit.kinds), 'both held routes went once the delay ran out, in order').toEqual(['route', 'route']);

    runtime.receive('s2', { type: 'route.update', pageKey: { volume: 'v', page: 0 }, owner: 's1', epoch: 7 }, null);
    expect(handed).toHaveLength(3);
    runtime.stop();
    expect(handed.map((commit) => commit.kinds), 'stop hands over what is held').toHaveLength(4);
  });
});
