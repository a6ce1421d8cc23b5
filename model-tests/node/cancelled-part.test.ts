import { describe, expect, it } from 'vitest';
import type { BlockOperation, PeerMessage } from '../../machines/node/messages.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeEffect } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, nodeStep } from '../../machines/node/node.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import type { Action } from '../world/world.js';
import { applyAction, initialWorld } from '../world/world.js';

/**
 * The destination's side of a cancelled part (node.ts, `#cancelPart`), and a
 * copy of a forwarded try in hand, from a second review of the cancels (27
 * Nov): each case failed on the code it reviewed. A part is answered
 * "written" only by its own completion: judged from the block versions, a
 * part whose disk write had failed, and one half a version above the
 * destination's own write, were answered written although they never landed.
 */
/** The simulator's steps to a piecewise move of vol/0 from s1 to s2 whose piece 0 (block 0) is handed over. */
const prefix = {"config":{"servers":2,"pages":1,"pieces":2,"writes":2,"reads":1,"moves":1,"crashes":0,"networkFaults":0,"network":"unordered","moveKinds":["piecewise"],"forwardingPointer":false,"messagesMax":12,"timersOnlyWhenQuiet":false,"variant":null,"powerLoss":false,"earlyTimersMax":2},"actions":[{"type":"move.start","page":0,"to":1,"kind":"piecewise"},{"type":"persist","server":0},{"type":"deliver","index":0},{"type":"persist","server":1},{"type":"deliver","index":0},{"type":"deliver","index":0},{"type":"deliver","index":0},{"type":"persist","server":0},{"type":"persist","server":0},{"type":"deliver","index":0}]} as unknown as { config: never; actions: Action[] };
/** s2, the destination of a piecewise move of vol/0 whose piece 0 (block 0) is handed over (replayed through the simulator). */
function destination(): NodeState {
  let world = initialWorld(prefix.config);
  for (const action of prefix.actions) world = applyAction(world, action);
  return world.servers[1]!.node;
}
const pageKey = { volume: 'vol', page: 0 };
const fromS1 = (state: NodeState, message: PeerMessage): [NodeState, NodeEffect[]] => nodeStep(state, { type: 'peer.message', from: 's1', message }) as [NodeState, NodeEffect[]];
const written = (effects: readonly NodeEffect[]) => effects.flatMap((effect) => (effect.type === 'peer.send' && effect.message.type === 'block.written' ? [effect.message] : []));

describe('block.cancel at the destination', () => {
  it('a part whose disk write failed is answered cancelled, not written (its block versions were marked on receipt)', () => {
    let state = destination();
    let effects: NodeEffect[];
    [state, effects] = fromS1(state, { type: 'block.write', requestId: 'c:w9', pageKey, attempt: 1, epoch: 2, offsetBlocks: 0, lengthBlocks: 1, sequence: 1, fua: false, dataToken: 'client:w9', senderIncarnation: 0 });
    const write = effects.find((effect) => effect.type === 'data.write') as Extract<NodeEffect, { type: 'data.write' }>;
    expect(write).toBeDefined();
    [state, effects] = nodeStep(state, { type: 'io.done', completionId: write.completionId, ok: false }) as [NodeState, NodeEffect[]];
    expect(written(effects)).toEqual([expect.objectContaining({ ok: false })]);
    // The source leaves a failed part outstanding; at the forward time-out it asks to cancel it.
    [state, effects] = fromS1(state, { type: 'block.cancel', requestId: 'c:w9', pageKey, sequence: 1 });
    expect(written(effects)).toEqual([expect.objectContaining({ ok: false, cancelled: true })]);
  });

  it('a part newer than the destination\'s own write (version sequence - 0.5) that has not arrived is answered cancelled, and refused when it comes', () => {
    let state = destination();
    let effects: NodeEffect[];
    // The destination's own client writes block 0 (handed over): versioned 0.5, above the source sequence seen (0).
    [state, effects] = nodeStep(state, { type: 'client.request', requestId: 'w1', connectionId: 'review', operation: { kind: 'write', pageKey, offsetBlocks: 0, lengthBlocks: 1, fua: false } }) as [NodeState, NodeEffect[]];
    expect(effects.some((effect) => effect.type === 'data.write')).toBe(true);
    // The source's write of sequence 1 (newer than 0.5) to block 0: its part has not arrived; its cancel has.
    [state, effects] = fromS1(state, { type: 'block.cancel', requestId: 'c:w2', pageKey, sequence: 1 });
    expect(written(effects)).toEqual([expect.objectContaining({ ok: false, cancelled: true })]);
    [, effects] = fromS1(state, { type: 'block.write', requestId: 'c:w2', pageKey, attempt: 1, epoch: 2, offsetBlocks: 0, lengthBlocks: 1, sequence: 1, fua: false, dataToken: 'client:w2', senderIncarnation: 0 });
    expect(effects.some((effect) => effect.type === 'data.write')).toBe(false);
    expect(written(effects)).toEqual([expect.objectContaining({ ok: false, cancelled: true })]);
  });
});

describe('a copy of a forwarded try in hand, with no room for more requests', () => {
  const alpha: VolumeDefinition = { name: 'alpha', pageCount: 1, pageSizeBlocks: 4, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1'] };
  const write: BlockOperation = { kind: 'write', pageKey: { volume: 'alpha', page: 0 }, offsetBlocks: 0, lengthBlocks: 1, fua: false };
  const forward: PeerMessage = { type: 'request.forward', requestId: 'c:w1', hopCount: 1, retry: 0, operation: write, dataToken: 'write-data', senderIncarnation: 0 };
  it('is left to the try in hand, not answered EAGAIN (its sender would fail a write that then lands)', () => {
    let [state] = nodeStep(emptyNodeState(defaultNodeConfig('s1', ['s1', 's2']), 1), { type: 'node.start', durable: initialDurableRecords([alpha], 's1') });
    state = { ...state, config: { ...state.config, requestsInFlightMax: 1 } };
    let effects: NodeEffect[];
    [state, effects] = nodeStep(state, { type: 'peer.message', from: 's2', message: forward }) as [NodeState, NodeEffect[]];
    expect(effects.some((effect) => effect.type === 'data.write')).toBe(true);
    [, effects] = nodeStep(state, { type: 'peer.message', from: 's2', message: forward }) as [NodeState, NodeEffect[]];
    expect(effects.filter((effect) => effect.type === 'peer.send' && effect.message.type === 'request.answer')).toEqual([]);
  });
});
