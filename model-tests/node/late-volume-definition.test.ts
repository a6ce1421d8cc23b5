import { describe, expect, it } from 'vitest';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeEffect } from '../../machines/node/node-io.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, nodeStep } from '../../machines/node/node.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';

/**
 * A volume's definition and the route pushed by a move of one of its pages
 * travel on different links, so a server may learn the newer route first.
 * The definition must not take it back to epoch 1, in memory or on disk.
 */
describe('a volume definition that arrives after a route of its page', () => {
  it('keeps the newer route', () => {
    const config = { ...defaultNodeConfig('s3', ['s1', 's2', 's3']), traceTransitions: false };
    const volume: VolumeDefinition = { name: 'v', pageCount: 2, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1', 's2'] };
    let [state] = nodeStep(emptyNodeState(config, 1), { type: 'node.start', durable: initialDurableRecords([], 's3') });
    [state] = nodeStep(state, { type: 'peer.message', from: 's2', message: { type: 'route.update', pageKey: { volume: 'v', page: 0 }, owner: 's2', epoch: 2 } });
    expect(state.routes.get('v/0')).toEqual({ owner: 's2', epoch: 2 });
    let effects: NodeEffect[];
    [state, effects] = nodeStep(state, { type: 'peer.message', from: 's1', message: { type: 'volume.define', volume } });
    expect(state.volumes['v']).toEqual(volume);
    expect(state.routes.get('v/0'), 'the newer route stays').toEqual({ owner: 's2', epoch: 2 });
    expect(state.routes.get('v/1'), 'the other page takes its initial route').toEqual({ owner: 's2', epoch: 1 });
    const routeWrites = effects.flatMap((effect) => (effect.type === 'meta.commit' ? effect.writes : [])).filter((write) => write.kind === 'route');
    expect(routeWrites.map((write) => write.kind === 'route' && write.pageKey.page)).toEqual([1]);
  });
});
