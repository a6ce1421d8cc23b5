import { afterEach, describe, expect, it } from 'vitest';
import type { PageKey, ServerId } from '../../machines/identifiers.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { memoryPages } from './memory-pages.js';
import type { PageData } from './server-runtime.js';
import { ServerRuntime } from './server-runtime.js';

/**
 * A destination acknowledges a copied chunk once it is written, not synced
 * (machines/node/node.ts, #receivePiece): the unit move's commit syncs the
 * page before the destination owns it. The write carries `startWriteback`,
 * and the TCP runtime then starts a sync of the page at once, with nobody
 * waiting, so the commit's sync finds the bytes written back. Two runtimes
 * over an in-memory network; each of the destination's page syncs takes a
 * few event-loop turns, and one log orders its writes, its syncs and the
 * messages between the two.
 */
const volume: VolumeDefinition = { name: 'v', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1'] };
const page = { volume: 'v', page: 0 };

/**
 * The page data of `memoryPages`, its writes and page syncs logged; a page sync takes `syncTurns` turns. With
 * `writesAtOnce`, writes to an open page are made at once (`writeNow`, as the page store makes most of a copy's
 * chunks); without, every write takes the asynchronous path.
 */
function loggedPages(log: string[], syncTurns: number, writesAtOnce: boolean): PageData {
  const pages = memoryPages();
  return {
    ...(writesAtOnce ? {
      writeNow: (pageKey: PageKey, offsetBlocks: number, data: Buffer, blockSizeBytes: number) => {
        log.push(`write ${offsetBlocks}`);
        return pages.writeNow!(pageKey, offsetBlocks, data, blockSizeBytes);
      },
    } : {}),
    read: (pageKey, offsetBlocks, lengthBlocks, blockSize) => pages.read(pageKey, offsetBlocks, lengthBlocks, blockSize),
    write: async (pageKey, offsetBlocks, data, blockSize, durable) => {
      log.push(`write ${offsetBlocks}`);
      await pages.write(pageKey, offsetBlocks, data, blockSize, durable);
    },
    sync: async (pageKey: PageKey | null) => {
      // The sync of every page a server makes as it starts is not logged.
      if (pageKey === null) return pages.sync(pageKey);
      log.push('sync start');
      await turns(syncTurns);
      await pages.sync(pageKey);
      log.push('sync end');
    },
    delete: (pageKey) => pages.delete(pageKey),
  };
}

let running: ServerRuntime[] = [];
afterEach(() => {
  for (const runtime of running) runtime.stop();
  running = [];
});

async function turns(count: number): Promise<void> {
  for (let turn = 0; turn < count; turn += 1) await new Promise((resolve) => setImmediate(resolve));
}

describe('a copied chunk at the destination of a unit move', () => {
  it.each([['written at once (writeNow)', true], ['written asynchronously', false]])('%s: is acknowledged once written, a sync of its page starts at once, and the commit waits for a sync it asked for', async (_name, writesAtOnce) => {
    const log: string[] = [];
    const runtimes = new Map<ServerId, ServerRuntime>();
    for (const id of ['s1', 's2'] as const) {
      runtimes.set(id, new ServerRuntime({
        config: defaultNodeConfig(id, ['s1', 's2']),
        incarnation: 1,
        pages: id === 's2' ? loggedPages(log, 30, writesAtOnce) : memoryPages(),
        metadata: { load: () => ({ volumes: [], routes: [], replicas: [], moves: [] }), commit: async () => undefined },
        peers: {
          send: (to: ServerId, message: PeerMessage, data: Buffer | null) => {
            if (['piece.copy', 'piece.stored', 'move.commit', 'move.committed'].includes(message.type)) log.push(`${id}→${to} ${message.type}`);
            setImmediate(() => runtimes.get(to)?.receive(id, message, data));
          },
        },
        log: () => undefined,
      }));
    }
    running = [...runtimes.values()];
    for (const runtime of running) runtime.start();
    const s1 = runtimes.get('s1')!;
    const s2 = runtimes.get('s2')!;
    expect((await s1.createVolume(volume)).ok).toBe(true);
    for (let tries = 0; tries < 100 && !s2.state.volumes['v']; tries += 1) await new Promise((resolve) => setTimeout(resolve, 5));

    expect(await s1.move(page, 's2', 'unit')).toMatchObject({ ok: true });
    await s1.moveFinished(page);
    expect(s2.state.replicas.get('v/0')?.context.record?.status).toBe('valid');

    // The page (8 blocks, memoryPages' size) is one chunk: written, acknowledged before any sync of it ends, and a sync
    // of it started before the source asks for the commit (the writeback nobody waits for).
    const at = (entry: string, from = 0) => log.indexOf(entry, from);
    expect(log.filter((entry) => entry === 's1→s2 piece.copy')).toHaveLength(1);
    expect(at('write 0')).toBeGreaterThan(at('s1→s2 piece.copy'));
    expect(at('s2→s1 piece.stored')).toBeGreaterThan(at('write 0'));
    expect(at('s2→s1 piece.stored')).toBeLessThan(at('sync end'));
    const commitAsked = at('s1→s2 move.commit');
    expect(at('sync start')).toBeGreaterThan(at('write 0'));
    expect(at('sync start')).toBeLessThan(commitAsked);
    // The commit starts a sync of its own and answers only once that one has ended.
    expect(commitAsked).toBeGreaterThan(at('s2→s1 piece.stored'));
    const commitSync = at('sync start', commitAsked);
    expect(commitSync).toBeGreaterThan(commitAsked);
    const committed = at('s2→s1 move.committed');
    expect(committed).toBeGreaterThan(at('sync end', commitSync));
  });
});
