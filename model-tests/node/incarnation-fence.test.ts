import { describe, expect, it } from 'vitest';
import type { BlockOperation, PeerMessage } from '../../machines/node/messages.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, nodeStep } from '../../machines/node/node.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';

/**
 * The incarnation fence (machines/node/incarnation-fence.ts), both ends in the
 * node. A restarted server answers "cancelled" for a try it knows nothing of
 * only once every other member has confirmed its fence; a member confirms
 * once no forward (of the hop asked or more) or part of the earlier
 * incarnation is in hand, and drops any that arrive afterwards. The explorer
 * found the write landing after its client was told it failed without it
 * (explorer.test.ts, the forwarding pointer's server that crashed).
 */
const alpha: VolumeDefinition = { name: 'alpha', pageCount: 1, pageSizeBlocks: 4, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1'] };
const write: BlockOperation = { kind: 'write', pageKey: { volume: 'alpha', page: 0 }, offsetBlocks: 0, lengthBlocks: 1, fua: false };

/** A server started as `incarnation`; `earlierIncarnations` false: its first run (it needs no fence of its own). */
function started(self: string, incarnation: number, earlierIncarnations = true, members = ['s1', 's2', 's3']): NodeState {
  const [state] = nodeStep(emptyNodeState(defaultNodeConfig(self, members), incarnation), { type: 'node.start', durable: { ...initialDurableRecords([alpha], self), earlierIncarnations } });
  return state;
}

function step(state: NodeState, input: NodeInput): [NodeState, NodeEffect[]] {
  const [next, effects] = nodeStep(state, input);
  return [next, effects as NodeEffect[]];
}

const from = (server: string, message: PeerMessage): NodeInput => ({ type: 'peer.message', from: server, message });
const sent = (effects: readonly NodeEffect[], type: PeerMessage['type']) => effects.flatMap((effect) => (effect.type === 'peer.send' && effect.message.type === type ? [{ to: effect.to, ...effect.message }] : []));
const dataWrites = (effects: readonly NodeEffect[]) => effects.flatMap((effect) => (effect.type === 'data.write' ? [effect] : []));
const forwardFrom = (senderIncarnation: number, hopCount: number, requestId = 'p:s3:c:w1:0'): PeerMessage =>
  ({ type: 'request.forward', requestId, hopCount, retry: 0, operation: write, dataToken: `data-${requestId}`, senderIncarnation });

describe('a restarted server answers a cancel of a try unknown to it only behind its fence', () => {
  it('asks every other member, counts only confirmations of its own incarnation at the hop asked or lower, then answers', () => {
    let state = started('s2', 4);
    let effects: NodeEffect[];
    const cancel: PeerMessage = { type: 'request.cancel', requestId: 'c:w1', retry: 0, hopCount: 1 };
    [state, effects] = step(state, from('s3', cancel));
    expect(sent(effects, 'request.answer')).toEqual([]);
    expect(sent(effects, 'fence.raise')).toEqual([
      { to: 's1', type: 'fence.raise', incarnation: 4, hopCountMin: 2 },
      { to: 's3', type: 'fence.raise', incarnation: 4, hopCountMin: 2 },
    ]);
    // s1 confirms an earlier incarnation's fence (late), and s3 a fence at a higher hop only: neither counts.
    [state] = step(state, from('s1', { type: 'fence.confirmed', incarnation: 3, hopCountMin: 2 }));
    [state] = step(state, from('s3', { type: 'fence.confirmed', incarnation: 4, hopCountMin: 3 }));
    [state, effects] = step(state, from('s3', cancel));
    expect(sent(effects, 'request.answer')).toEqual([]);
    expect(sent(effects, 'fence.raise').map(({ to }) => to)).toEqual(['s1', 's3']);
    [state] = step(state, from('s1', { type: 'fence.confirmed', incarnation: 4, hopCountMin: 2 }));
    [state, effects] = step(state, from('s3', cancel));
    expect(sent(effects, 'fence.raise').map(({ to }) => to)).toEqual(['s3']);
    [state] = step(state, from('s3', { type: 'fence.confirmed', incarnation: 4, hopCountMin: 1 }));
    [state, effects] = step(state, from('s3', cancel));
    expect(sent(effects, 'fence.raise')).toEqual([]);
    expect(sent(effects, 'request.answer')).toEqual([expect.objectContaining({ to: 's3', requestId: 'c:w1', outcome: expect.objectContaining({ status: 'error', errno: 110 }) })]);
    // The try is remembered as cancelled: a late copy of it is answered so (ETIMEDOUT), not run or sent on (s2 holds
    // no copy of the page: a try it had not remembered would be answered stale).
    [, effects] = step(state, from('s3', forwardFrom(0, 1, 'c:w1')));
    expect(dataWrites(effects)).toEqual([]);
    expect(sent(effects, 'request.answer')).toEqual([expect.objectContaining({ to: 's3', requestId: 'c:w1', outcome: expect.objectContaining({ status: 'error', errno: 110 }) })]);
  });
});

describe('a first incarnation', () => {
  it('answers a cancel of a try unknown to it at once: no earlier incarnation can have passed it on', () => {
    const [state] = step(emptyNodeState(defaultNodeConfig('s2', ['s1', 's2', 's3']), 1), { type: 'node.start', durable: { ...initialDurableRecords([alpha], 's2'), earlierIncarnations: false } });
    const [, effects] = step(state, from('s3', { type: 'request.cancel', requestId: 'c:w1', retry: 0, hopCount: 1 }));
    expect(sent(effects, 'fence.raise')).toEqual([]);
    expect(sent(effects, 'request.answer')).toEqual([expect.objectContaining({ to: 's3', outcome: expect.objectContaining({ status: 'error', errno: 110 }) })]);
  });
});

describe('a member confirms a fence once nothing of the earlier incarnation it asks about is in hand', () => {
  it('waits for a forward of the earlier incarnation to be written, then confirms, and drops such forwards from then on', () => {
    let state = started('s1', 1, false);
    let effects: NodeEffect[];
    // s2's incarnation 3 forwarded s3's write here (hop 2), then s2 restarted as incarnation 4.
    [state, effects] = step(state, from('s2', forwardFrom(3, 2)));
    const [written] = dataWrites(effects);
    expect(written).toBeDefined();
    [state, effects] = step(state, from('s2', { type: 'fence.raise', incarnation: 4, hopCountMin: 2 }));
    expect(sent(effects, 'fence.confirmed')).toEqual([]);
    [state, effects] = step(state, { type: 'io.done', completionId: written!.completionId, ok: true });
    expect(sent(effects, 'request.answer')).toHaveLength(1);
    expect(sent(effects, 'fence.confirmed')).toEqual([{ to: 's2', type: 'fence.confirmed', incarnation: 4, hopCountMin: 2 }]);
    // Another forward of incarnation 3, late in a socket: dropped unanswered. One of incarnation 4 runs.
    [state, effects] = step(state, from('s2', forwardFrom(3, 2, 'p:s3:c:w2:0')));
    expect(effects).toEqual([{ type: 'token.release', token: 's2>data-p:s3:c:w2:0' }]);
    [, effects] = step(state, from('s2', forwardFrom(4, 2, 'p:s3:c:w3:0')));
    expect(dataWrites(effects)).toHaveLength(1);
  });

  it('confirms at once when what it holds of the earlier incarnation is below the hop asked about', () => {
    let state = started('s1', 1, false);
    let effects: NodeEffect[];
    [state, effects] = step(state, from('s2', forwardFrom(3, 2)));
    expect(dataWrites(effects)).toHaveLength(1);
    [state, effects] = step(state, from('s2', { type: 'fence.raise', incarnation: 4, hopCountMin: 3 }));
    expect(sent(effects, 'fence.confirmed')).toEqual([{ to: 's2', type: 'fence.confirmed', incarnation: 4, hopCountMin: 3 }]);
    // At hop 2 it does wait: a cancel of a try that reached s2 at hop 1 asks about s2's forwards of hop 2.
    [, effects] = step(state, from('s2', { type: 'fence.raise', incarnation: 4, hopCountMin: 2 }));
    expect(sent(effects, 'fence.confirmed')).toEqual([]);
  });

  it('confirms each hop asked on its own: a higher one at once while a lower one waits (two levels kept as one waited for ever)', () => {
    let state = started('s1', 1, false);
    let effects: NodeEffect[];
    [state, effects] = step(state, from('s2', forwardFrom(3, 2)));
    const [written] = dataWrites(effects);
    [state, effects] = step(state, from('s2', { type: 'fence.raise', incarnation: 4, hopCountMin: 2 }));
    expect(sent(effects, 'fence.confirmed')).toEqual([]);
    // The held forward's own cancel, if it timed out at s2, would ask about hop 3 and more: that is clear now.
    [state, effects] = step(state, from('s2', { type: 'fence.raise', incarnation: 4, hopCountMin: 4 }));
    expect(sent(effects, 'fence.confirmed')).toEqual([{ to: 's2', type: 'fence.confirmed', incarnation: 4, hopCountMin: 4 }]);
    [, effects] = step(state, { type: 'io.done', completionId: written!.completionId, ok: true });
    expect(sent(effects, 'fence.confirmed')).toEqual([{ to: 's2', type: 'fence.confirmed', incarnation: 4, hopCountMin: 2 }]);
  });

  it('restarted itself, confirms only once its own fence stands one hop higher: its own earlier run may have passed the try on', () => {
    // s1 restarted too (incarnation 2). Its first run may have forwarded s2's earlier try on, at hop 3 (a review's
    // trace: that forward landed after the client was told the write failed when s1 confirmed on what it held alone).
    let state = started('s1', 2);
    let effects: NodeEffect[];
    [state, effects] = step(state, from('s2', { type: 'fence.raise', incarnation: 4, hopCountMin: 2 }));
    expect(sent(effects, 'fence.confirmed')).toEqual([]);
    expect(sent(effects, 'fence.raise')).toEqual([
      { to: 's2', type: 'fence.raise', incarnation: 2, hopCountMin: 3 },
      { to: 's3', type: 'fence.raise', incarnation: 2, hopCountMin: 3 },
    ]);
    [state, effects] = step(state, from('s3', { type: 'fence.confirmed', incarnation: 2, hopCountMin: 3 }));
    expect(sent(effects, 'fence.confirmed')).toEqual([]);
    [, effects] = step(state, from('s2', { type: 'fence.confirmed', incarnation: 2, hopCountMin: 3 }));
    expect(sent(effects, 'fence.confirmed')).toEqual([{ to: 's2', type: 'fence.confirmed', incarnation: 4, hopCountMin: 2 }]);
    // Past the hop limit no forward exists: a fence asked there is confirmed on what is held here alone.
    const hopCountMax = state.config.hopCountMax;
    [, effects] = step(state, from('s2', { type: 'fence.raise', incarnation: 4, hopCountMin: hopCountMax + 1 }));
    expect(sent(effects, 'fence.confirmed')).toEqual([{ to: 's2', type: 'fence.confirmed', incarnation: 4, hopCountMin: hopCountMax + 1 }]);
    expect(sent(effects, 'fence.raise')).toEqual([]);
  });

  it('does not wait for a read of the earlier incarnation: it writes nothing', () => {
    let state = started('s1', 1, false);
    let effects: NodeEffect[];
    [state, effects] = step(state, from('s2', { type: 'request.forward', requestId: 'p:s3:c:r1:0', hopCount: 2, retry: 0, operation: { ...write, kind: 'read' }, dataToken: null, senderIncarnation: 3 }));
    expect(effects.some((effect) => effect.type === 'data.read')).toBe(true);
    [, effects] = step(state, from('s2', { type: 'fence.raise', incarnation: 4, hopCountMin: 2 }));
    expect(sent(effects, 'fence.confirmed')).toEqual([{ to: 's2', type: 'fence.confirmed', incarnation: 4, hopCountMin: 2 }]);
  });

  it('waits for a part of the earlier incarnation to be written, whatever the hop, and drops later parts', () => {
    // s1 receives page 0 of alpha from s2 (a move's destination): a part is a write s2 served as the move's source.
    const onS2: VolumeDefinition = { ...alpha, servers: ['s2'] };
    let state: NodeState;
    let effects: NodeEffect[];
    [state] = step(emptyNodeState(defaultNodeConfig('s1', ['s1', 's2', 's3']), 1), { type: 'node.start', durable: { ...initialDurableRecords([onS2], 's1'), earlierIncarnations: false } });
    const part = (senderIncarnation: number, requestId: string): PeerMessage => ({
      type: 'block.write', requestId, pageKey: write.pageKey, attempt: 1, epoch: 2, offsetBlocks: 0, lengthBlocks: 1, sequence: senderIncarnation * 2 ** 36 + 1, fua: false, dataToken: requestId, senderIncarnation,
    });
    [state, effects] = step(state, from('s2', part(3, 'c:w1')));
    const [written] = dataWrites(effects);
    expect(written).toBeDefined();
    [state, effects] = step(state, from('s2', { type: 'fence.raise', incarnation: 4, hopCountMin: 9 }));
    expect(sent(effects, 'fence.confirmed')).toEqual([]);
    [state, effects] = step(state, { type: 'io.done', completionId: written!.completionId, ok: true });
    expect(sent(effects, 'fence.confirmed')).toEqual([{ to: 's2', type: 'fence.confirmed', incarnation: 4, hopCountMin: 9 }]);
    [, effects] = step(state, from('s2', part(3, 'c:w2')));
    expect(effects).toEqual([{ type: 'token.release', token: 's2>c:w2' }]);
  });
});
