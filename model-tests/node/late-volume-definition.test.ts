import { describe, expect, it } from 'vitest';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeEffect } from '../../machines/node/node-io.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, nodeStep, volumesMax } from '../../machines/node/node.js';
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
 * The administrator is answered once the definition is durable on the server
 * it asked; a failed commit there is tried again after a pause, and answered
 * when one succeeds. The other members define the volume as it reaches them,
 * without waiting: if one of those commits fails (the store skips it and goes
 * on, and the runtime says so with `meta.failed`) the member would not know
 * the volume after a restart, although it owns pages of it; so it commits the
 * definition again after a pause, with the records of its pages that still
 * stand as the definition set them.
 */
describe('a volume definition', () => {
  const volume: VolumeDefinition = { name: 'v', pageCount: 2, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1', 's2'] };
  const definitionCommit = (effects: readonly NodeEffect[]) => effects.find((effect): effect is Extract<NodeEffect, { type: 'meta.commit' }> => effect.type === 'meta.commit' && effect.writes.some((write) => write.kind === 'volume'));
  const adminReplies = (effects: readonly NodeEffect[]) => effects.filter((effect) => effect.type === 'admin.reply');

  it('is answered to the administrator only once durable, and committed again after a failure', () => {
    const config = { ...defaultNodeConfig('s1', ['s1', 's2']), traceTransitions: false };
    let [state] = nodeStep(emptyNodeState(config, 1), { type: 'node.start', durable: initialDurableRecords([], 's1') });
    let effects: NodeEffect[];
    [state, effects] = nodeStep(state, { type: 'admin.createVolume', requestId: 'create', volume });
    // The name is reserved on s2 first (volume-reservation.ts); its grant lets the definition go ahead.
    const reserve = effects.find((effect) => effect.type === 'peer.send' && effect.to === 's2' && effect.message.type === 'volume.reserve');
    expect(reserve).toBeDefined();
    const reservationId = reserve?.type === 'peer.send' && reserve.message.type === 'volume.reserve' ? reserve.message.reservationId : '';
    [state, effects] = nodeStep(state, { type: 'peer.message', from: 's2', message: { type: 'volume.reserveAnswer', name: volume.name, reservationId, granted: true, reason: null } });
    expect(adminReplies(effects)).toEqual([]);
    expect(effects.some((effect) => effect.type === 'peer.send' && effect.to === 's2' && effect.message.type === 'volume.define')).toBe(true);
    const first = definitionCommit(effects);
    expect(first?.completionId).not.toBeNull();
    [state, effects] = nodeStep(state, { type: 'io.done', completionId: first!.completionId!, ok: false });
    expect(adminReplies(effects)).toEqual([]);
    const retry = effects.find((effect) => effect.type === 'timer.set');
    expect(retry?.type === 'timer.set' && retry.timerId).toBe('volume-definition|v|create');
    [state, effects] = nodeStep(state, { type: 'timer.fired', timerId: 'volume-definition|v|create' });
    const again = definitionCommit(effects);
    expect(again?.completionId).not.toBeNull();
    [state, effects] = nodeStep(state, { type: 'io.done', completionId: again!.completionId!, ok: true });
    expect(adminReplies(effects)).toEqual([{ type: 'admin.reply', requestId: 'create', ok: true, message: 'volume v created: 2 pages over s1, s2' }]);
  });

  it('is committed again by a member whose commit failed, without the records of pages that have moved since', () => {
    const config = { ...defaultNodeConfig('s2', ['s1', 's2']), traceTransitions: false };
    let [state] = nodeStep(emptyNodeState(config, 1), { type: 'node.start', durable: initialDurableRecords([], 's2') });
    let effects: NodeEffect[];
    [state, effects] = nodeStep(state, { type: 'peer.message', from: 's1', message: { type: 'volume.define', volume } });
    const definition = definitionCommit(effects);
    expect(definition?.completionId).toBeNull();
    // Page 0 (first owned by s1) moves on before the failure is known: its newer route must not be taken back.
    [state] = nodeStep(state, { type: 'peer.message', from: 's1', message: { type: 'route.update', pageKey: { volume: 'v', page: 0 }, owner: 's2', epoch: 2 } });
    [state, effects] = nodeStep(state, { type: 'meta.failed', writes: definition!.writes });
    const retry = effects.find((effect) => effect.type === 'timer.set');
    expect(retry?.type === 'timer.set' && retry.timerId).toBe('volume-definition|v|0');
    [state, effects] = nodeStep(state, { type: 'timer.fired', timerId: 'volume-definition|v|0' });
    const again = definitionCommit(effects);
    expect(again?.completionId).toBeNull();
    expect(again!.writes.map((write) => write.kind === 'volume' ? 'volume' : `${write.kind} ${'pageKey' in write ? write.pageKey.page : ''}`)).toEqual(['volume', 'route 1', 'replica 1']);
    expect(adminReplies(effects)).toEqual([]);
  });
});

/**
 * Volumes are lazy like routes and membership: with each announcement a
 * server names the volumes it knows, and a member that knows one it lacks
 * sends the definition. So a server whose definition a crash took (or that
 * was down when the volume was created) learns it back.
 */
describe('volume anti-entropy', () => {
  const volume: VolumeDefinition = { name: 'v', pageCount: 2, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1', 's2'] };

  it('gives a definition back to a member that restarted without it', () => {
    const knowing = { ...defaultNodeConfig('s1', ['s1', 's2']), traceTransitions: false };
    const forgetting = { ...defaultNodeConfig('s2', ['s1', 's2']), traceTransitions: false };
    let [s1] = nodeStep(emptyNodeState(knowing, 1), { type: 'node.start', durable: initialDurableRecords([volume], 's1') });
    let [s2] = nodeStep(emptyNodeState(forgetting, 2), { type: 'node.start', durable: initialDurableRecords([], 's2') });
    let effects: NodeEffect[];
    [s2, effects] = nodeStep(s2, { type: 'membership.announce' });
    const announced = effects.flatMap((effect) => (effect.type === 'peer.send' && effect.message.type === 'volumes.known' ? [effect] : []));
    expect(announced.map((effect) => [effect.to, effect.message])).toEqual([['s1', { type: 'volumes.known', names: [] }]]);
    [s1, effects] = nodeStep(s1, { type: 'peer.message', from: 's2', message: announced[0]!.message });
    const definitions = effects.flatMap((effect) => (effect.type === 'peer.send' && effect.message.type === 'volume.define' ? [effect] : []));
    expect(definitions.map((effect) => effect.to)).toEqual(['s2']);
    [s2] = nodeStep(s2, { type: 'peer.message', from: 's1', message: definitions[0]!.message });
    expect(s2.volumes['v']).toEqual(volume);
    expect(s2.routes.get('v/1')).toEqual({ owner: 's2', epoch: 1 });

    // Once both know it, announcements carry nothing more.
    [s1, effects] = nodeStep(s1, { type: 'peer.message', from: 's2', message: { type: 'volumes.known', names: ['v'] } });
    expect(effects.filter((effect) => effect.type === 'peer.send')).toEqual([]);
  });

  it('sends the routes of moved pages before the definition, so a member starting afresh does not claim pages its layout gave it that moved away', () => {
    const knowing = { ...defaultNodeConfig('s1', ['s1', 's2']), traceTransitions: false };
    const fresh = { ...defaultNodeConfig('s2', ['s1', 's2']), traceTransitions: false };
    let [s1] = nodeStep(emptyNodeState(knowing, 1), { type: 'node.start', durable: initialDurableRecords([volume], 's1') });
    // v/1, s2's by the layout, has moved to s1 (epoch 2); s2 comes back with a fresh directory (forgotten and added again).
    [s1] = nodeStep(s1, { type: 'peer.message', from: 's2', message: { type: 'route.update', pageKey: { volume: 'v', page: 1 }, owner: 's1', epoch: 2 } });
    let [s2] = nodeStep(emptyNodeState(fresh, 3), { type: 'node.start', durable: initialDurableRecords([], 's2') });
    let effects: NodeEffect[];
    [s1, effects] = nodeStep(s1, { type: 'peer.message', from: 's2', message: { type: 'volumes.known', names: [] } });
    const sent = effects.flatMap((effect) => (effect.type === 'peer.send' && effect.to === 's2' ? [effect.message] : []));
    expect(sent.map((message) => message.type)).toEqual(['route.update', 'volume.define']);
    for (const message of sent) [s2] = nodeStep(s2, { type: 'peer.message', from: 's1', message });
    expect(s2.volumes['v']).toEqual(volume);
    // A valid copy of v/1 here would be a second owner (a review's `status` showed two), of a page s2 holds no data of.
    expect(s2.replicas.get('v/1')).toBeUndefined();
    expect(s2.routes.get('v/1')).toEqual({ owner: 's1', epoch: 2 });
  });

  it('sends nothing to a server outside the group', () => {
    const config = { ...defaultNodeConfig('s1', ['s1', 's2']), traceTransitions: false };
    const [s1] = nodeStep(emptyNodeState(config, 1), { type: 'node.start', durable: initialDurableRecords([volume], 's1') });
    const [, effects] = nodeStep(s1, { type: 'peer.message', from: 's9', message: { type: 'volumes.known', names: [] } });
    expect(effects.filter((effect) => effect.type === 'peer.send')).toEqual([]);
  });
});

describe('the number of volumes', () => {
  it('is bounded: a group holding volumesMax refuses another, and an announcement naming more is ignored', () => {
    const config = { ...defaultNodeConfig('s1', ['s1', 's2']), traceTransitions: false };
    const volumes: VolumeDefinition[] = Array.from({ length: volumesMax }, (_, index) => ({ name: `v${index}`, pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1'] }));
    const [state] = nodeStep(emptyNodeState(config, 1), { type: 'node.start', durable: initialDurableRecords(volumes, 's1') });
    const [, refused] = nodeStep(state, { type: 'admin.createVolume', requestId: 'one-more', volume: { ...volumes[0]!, name: 'one-more' } });
    expect(refused).toEqual([{ type: 'admin.reply', requestId: 'one-more', ok: false, message: `the group holds ${volumesMax} volumes, the most it may` }]);
    const [, ignored] = nodeStep(state, { type: 'peer.message', from: 's2', message: { type: 'volumes.known', names: Array.from({ length: volumesMax + 1 }, (_, index) => `w${index}`) } });
    expect(ignored.filter((effect) => effect.type === 'peer.send')).toEqual([]);
  });
});
