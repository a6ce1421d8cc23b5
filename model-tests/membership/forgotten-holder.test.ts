import { describe, expect, it } from 'vitest';
import type { Membership } from '../../machines/membership/membership.js';
import { bootstrapMembership, changedMembership } from '../../machines/membership/membership.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { unknownDepartedLossEpoch } from '../../machines/node/node-membership.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { afterFirstBarrier, member, startedNode as startedNodeOf, stepThrough, withUnflushedWrites } from './membership-fixture.js';

const alpha: VolumeDefinition = { name: 'alpha', pageCount: 6, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1', 's2', 's3'] };
const group = ['s1', 's2', 's3'];
const ch = (r: Membership, c: Parameters<typeof changedMembership>[1]) => changedMembership(r, c) as Membership;
const withS4 = ch(bootstrapMembership(group.map((id) => member(id))), { kind: 'add', member: member('s4') });
const s4Draining = ch(withS4, { kind: 'drain', id: 's4' });
const forgotten = ch(s4Draining, { kind: 'forget', ids: ['s4'] });
const again = ch(forgotten, { kind: 'add', member: member('s4') }); // generation 1, a fresh directory
const run = (state: NodeState, ...inputs: NodeInput[]) => stepThrough(state, inputs, (e) => e.type === 'data.sync' || e.type === 'meta.commit');
const sent = (effects: readonly NodeEffect[], type: PeerMessage['type']) => effects.flatMap((e) => (e.type === 'peer.send' && e.message.type === type ? [{ to: e.to, message: e.message }] : []));

/**
 * A server forgotten (dead, its directory lost) and added again under its id
 * is a new server: the writes the old one held unsynced died with it, and the
 * new one's loss epoch says nothing of them. A review found the next FLUSH
 * answered ok on the new server's word (older than merges; the generation of
 * an id is what tells the two apart now).
 */
describe('a forgotten server\'s unsynced writes and the next generation of its id', () => {
  it('s1 holds writes s4 (generation 0) acknowledged unsynced; s4 is forgotten, added again as generation 1; the next FLUSH reports a possible loss', () => {
    // s1 confirmed the forget (answerForgetCheck notes s4 with the unknown loss epoch), then hears the forget and the re-add.
    let s1: NodeState = withUnflushedWrites(afterFirstBarrier(startedNodeOf('s1', [alpha], s4Draining, group)), 'alpha', [{ server: 's4', lossEpoch: 0 }]);
    s1 = { ...s1, departedLossEpochs: { s4: unknownDepartedLossEpoch } };
    [s1] = run(s1, { type: 'peer.message', from: 's2', message: { type: 'membership.update', membership: forgotten } });
    [s1] = run(s1, { type: 'peer.message', from: 's2', message: { type: 'membership.update', membership: again } });
    let [state, asked] = run(s1, { type: 'client.flush', requestId: 'f', connectionId: 'c1', volume: 'alpha' });
    const replies: NodeEffect[] = [];
    for (const request of sent(asked, 'flush.request')) {
      const [, answer] = run(startedNodeOf(request.to, [alpha], again, group), { type: 'peer.message', from: 's1', message: request.message });
      let effects: NodeEffect[];
      [state, effects] = run(state, { type: 'peer.message', from: request.to, message: sent(answer, 'flush.done')[0]!.message });
      replies.push(...effects.filter((e) => e.type === 'client.reply'));
    }
    expect(replies).toHaveLength(1);
    expect((replies[0] as Extract<NodeEffect, { type: 'client.reply' }>).outcome).toEqual(expect.objectContaining({ status: 'error', errno: 5 }));
    expect(sent(asked, 'flush.request').map((request) => request.to)).toContain('s4');
  });
});
