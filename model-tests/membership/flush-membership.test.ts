import { describe, expect, it } from 'vitest';
import type { Membership } from '../../machines/membership/membership.js';
import { bootstrapMembership, changedMembership } from '../../machines/membership/membership.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { member, startedNode as startedNodeOf, stepThrough, threeServers } from './membership-fixture.js';

/**
 * A FLUSH must sync every member that may hold data, including one the
 * flushing server has not heard of yet: a peer that knows a newer record
 * answers the flush request with it, and the barrier then waits for the new
 * members as well.
 */
const alpha: VolumeDefinition = { name: 'alpha', pageCount: 6, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1', 's2', 's3'] };
const bootstrap = bootstrapMembership(threeServers.map((id) => member(id)));
const withS4 = changedMembership(bootstrap, { kind: 'add', member: member('s4') }) as Membership;
const startedNode = (self: string, membership: Membership) => startedNodeOf(self, [alpha], membership);

/** Steps through the inputs, completing every sync and metadata commit as soon as it is issued. */
function run(state: NodeState, ...inputs: NodeInput[]): [NodeState, NodeEffect[]] {
  return stepThrough(state, inputs, (effect) => effect.type === 'data.sync' || effect.type === 'meta.commit');
}

function sent(effects: readonly NodeEffect[], type: PeerMessage['type']): Array<{ to: string; message: PeerMessage }> {
  return effects.flatMap((effect) => (effect.type === 'peer.send' && effect.message.type === type ? [{ to: effect.to, message: effect.message }] : []));
}

const flushReplies = (effects: readonly NodeEffect[]) => effects.filter((effect) => effect.type === 'client.reply');

describe('FLUSH under a membership change', () => {
  it('a peer with a newer record answers with it, and the barrier completes only once the member it names has synced', () => {
    // s1 has not heard that s4 joined (s4 may already hold pages moved to it by s2).
    const [s1Flushing, started] = run(startedNode('s1', bootstrap), { type: 'client.flush', requestId: 'f', connectionId: 'c1', volume: 'alpha' });
    const requests = sent(started, 'flush.request');
    expect(requests.map((request) => request.to)).toEqual(['s2', 's3']);
    expect(requests[0]!.message).toEqual({ type: 'flush.request', flushId: 's1:f', membershipEpoch: 0 });

    const [, s2Effects] = run(startedNode('s2', withS4), { type: 'peer.message', from: 's1', message: requests[0]!.message });
    expect(sent(s2Effects, 'membership.update')).toEqual([{ to: 's1', message: { type: 'membership.update', membership: withS4 } }]);
    const s2Done = sent(s2Effects, 'flush.done')[0]!.message;
    const [, s3Effects] = run(startedNode('s3', bootstrap), { type: 'peer.message', from: 's1', message: requests[1]!.message });
    expect(sent(s3Effects, 'membership.update')).toEqual([]);
    const s3Done = sent(s3Effects, 'flush.done')[0]!.message;

    // s1 learns the record (before s2's done, which travels behind it on the same connection), then hears s2 and s3.
    const [s1Waiting, learnt] = run(s1Flushing,
      { type: 'peer.message', from: 's2', message: { type: 'membership.update', membership: withS4 } },
      { type: 'peer.message', from: 's2', message: s2Done }, { type: 'peer.message', from: 's3', message: s3Done });
    expect(sent(learnt, 'flush.request').map((request) => request.to)).toEqual(['s4']);
    expect(flushReplies(learnt)).toEqual([]);
    expect(Object.values(s1Waiting.flushes).map((flush) => flush.remaining)).toEqual([['s4']]);

    const [, s4Effects] = run(startedNode('s4', withS4), { type: 'peer.message', from: 's1', message: sent(learnt, 'flush.request')[0]!.message });
    const [s1Done, done] = run(s1Waiting, { type: 'peer.message', from: 's4', message: sent(s4Effects, 'flush.done')[0]!.message });
    expect(flushReplies(done)).toEqual([{ type: 'client.reply', requestId: 'f', outcome: { status: 'ok' }, dataToken: null }]);
    expect(s1Done.flushes).toEqual({});
  });

  it('a part done under a record the flushing server has not adopted does not count until it has', () => {
    const [s1Flushing] = run(startedNode('s1', bootstrap), { type: 'client.flush', requestId: 'f', connectionId: 'c1', volume: 'alpha' });
    const [s1AfterEarlyDone] = run(s1Flushing,
      { type: 'peer.message', from: 's2', message: { type: 'flush.done', flushId: 's1:f', ok: true, membershipEpoch: 1, lossEpoch: 0 } },
      { type: 'peer.message', from: 's3', message: { type: 'flush.done', flushId: 's1:f', ok: true, membershipEpoch: 0, lossEpoch: 0 } });
    expect(Object.values(s1AfterEarlyDone.flushes).map((flush) => flush.remaining)).toEqual([['s2']]);
  });
});
