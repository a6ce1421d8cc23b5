import { describe, expect, it } from 'vitest';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, nodeStep } from '../../machines/node/node.js';
import { PageMap, pageMapChunkEntriesMax } from '../../machines/node/page-map.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';

/**
 * A step never edits the state it started from, and the per-page records
 * (`routes`, one entry per page of every volume; `replicas`, one per copy
 * held) were plain objects copied whole by every step that changed one page:
 * 30 ms per route update at 65,536 pages, 224 ms at 262,144 (`npm run
 * bench:page-records`). A step that changes one page must now share all but
 * a chunk of the record with the state it started from, and leave that state
 * as it was. The check is structural (which chunks are the old ones), not
 * timed.
 */
const pageCount = 65_536;
const group = ['s1', 's2'];
const big: VolumeDefinition = { name: 'big', pageCount, pageSizeBlocks: 16, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1'] };
const incoming: VolumeDefinition = { name: 'incoming', pageCount: 4, pageSizeBlocks: 16, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s2'] };

function started(self: string): NodeState {
  const config = { ...defaultNodeConfig(self, group), traceTransitions: false };
  return nodeStep(emptyNodeState(config, 1), { type: 'node.start', durable: initialDurableRecords([big, incoming], self) })[0];
}

/** Asserts that `newer` is `older` with a chunk or two replaced: an edit, not a copy. */
function expectEditedInPlaceOfCopied<V>(older: PageMap<V>, newer: PageMap<V>): void {
  const sharing = PageMap.sharing(older, newer);
  expect(sharing.chunks, 'the record is cut into many chunks').toBeGreaterThan(100);
  expect(sharing.chunks - sharing.shared, 'chunks not shared with the old record').toBeLessThanOrEqual(2);
  expect(sharing.entriesNotShared, 'entries copied').toBeLessThanOrEqual(pageMapChunkEntriesMax + 1);
}

describe(`a step that changes one page's record of a ${pageCount}-page volume`, () => {
  it('shares all but a chunk of the routes when it updates one route', () => {
    const state = started('s2');
    expect(state.routes.size).toBe(pageCount + incoming.pageCount);
    const input: NodeInput = { type: 'peer.message', from: 's1', message: { type: 'route.update', pageKey: { volume: 'big', page: 4242 }, owner: 's1', epoch: 2 } };
    const [next, effects] = nodeStep(state, input);
    expect(next.routes.get('big/4242')).toEqual({ owner: 's1', epoch: 2 });
    expect(effects.some((effect) => effect.type === 'meta.commit' && effect.writes.some((write) => write.kind === 'route'))).toBe(true);
    expectEditedInPlaceOfCopied(state.routes, next.routes);
    expect(next.replicas, 'a record the step did not change is the same object').toBe(state.replicas);
    expect(state.routes.get('big/4242'), 'the state the step started from is unchanged').toEqual({ owner: 's1', epoch: 1 });
  });

  it('shares all but a chunk of the replicas when it starts receiving one page', () => {
    const state = started('s1');
    expect(state.replicas.size).toBe(pageCount);
    const input: NodeInput = {
      type: 'peer.message', from: 's2',
      message: { type: 'piece.copy', pageKey: { volume: 'incoming', page: 1 }, attempt: 1, epoch: 2, piece: 0, offsetBlocks: 0, lengthBlocks: incoming.pageSizeBlocks, sequence: 1, handedOverBlocks: 0, sourceSequence: 1, dataToken: 't1' },
    };
    const [next] = nodeStep(state, input);
    expect(next.replicas.get('incoming/1')?.context.record?.status).toBe('receiving');
    expectEditedInPlaceOfCopied(state.replicas, next.replicas);
    expect(next.routes, 'a record the step did not change is the same object').toBe(state.routes);
    expect(state.replicas.has('incoming/1'), 'the state the step started from is unchanged').toBe(false);
  });
});
