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

/**
 * A volume definition is a commit nobody waits for. If it fails (the store
 * skips it and goes on, and the runtime says so with `meta.failed`), the
 * server would not know the volume after a restart, although it owns pages
 * of it; so it commits the definition again after a pause, with the records
 * of its pages that still stand as the definition set them.
 */
describe('a volume definition whose commit failed', () => {
  it('is committed again, without the records of pages that have moved since', () => {
    const config = { ...defaultNodeConfig('s1', ['s1', 's2']), traceTransitions: false };
    const volume: VolumeDefinition = { name: 'v', pageCount: 2, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1', 's2'] };
    let [state] = nodeStep(emptyNodeState(config, 1), { type: 'node.start', durable: initialDurableRecords([], 's1') });
    let effects: NodeEffect[];
    [state, effects] = nodeStep(state, { type: 'admin.createVolume', requestId: 'create', volume });
    const [definition] = effects.flatMap((effect) => (effect.type === 'meta.commit' && effect.writes.some((write) => write.kind === 'volume') ? [effect] : []));
    expect(definition?.completionId).toBeNull();
    // Page 1 (first owned by s2) moves on before the failure is known: its newer route must not be taken back.
    [state] = nodeStep(state, { type: 'peer.message', from: 's2', message: { type: 'route.update', pageKey: { volume: 'v', page: 1 }, owner: 's1', epoch: 2 } });
    [state, effects] = nodeStep(state, { type: 'meta.failed', writes: definition!.writes });
    const retry = effects.find((effect) => effect.type === 'timer.set');
    expect(retry?.type === 'timer.set' && retry.timerId).toBe('volume-definition|v|0');
    [state, effects] = nodeStep(state, { type: 'timer.fired', timerId: 'volume-definition|v|0' });
    const again = effects.flatMap((effect) => (effect.type === 'meta.commit' ? effect.writes : []));
    expect(again.map((write) => write.kind === 'volume' ? 'volume' : `${write.kind} ${'pageKey' in write ? write.pageKey.page : ''}`)).toEqual(['volume', 'route 0', 'replica 0']);
  });
});
