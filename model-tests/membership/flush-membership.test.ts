import { describe, expect, it } from 'vitest';
import type { Membership } from '../../machines/membership/membership.js';
import { bootstrapMembership, changedMembership } from '../../machines/membership/membership.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { member, startedNode as startedNodeOf, stepThrough, threeServers, withUnflushedWrites } from './membership-fixture.js';

/**
 * A FLUSH barrier asks exactly the members holding a write it covers
 * (machines/node/flush-barrier.ts): a member holding none, down or not, does
 * not hold it up; a holder that cannot answer fails it after the retries; a
 * holder the server did not know as a member counts as lost (a false alarm,
 * never a pass).
 */
const alpha: VolumeDefinition = { name: 'alpha', pageCount: 6, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1', 's2', 's3'] };
const bootstrap = bootstrapMembership(threeServers.map((id) => member(id)));
const withS4 = changedMembership(bootstrap, { kind: 'add', member: member('s4') }) as Membership;
const startedNode = (self: string, membership: Membership) => startedNodeOf(self, [alpha], membership);
const flush: NodeInput = { type: 'client.flush', requestId: 'f', connectionId: 'c1', volume: 'alpha' };

/** Steps through the inputs, completing every sync and metadata commit as soon as it is issued. */
function run(state: NodeState, ...inputs: NodeInput[]): [NodeState, NodeEffect[]] {
  return stepThrough(state, inputs, (effect) => effect.type === 'data.sync' || effect.type === 'meta.commit');
}

function sent(effects: readonly NodeEffect[], type: PeerMessage['type']): Array<{ to: string; message: PeerMessage }> {
  return effects.flatMap((effect) => (effect.type === 'peer.send' && effect.message.type === type ? [{ to: effect.to, message: effect.message }] : []));
}

const flushReplies = (effects: readonly NodeEffect[]) => effects.filter((effect) => effect.type === 'client.reply');
const ok = { type: 'client.reply', requestId: 'f', outcome: { status: 'ok' }, dataToken: null };

describe('FLUSH barrier of the covered writes\' holders', () => {
  it('asks only the members holding a write it covers, and completes once they have synced (s2, holding none, is never asked)', () => {
    const s1 = withUnflushedWrites(startedNode('s1', bootstrap), 'alpha', [{ server: 's1', lossEpoch: 0 }, { server: 's3', lossEpoch: 0 }]);
    const [waiting, started] = run(s1, flush);
    expect(sent(started, 'flush.request')).toEqual([{ to: 's3', message: { type: 'flush.request', flushId: 's1:f', membershipEpoch: 0 } }]);
    expect(started.filter((effect) => effect.type === 'data.sync')).toHaveLength(1); // its own part
    expect(Object.values(waiting.flushes).map((entry) => entry.remaining)).toEqual([['s3']]);
    const [, s3Effects] = run(startedNode('s3', bootstrap), { type: 'peer.message', from: 's1', message: sent(started, 'flush.request')[0]!.message });
    const [done, effects] = run(waiting, { type: 'peer.message', from: 's3', message: sent(s3Effects, 'flush.done')[0]!.message });
    expect(flushReplies(effects)).toEqual([ok]);
    expect(done.flushes).toEqual({});
    expect(done.lossWatches['alpha']!.unflushed).toEqual([]);
  });

  it('answers at once, asking no one, when no write is unflushed', () => {
    const [done, effects] = run(startedNode('s1', bootstrap), flush);
    expect(effects.filter((effect) => effect.type === 'peer.send' || effect.type === 'data.sync')).toEqual([]);
    expect(flushReplies(effects)).toEqual([ok]);
    expect(done.flushes).toEqual({});
  });

  it('fails, naming it, once a holder that cannot answer has been asked peerRetriesMax times', () => {
    const s1 = withUnflushedWrites(startedNode('s1', bootstrap), 'alpha', [{ server: 's2', lossEpoch: 0 }]);
    let [state, effects] = run(s1, flush);
    const { peerRetriesMax } = defaultNodeConfig('s1', [...threeServers]);
    let asked = sent(effects, 'flush.request').length;
    for (let retry = 0; retry <= peerRetriesMax; retry += 1) {
      expect(flushReplies(effects)).toEqual([]);
      [state, effects] = run(state, { type: 'timer.fired', timerId: `flush|s1:f|${retry}` });
      asked += sent(effects, 'flush.request').length;
    }
    expect(asked).toBe(peerRetriesMax + 1);
    expect(flushReplies(effects)).toEqual([{ type: 'client.reply', requestId: 'f', outcome: { status: 'error', errno: 5, reason: 'flush not confirmed by s2' }, dataToken: null }]);
    expect(state.flushes).toEqual({});
  });

  it('counts as lost a holder it did not know as a member when the FLUSH began (a write relayed from a server it has not heard of)', () => {
    const s1 = withUnflushedWrites(startedNode('s1', bootstrap), 'alpha', [{ server: 's4', lossEpoch: 0 }]);
    const [, effects] = run(s1, flush);
    expect(sent(effects, 'flush.request')).toEqual([]);
    expect(flushReplies(effects)).toMatchObject([{ requestId: 'f', outcome: { status: 'error', errno: 5 } }]);
    // Knowing s4, it asks s4 and passes.
    const s1KnowingS4 = withUnflushedWrites(startedNode('s1', withS4), 'alpha', [{ server: 's4', lossEpoch: 0 }]);
    const [waiting, knowing] = run(s1KnowingS4, flush);
    expect(sent(knowing, 'flush.request').map((request) => request.to)).toEqual(['s4']);
    const [, s4Effects] = run(startedNode('s4', withS4), { type: 'peer.message', from: 's1', message: sent(knowing, 'flush.request')[0]!.message });
    expect(flushReplies(run(waiting, { type: 'peer.message', from: 's4', message: sent(s4Effects, 'flush.done')[0]!.message })[1])).toEqual([ok]);
  });

  it('a peer with a newer record answers the request with it, and its part counts at once', () => {
    const s1 = withUnflushedWrites(startedNode('s1', bootstrap), 'alpha', [{ server: 's2', lossEpoch: 0 }]);
    const [waiting, started] = run(s1, flush);
    const [, s2Effects] = run(startedNode('s2', withS4), { type: 'peer.message', from: 's1', message: sent(started, 'flush.request')[0]!.message });
    expect(sent(s2Effects, 'membership.update')).toEqual([{ to: 's1', message: { type: 'membership.update', membership: withS4 } }]);
    const [done, effects] = run(waiting, { type: 'peer.message', from: 's2', message: sent(s2Effects, 'flush.done')[0]!.message });
    expect(flushReplies(effects)).toEqual([ok]);
    expect(done.flushes).toEqual({});
  });
});
