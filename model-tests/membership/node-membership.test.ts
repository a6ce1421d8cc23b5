import { describe, expect, it } from 'vitest';
import type { Membership } from '../../machines/membership/membership.js';
import { bootstrapMembership, changedMembership, isNewerMembership, memberOf } from '../../machines/membership/membership.js';
import { drainMoves, isReadyToLeave } from '../../machines/membership/drain-plan.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, nodeStep } from '../../machines/node/node.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { member, startedNode as startedNodeOf, stepThrough, threeServers, withUnflushedWrites } from './membership-fixture.js';

/**
 * Dynamic membership in the pure node: joining, adopting a newer record,
 * catching up after a restart, refusing moves to servers that are not
 * members or are draining, and the drain plan's choice of destinations.
 */
const alpha: VolumeDefinition = { name: 'alpha', pageCount: 6, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1', 's2', 's3'] };
const group = threeServers;

/** The metadata store completes every membership commit at once (what a node does before and after its record is durable is tested in membership-durability.test.ts). */
function run(state: NodeState, ...inputs: NodeInput[]): [NodeState, NodeEffect[]] {
  return stepThrough(state, inputs, (effect) => effect.type === 'meta.commit' && effect.writes.every((write) => write.kind === 'membership'));
}

const startedNode = (self: string, membership: Membership | null = null) => startedNodeOf(self, [alpha], membership);

function sentTo(effects: readonly NodeEffect[], type: string): string[] {
  return effects.flatMap((effect) => (effect.type === 'peer.send' && effect.message.type === type ? [effect.to] : []));
}

function adminReplies(effects: readonly NodeEffect[]): Array<{ ok: boolean; message: string }> {
  return effects.flatMap((effect) => (effect.type === 'admin.reply' ? [{ ok: effect.ok, message: effect.message }] : []));
}

const bootstrap = bootstrapMembership(group.map((id) => member(id)));
const add = (id: string, capacityWeight = 1): NodeInput => ({ type: 'admin.changeMembership', requestId: `add-${id}`, change: { kind: 'add', member: member(id, capacityWeight) } });
const drain = (id: string): NodeInput => ({ type: 'admin.changeMembership', requestId: `drain-${id}`, change: { kind: 'drain', id } });
const moveTo = (page: number, to: string): NodeInput => ({ type: 'admin.move', requestId: `move-${page}-${to}`, pageKey: { volume: 'alpha', page }, to, kind: 'piecewise' });

describe('membership in the pure node', () => {
  it('a join bumps the epoch, persists the record and announces it to every member, the new one included, which is sent volumes and moved routes', () => {
    const s1 = startedNode('s1', bootstrap);
    const [withRoute] = run(s1, { type: 'peer.message', from: 's2', message: { type: 'route.update', pageKey: { volume: 'alpha', page: 1 }, owner: 's3', epoch: 3 } });
    const [after, effects] = run(withRoute, add('s4', 2));
    expect(adminReplies(effects)).toEqual([{ ok: true, message: expect.stringContaining('membership epoch 1') }]);
    expect(after.membership.epoch).toBe(1);
    expect(after.membership.members.map((entry) => entry.id)).toEqual(['s1', 's2', 's3', 's4']);
    expect(effects).toContainEqual({ type: 'meta.commit', completionId: expect.any(String), writes: [{ kind: 'membership', membership: after.membership }] });
    expect(effects).toContainEqual({ type: 'membership.changed', membership: after.membership });
    expect(sentTo(effects, 'membership.update').sort()).toEqual(['s2', 's3', 's4']);
    expect(sentTo(effects, 'volume.define')).toEqual(['s4']);
    // Only routes past their initial owner are sent; the rest the new member derives from the volume definition.
    expect(effects.filter((effect) => effect.type === 'peer.send' && effect.message.type === 'route.update').map((effect) => effect.type === 'peer.send' && effect.message)).toEqual([
      { type: 'route.update', pageKey: { volume: 'alpha', page: 1 }, owner: 's3', epoch: 3 },
    ]);
    // Routes before definitions, on the one link: a member added again under a forgotten server's id, with a fresh
    // directory, would otherwise claim the pages its layout gave it and that have moved away (late-volume-definition.test.ts).
    const toS4 = effects.flatMap((effect) => (effect.type === 'peer.send' && effect.to === 's4' && (effect.message.type === 'route.update' || effect.message.type === 'volume.define') ? [effect.message.type] : []));
    expect(toS4).toEqual(['route.update', 'volume.define']);
    // The same join again is refused and bumps nothing.
    const [again, refused] = run(after, add('s4'));
    expect(adminReplies(refused)[0]?.ok).toBe(false);
    expect(again.membership.epoch).toBe(1);
  });

  it('a server adopts a newer record from a peer (and welcomes the new member), and answers an older one with its own', () => {
    const [s1] = run(startedNode('s1', bootstrap), add('s4'));
    const [s2, adopted] = run(startedNode('s2', bootstrap), { type: 'peer.message', from: 's1', message: { type: 'membership.update', membership: s1.membership } });
    expect(s2.membership).toEqual(s1.membership);
    expect(adopted).toContainEqual({ type: 'meta.commit', completionId: expect.any(String), writes: [{ kind: 'membership', membership: s1.membership }] });
    expect(sentTo(adopted, 'volume.define')).toEqual(['s4']);
    // s3 was down during the join and announces the bootstrap record when it comes back: s2 answers with the newer one.
    const [unchanged, answered] = run(s2, { type: 'peer.message', from: 's3', message: { type: 'membership.update', membership: bootstrap } });
    expect(unchanged.membership).toEqual(s1.membership);
    expect(answered).toEqual([{ type: 'peer.send', to: 's3', message: { type: 'membership.update', membership: s1.membership } }]);
    // A record equal to ours is neither adopted nor answered, so announcements do not echo forever.
    expect(run(s2, { type: 'peer.message', from: 's1', message: { type: 'membership.update', membership: s1.membership } })[1]).toEqual([]);
  });

  it('a restarted server starts from its persisted record, not the configured group, and announcing sends it to every member', () => {
    const [s1] = run(startedNode('s1', bootstrap), add('s4'), drain('s2'));
    const restarted = startedNode('s1', s1.membership);
    expect(restarted.membership).toEqual(s1.membership);
    const [, announced] = run(restarted, { type: 'membership.announce' });
    expect(sentTo(announced, 'membership.update').sort()).toEqual(['s2', 's3', 's4']);
  });

  it('two changes made concurrently at one epoch both land: the records merge', () => {
    // Before 26 Nov, the group converged on the tie-break's winner alone, and the administrator of the other change had
    // been told ok; until 27 Nov the loser's maker made its change again on top (which three changes could defeat).
    for (const order of ['s1 hears first', 's3 hears first']) {
      let [viaS1] = run(startedNode('s1', bootstrap), add('s4'));
      let [viaS3] = run(startedNode('s3', bootstrap), drain('s2'));
      expect(viaS1.membership.epoch).toBe(viaS3.membership.epoch);
      expect(isNewerMembership(viaS1.membership, viaS3.membership)).not.toBe(isNewerMembership(viaS3.membership, viaS1.membership));
      // Each tells the other its record until neither has anything newer to say.
      for (let round = 0; round < 4; round += 1) {
        const fromS1 = viaS1.membership;
        const fromS3 = viaS3.membership;
        if (order === 's1 hears first' || round > 0) [viaS1] = run(viaS1, { type: 'peer.message', from: 's3', message: { type: 'membership.update', membership: fromS3 } });
        [viaS3] = run(viaS3, { type: 'peer.message', from: 's1', message: { type: 'membership.update', membership: fromS1 } });
      }
      expect(viaS1.membership).toEqual(viaS3.membership);
      expect(viaS1.membership.epoch).toBe(2);
      expect(viaS1.membership.members.map((entry) => `${entry.id}${entry.draining ? ' draining' : ''}`)).toEqual(['s1', 's2 draining', 's3', 's4']);
    }
  });

  it('moves to a server outside the group or to a draining one are refused; to a member learned at runtime they start', () => {
    const s1 = startedNode('s1', bootstrap);
    // alpha/0 and alpha/3 are s1's (round-robin over s1, s2, s3).
    expect(adminReplies(run(s1, moveTo(0, 's4'))[1])).toEqual([{ ok: false, message: 'unknown server s4' }]);
    const [joined, started] = run(s1, add('s4'), moveTo(0, 's4'));
    expect(adminReplies(started)[1]).toEqual({ ok: true, message: 'moving alpha/0 from s1 to s4 (piecewise, 2 pieces)' });
    expect(joined.moves['alpha/0']?.snapshot.context.destination).toBe('s4');
    const [, refused] = run(s1, drain('s3'), moveTo(3, 's3'));
    expect(adminReplies(refused)[1]).toEqual({ ok: false, message: 's3 is draining' });
    const [, volume] = run(s1, drain('s3'), { type: 'admin.createVolume', requestId: 'v', volume: { ...alpha, name: 'gamma', servers: ['s1', 's3'] } });
    expect(adminReplies(volume)[1]?.ok).toBe(false);
  });

  it('only the leaving server may remove itself, only once drained and holding nothing; the last active member cannot drain', () => {
    const [s1Draining, effects] = run(startedNode('s1', bootstrap), drain('s2'), { type: 'admin.changeMembership', requestId: 'r', change: { kind: 'remove', id: 's2' } });
    expect(adminReplies(effects)[1]).toEqual({ ok: false, message: 'ask s2 itself to leave: only it knows it holds no page' });
    const [s2, own] = run(startedNode('s2', s1Draining.membership), { type: 'admin.changeMembership', requestId: 'r', change: { kind: 'remove', id: 's2' } });
    expect(adminReplies(own)).toEqual([{ ok: false, message: 's2 still holds pages or runs moves' }]);
    expect(isReadyToLeave(s2)).toBe(false);
    const [, lastOne] = run(startedNode('s1', bootstrap), drain('s2'), drain('s3'), drain('s1'));
    expect(adminReplies(lastOne)[2]).toEqual({ ok: false, message: 's1 is the last member that is not draining' });
  });

  it('a drained server that holds nothing leaves: the record drops it, it pushes the routes it gave up and tells the old members', () => {
    const [draining] = run(startedNode('s1', bootstrap), drain('s3'));
    // s3 in a volume where it owns no page (a volume over s1 and s2), holding one given-up copy.
    const beta: VolumeDefinition = { ...alpha, name: 'beta', servers: ['s1', 's2'] };
    const [s3] = nodeStep(emptyNodeState(defaultNodeConfig('s3', group), 1), {
      type: 'node.start',
      durable: { ...initialDurableRecords([beta], 's3'), replicas: [{ pageKey: { volume: 'beta', page: 0 }, record: { status: 'invalid', epoch: 2, owner: 's2', forwardTo: null } }], membership: draining.membership },
    });
    expect(isReadyToLeave(s3)).toBe(true);
    // Every remaining member has confirmed that no move toward s3 runs (model-tests/membership/leave-safety.test.ts).
    const [asking] = run(s3, { type: 'admin.changeMembership', requestId: 'r0', change: { kind: 'remove', id: 's3' } });
    const clear = (from: string): NodeInput => ({ type: 'peer.message', from, message: { type: 'leave.answer', membership: draining.membership, clear: true } });
    const [left, effects] = run(asking, clear('s1'), clear('s2'), { type: 'admin.changeMembership', requestId: 'r', change: { kind: 'remove', id: 's3' } });
    expect(adminReplies(effects)[0]?.ok).toBe(true);
    expect(left.membership.members.map((entry) => entry.id)).toEqual(['s1', 's2']);
    expect(sentTo(effects, 'membership.update').sort()).toEqual(['s1', 's2']);
    expect(sentTo(effects, 'route.update').sort()).toEqual(['s1', 's2']);
  });

  it('a server that learns of a departure while its table still names the departed server asks the remaining members for those routes', () => {
    const [s1Draining] = run(startedNode('s1', bootstrap), drain('s3'));
    const left = changedMembership(s1Draining.membership, { kind: 'remove', id: 's3' }) as Membership;
    // s2 missed the pushes: its table still names s3 for alpha/2 and alpha/5.
    const [s2, effects] = run(startedNode('s2', s1Draining.membership), { type: 'peer.message', from: 's1', message: { type: 'membership.update', membership: left } });
    expect(s2.membership).toEqual(left);
    const queries = effects.flatMap((effect) => (effect.type === 'peer.send' && effect.message.type === 'route.query' ? [`${effect.to}:${effect.message.pageKey.page}`] : []));
    expect(queries.sort()).toEqual(['s1:2', 's1:5']);
    // The answer repairs the route.
    const [repaired] = run(s2, { type: 'peer.message', from: 's1', message: { type: 'route.update', pageKey: { volume: 'alpha', page: 2 }, owner: 's1', epoch: 2 } });
    expect(repaired.routes.get('alpha/2')).toEqual({ owner: 's1', epoch: 2 });
  });

  it('a FLUSH barrier stops waiting for a server that left (it held nothing), and completes if it waited only for it', () => {
    const [s1Draining] = run(startedNode('s1', bootstrap), drain('s3'));
    // Writes acknowledged before the drain, held by s1, s2 and s3 (s3 synced and gave its pages away since).
    const holding = withUnflushedWrites(s1Draining, 'alpha', [{ server: 's1', lossEpoch: 0 }, { server: 's2', lossEpoch: 0 }, { server: 's3', lossEpoch: 0 }]);
    const [flushing] = run(holding, { type: 'client.flush', requestId: 'f1', connectionId: 'c1', volume: 'alpha' });
    const [syncId] = [...flushing.continuations].find(([, continuation]) => continuation.kind === 'flush.synced')!;
    const [waiting] = run(flushing, { type: 'io.done', completionId: syncId, ok: true }, { type: 'peer.message', from: 's2', message: { type: 'flush.done', flushId: 's1:f1', ok: true, membershipEpoch: s1Draining.membership.epoch, lossEpoch: 0 } });
    expect(Object.values(waiting.flushes).map((flush) => flush.remaining)).toEqual([['s3']]);
    const left = changedMembership(s1Draining.membership, { kind: 'remove', id: 's3' }) as Membership;
    // s3 asks to leave (naming its loss epoch, which its writes are judged by once it is gone), then leaves.
    const [done, effects] = run(waiting, { type: 'peer.message', from: 's3', message: { type: 'leave.check', membership: s1Draining.membership, lossEpoch: 0 } },
      { type: 'peer.message', from: 's3', message: { type: 'membership.update', membership: left } });
    expect(done.flushes).toEqual({});
    expect(effects).toContainEqual({ type: 'client.reply', requestId: 'f1', outcome: { status: 'ok' }, dataToken: null });
  });

  it('the drain plan gives pages to the active member with the lowest share per capacity weight, never to a draining one, a bounded number at a time', () => {
    const [s1] = run(startedNode('s1', bootstrap), add('s4', 2), add('s5', 1), drain('s3'));
    const [s1Draining] = run(s1, drain('s1'));
    // s1 owns alpha/0 and alpha/3; s2 owns 2 pages and s3 (draining) 2; s4 (weight 2) and s5 (weight 1) own none.
    expect(drainMoves(s1, 5)).toEqual([]); // not draining: nothing to plan
    expect(drainMoves(s1Draining, 5)).toEqual([
      { pageKey: { volume: 'alpha', page: 0 }, to: 's4' },
      // s4 after one page: 2 pages / weight 2 = 1, tied with s5's 1 / 1; ties go by id. Ignoring weights would pick s5.
      { pageKey: { volume: 'alpha', page: 3 }, to: 's4' },
    ]);
    expect(drainMoves(s1Draining, 1)).toEqual([{ pageKey: { volume: 'alpha', page: 0 }, to: 's4' }]);
    // s4 cannot be reached now (a new member that died): the pages go elsewhere, or wait if nobody can take them.
    expect(drainMoves(s1Draining, 5, new Set(), new Set(['s4'])).map((move) => move.to)).toEqual(['s5', 's5']);
    expect(drainMoves(s1Draining, 5, new Set(), new Set(['s2', 's4', 's5']))).toEqual([]);
  });

  it('a running drain move is not planned again, and its destination counts as loaded', () => {
    // Equal weights: s4 and s5 own nothing, so without the running move they tie and s4 (first by id) would get alpha/3.
    const [s1] = run(startedNode('s1', bootstrap), add('s4', 1), add('s5', 1), drain('s3'));
    const [s1Draining] = run(s1, drain('s1'));
    const [moving] = run(s1Draining, moveTo(0, 's4'));
    expect(Object.keys(moving.moves)).toEqual(['alpha/0']);
    // With alpha/0 heading to s4, s4 would hold (1 + 1) / 1 after taking alpha/3 and s5 (0 + 1) / 1: s5 gets it.
    expect(drainMoves(moving, 5)).toEqual([{ pageKey: { volume: 'alpha', page: 3 }, to: 's5' }]);
  });

  it('the drain plan moves every valid copy, one whose flip this server has not learnt yet included (the refusal asks for the route)', () => {
    const [s1] = run(startedNode('s1', bootstrap), add('s4', 2), add('s5', 1), drain('s3'));
    const [s1Draining] = run(s1, drain('s1'));
    // As if s1 held alpha/3 as a committed destination whose table still names the source s2 (the flip's push is on its way).
    const committedDestination: NodeState = { ...s1Draining, routes: s1Draining.routes.with('alpha/3', { owner: 's2', epoch: 1 }) };
    expect(committedDestination.replicas.get('alpha/3')?.context.record?.status).toBe('valid');
    expect(drainMoves(committedDestination, 5).map((move) => move.pageKey.page)).toEqual([0, 3]);
    // The node refuses that move (flipPending) and asks the server its table names for the route.
    const [, refusal] = nodeStep(committedDestination, { type: 'admin.move', requestId: 'drain', pageKey: { volume: 'alpha', page: 3 }, to: 's4', kind: 'piecewise' });
    expect(refusal).toContainEqual(expect.objectContaining({ type: 'admin.reply', ok: false, flipPending: true }));
    expect(refusal).toContainEqual(expect.objectContaining({ type: 'peer.send', to: 's2', message: expect.objectContaining({ type: 'route.query' }) }));
    // A valid copy with no route entry at all (received before the volume's definition reached this server, which
    // then adds no route for it) is not known to be this server's either; planned too, its refusal asks every member.
    expect(drainMoves({ ...s1Draining, routes: s1Draining.routes.without('alpha/3') }, 5).map((move) => move.pageKey.page)).toEqual([0, 3]);
    expect(drainMoves(s1Draining, 5).map((move) => move.pageKey.page)).toEqual([0, 3]);
    // Owned pages come first, so that a copy waiting for its flip (its source down, say) does not hold the drain's
    // slots; a page whose move the caller already waits on is not planned again.
    const waitingFirst: NodeState = { ...s1Draining, routes: s1Draining.routes.with('alpha/0', { owner: 's2', epoch: 1 }) };
    expect(drainMoves(waitingFirst, 1).map((move) => move.pageKey.page)).toEqual([3]);
    expect(drainMoves(waitingFirst, 1, new Set(['alpha/3'])).map((move) => move.pageKey.page)).toEqual([0]);
    expect(drainMoves(waitingFirst, 5, new Set(['alpha/0', 'alpha/3']))).toEqual([]);
  });

  it('asks every member, at start and at every announcement, for routes its table names a non-member owner of (at most 64 pages a time)', () => {
    // s1 has left: alpha's pages that started on s1 (0 and 3) are named for a server that is no longer a member.
    const withoutS1 = bootstrapMembership(['s2', 's3'].map((id) => member(id)));
    const [, started] = nodeStep(emptyNodeState(defaultNodeConfig('s2', [...group]), 1), { type: 'node.start', durable: { ...initialDurableRecords([alpha], 's2'), membership: withoutS1 } });
    const asked = (effects: readonly NodeEffect[]) => effects.flatMap((effect) => (effect.type === 'peer.send' && effect.message.type === 'route.query' ? [`${effect.to} ${effect.message.pageKey.volume}/${effect.message.pageKey.page}`] : []));
    expect(asked(started)).toEqual(['s3 alpha/0', 's3 alpha/3']);
    const s2 = nodeStep(emptyNodeState(defaultNodeConfig('s2', [...group]), 1), { type: 'node.start', durable: { ...initialDurableRecords([alpha], 's2'), membership: withoutS1 } })[0];
    expect(asked(nodeStep(s2, { type: 'membership.announce' })[1])).toEqual(['s3 alpha/0', 's3 alpha/3']);
    // With every owner a member, nothing is asked, and the table is not scanned again until a member departs.
    expect(asked(nodeStep(startedNode('s2'), { type: 'membership.announce' })[1])).toEqual([]);
    expect(startedNode('s2').nonMemberRoutesMayRemain).toBe(false);
    const forgot = changedMembership(changedMembership(bootstrap, { kind: 'drain', id: 's1' }) as Membership, { kind: 'forget', ids: ['s1'] }) as Membership;
    // (The record is acted on once durable: its commit completes at once here.)
    const [departed] = stepThrough(startedNode('s2'), [{ type: 'peer.message', from: 's3', message: { type: 'membership.update', membership: forgot } }], (effect) => effect.type === 'meta.commit');
    expect(memberOf(departed.membership, 's1')).toBeNull();
    expect(departed.nonMemberRoutesMayRemain).toBe(true);
    // Bounded: a volume of 200 pages all on s1 asks about 64 per announcement.
    const wide: VolumeDefinition = { ...alpha, name: 'wide', pageCount: 200, servers: ['s1'] };
    const s3 = nodeStep(emptyNodeState(defaultNodeConfig('s3', [...group]), 1), { type: 'node.start', durable: { ...initialDurableRecords([wide], 's3'), membership: withoutS1 } })[0];
    expect(asked(nodeStep(s3, { type: 'membership.announce' })[1])).toHaveLength(64);
  });
});
