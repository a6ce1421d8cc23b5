import { describe, expect, it } from 'vitest';
import type { Membership } from '../../machines/membership/membership.js';
import { bootstrapMembership, changedMembership } from '../../machines/membership/membership.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { afterFirstBarrier, member, startedNode as startedNodeOf, stepThrough, threeServers, withUnflushedWrites } from './membership-fixture.js';

/**
 * A FLUSH barrier asks the servers holding a write it covers
 * (machines/node/flush-barrier.ts): a member holding none, down or not, does
 * not hold it up; a holder that cannot answer fails it after the retries; a
 * holder the server does not know as a member yet is asked all the same. The
 * first barrier after a start asks every member: the holders of what earlier
 * runs acknowledged are forgotten.
 */
const alpha: VolumeDefinition = { name: 'alpha', pageCount: 6, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1', 's2', 's3'] };
const bootstrap = bootstrapMembership(threeServers.map((id) => member(id)));
const withS4 = changedMembership(bootstrap, { kind: 'add', member: member('s4') }) as Membership;
const startedNode = (self: string, membership: Membership) => startedNodeOf(self, [alpha], membership);
/** s1 past its first barrier since it started, with `holders` holding writes it acknowledged. */
const s1Holding = (membership: Membership, ...holders: string[]) => withUnflushedWrites(afterFirstBarrier(startedNode('s1', membership)), 'alpha', holders.map((server) => ({ server, lossEpoch: 0 })));
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
  it('asks every member first after a start, as the holders of earlier runs\' writes are forgotten, and then only the holders', () => {
    // A review's reproduction: s1 acknowledged a write that s2 applied and did not sync, and restarted (kill -9, same
    // boot); its watch is empty. The FLUSH on the client's new connection asked no one and answered ok, and a power cut
    // of s2 then took the write.
    const restarted = startedNode('s1', bootstrap);
    expect(restarted.earlierRunsSynced).toBe(false);
    const [first, asked] = run(restarted, flush);
    expect(sent(asked, 'flush.request').map((request) => request.to)).toEqual(['s2', 's3']);
    expect(asked.filter((effect) => effect.type === 'data.sync')).toHaveLength(1);
    const done = (state: NodeState, effects: readonly NodeEffect[], from: string) => {
      const [, answer] = run(startedNode(from, bootstrap), { type: 'peer.message', from: 's1', message: sent(effects, 'flush.request').find((request) => request.to === from)!.message });
      return run(state, { type: 'peer.message', from, message: sent(answer, 'flush.done')[0]!.message });
    };
    const [afterS2] = done(first, asked, 's2');
    expect(afterS2.earlierRunsSynced).toBe(false);
    const [synced, answered] = done(afterS2, asked, 's3');
    expect(flushReplies(answered)).toEqual([ok]);
    expect(synced.earlierRunsSynced).toBe(true);
    // From then on, a FLUSH with nothing unflushed asks no one.
    expect(sent(run(synced, { ...flush, requestId: 'g' })[1], 'flush.request')).toEqual([]);
  });

  it('asks only the members holding a write it covers, and completes once they have synced (s2, holding none, is never asked)', () => {
    const s1 = s1Holding(bootstrap, 's1', 's3');
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
    const [done, effects] = run(afterFirstBarrier(startedNode('s1', bootstrap)), flush);
    expect(effects.filter((effect) => effect.type === 'peer.send' || effect.type === 'data.sync')).toEqual([]);
    expect(flushReplies(effects)).toEqual([ok]);
    expect(done.flushes).toEqual({});
  });

  it('fails, naming it, once a holder that cannot answer has been asked peerRetriesMax times', () => {
    let [state, effects] = run(s1Holding(bootstrap, 's2'), flush);
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

  it('asks a holder it does not know as a member yet (a write relayed from a server that joined since), and passes once it has answered', () => {
    // It counted such a holder as lost at once: a false EIO "in a power cut of s4", and the entry dropped unsynced.
    const [waiting, started] = run(s1Holding(bootstrap, 's4'), flush);
    expect(sent(started, 'flush.request').map((request) => request.to)).toEqual(['s4']);
    expect(flushReplies(started)).toEqual([]);
    // Learning the record that names s4 (the runtime can reach it only then) asks it again at once.
    const [learnt, learning] = run(waiting, { type: 'peer.message', from: 's2', message: { type: 'membership.update', membership: withS4 } });
    expect(sent(learning, 'flush.request').map((request) => request.to)).toEqual(['s4']);
    const [, s4Effects] = run(startedNode('s4', withS4), { type: 'peer.message', from: 's1', message: sent(learning, 'flush.request')[0]!.message });
    expect(flushReplies(run(learnt, { type: 'peer.message', from: 's4', message: sent(s4Effects, 'flush.done')[0]!.message })[1])).toEqual([ok]);
  });

  it('a peer with a newer record answers the request with it, and its part counts at once', () => {
    const [waiting, started] = run(s1Holding(bootstrap, 's2'), flush);
    const [, s2Effects] = run(startedNode('s2', withS4), { type: 'peer.message', from: 's1', message: sent(started, 'flush.request')[0]!.message });
    expect(sent(s2Effects, 'membership.update')).toEqual([{ to: 's1', message: { type: 'membership.update', membership: withS4 } }]);
    const [done, effects] = run(waiting, { type: 'peer.message', from: 's2', message: sent(s2Effects, 'flush.done')[0]!.message });
    expect(flushReplies(effects)).toEqual([ok]);
    expect(done.flushes).toEqual({});
  });
});
