import { describe, expect, it } from 'vitest';
import type { Membership, MembershipRefusal } from '../../machines/membership/membership.js';
import { bootstrapMembership, changedMembership } from '../../machines/membership/membership.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { afterFirstBarrier, member, startedNode as startedNodeOf, stepThrough, threeServers, withUnflushedWrites } from './membership-fixture.js';
import { unknownDepartedLossEpoch } from '../../machines/node/node-membership.js';

/**
 * A member that is down for good is forgotten by another, on the
 * administrator's word, once every other member has confirmed at the current
 * record that nothing it knows names it (machines/node/member-forget.ts):
 * never while a page's route names it owner or a move runs toward it.
 */
// s3 owns no page of beta; alpha's third page starts on s3.
const beta: VolumeDefinition = { name: 'beta', pageCount: 4, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1', 's2'] };
const alpha: VolumeDefinition = { ...beta, name: 'alpha', pageCount: 3, servers: ['s1', 's2', 's3'] };
const bootstrap = bootstrapMembership(threeServers.map((id) => member(id)));
const s3Draining = changedMembership(bootstrap, { kind: 'drain', id: 's3' }) as Membership;
const run = (state: NodeState, ...inputs: NodeInput[]) => stepThrough(state, inputs);
const forget = (id: string | string[], requestId = `forget-${String(id)}`): NodeInput => ({ type: 'admin.changeMembership', requestId, change: { kind: 'forget', ids: typeof id === 'string' ? [id] : id } });
const peer = (from: string, message: PeerMessage): NodeInput => ({ type: 'peer.message', from, message });

function messagesOf(effects: readonly NodeEffect[], type: PeerMessage['type']): Array<{ to: string; message: PeerMessage }> {
  return effects.flatMap((effect) => (effect.type === 'peer.send' && effect.message.type === type ? [{ to: effect.to, message: effect.message }] : []));
}

function replies(effects: readonly NodeEffect[]): Array<{ ok: boolean; message: string }> {
  return effects.flatMap((effect) => (effect.type === 'admin.reply' ? [{ ok: effect.ok, message: effect.message }] : []));
}

/** The reasons refused changes give, for the CLI to act on (membership.ts, MembershipRefusal). */
function refusals(effects: readonly NodeEffect[]): Array<MembershipRefusal | undefined> {
  return effects.flatMap((effect) => (effect.type === 'admin.reply' && !effect.ok ? [effect.refusal] : []));
}

/** Completes every metadata commit among `effects`, in order; returns the state and what the completions did. */
function commitAll(state: NodeState, effects: readonly NodeEffect[]): [NodeState, NodeEffect[]] {
  const commits = effects.flatMap((effect) => (effect.type === 'meta.commit' && effect.completionId !== null ? [effect.completionId] : []));
  return run(state, ...commits.map((completionId): NodeInput => ({ type: 'io.done', completionId, ok: true })));
}

/** Delivers a forget check to `memberState`; the answer goes only once the record is durable. */
function answerCheck(memberState: NodeState, from: string, check: PeerMessage): [NodeState, PeerMessage | undefined, NodeEffect[]] {
  const [asked, effects] = run(memberState, { type: 'peer.message', from, message: check });
  expect(messagesOf(effects, 'forget.answer')).toEqual([]);
  const [answered, done] = commitAll(asked, effects);
  return [answered, messagesOf(done, 'forget.answer')[0]?.message, done];
}

describe('forgetting a member that is down for good', () => {
  it('is refused for itself, a non-member, and a member not draining', () => {
    const s1 = startedNodeOf('s1', [beta], bootstrap);
    expect(replies(run(s1, forget('s1'))[1])).toEqual([{ ok: false, message: expect.stringContaining('cannot forget itself') }]);
    expect(replies(run(s1, forget('s9'))[1])).toEqual([{ ok: false, message: 's9 is not a member' }]);
    // Asked before any drain: a drain cannot be taken back, and one that still owns a page cannot be forgotten anyway.
    expect(replies(run(startedNodeOf('s1', [alpha], bootstrap), forget('s3'))[1])).toEqual([{ ok: false, message: expect.stringContaining("cannot forget s3: s1's routes name s3 owner of 1 page (alpha/2)") }]);
    expect(replies(run(s1, forget('s3'))[1])).toEqual([{ ok: false, message: 'drain s3 first, so that no move toward it starts' }]);
    // Each says why for a program too, naming the servers it is about: the CLI acts on these, not on the wording.
    expect(refusals(run(s1, forget('s1'))[1])).toEqual([{ reason: 'final' }]);
    expect(refusals(run(s1, forget('s9'))[1])).toEqual([{ reason: 'notAMember', servers: ['s9'] }]);
    expect(refusals(run(startedNodeOf('s1', [alpha], bootstrap), forget('s3'))[1])).toEqual([{ reason: 'stillHolds', servers: ['s3'] }]);
    expect(refusals(run(s1, forget('s3'))[1])).toEqual([{ reason: 'notDraining', servers: ['s3'] }]);
    expect(refusals(run(s1, { type: 'admin.changeMembership', requestId: 'drain-again', change: { kind: 'drain', id: 's9' } })[1])).toEqual([{ reason: 'notAMember', servers: ['s9'] }]);
    expect(refusals(run(startedNodeOf('s1', [beta], s3Draining), { type: 'admin.changeMembership', requestId: 'drain-again', change: { kind: 'drain', id: 's3' } })[1])).toEqual([{ reason: 'alreadyDraining', servers: ['s3'] }]);
  });

  it('removes a draining member once every other member confirmed nothing names it, and tells every member but it', () => {
    const [s1Asking, asked] = run(startedNodeOf('s1', [beta], s3Draining), forget('s3'));
    expect(replies(asked)).toEqual([{ ok: false, message: expect.stringContaining('waiting for s2 to confirm') }]);
    expect(refusals(asked)).toEqual([{ reason: 'waitingFor', servers: ['s2'] }]);
    const checks = messagesOf(asked, 'forget.check');
    expect(checks.map((check) => check.to)).toEqual(['s2']);
    expect(asked.some((effect) => effect.type === 'timer.set' && effect.timerId.startsWith('forget|'))).toBe(true);

    // s2 still follows the bootstrap record: it adopts s3Draining from the check, makes it durable, then answers.
    const [s2Knows, s2Answer] = answerCheck(startedNodeOf('s2', [beta], bootstrap), 's1', checks[0]!.message);
    expect(s2Knows.membership).toEqual(s3Draining);
    expect(s2Answer).toEqual({ type: 'forget.answer', membership: s3Draining, servers: ['s3'], clear: true, reason: null });
    // A clear answer notes s3's loss epoch as unknown, for the FLUSHes once it is gone.
    expect(s2Knows.departedLossEpochs['s3']).toBe(unknownDepartedLossEpoch);

    // An answer about another record, or about another server, does not count.
    const [, stale] = run(s1Asking, { type: 'peer.message', from: 's2', message: { ...(s2Answer as Extract<PeerMessage, { type: 'forget.answer' }>), membership: bootstrap } }, forget('s3', 'again'));
    expect(replies(stale)[0]?.ok).toBe(false);

    const [inMemory, forgetting] = run(s1Asking, { type: 'peer.message', from: 's2', message: s2Answer! }, forget('s3', 'again'));
    expect(replies(forgetting)).toEqual([]);
    const [forgotten, persisted] = commitAll(inMemory, forgetting);
    expect(replies(persisted)).toEqual([{ ok: true, message: expect.stringContaining(`membership epoch ${s3Draining.epoch + 1}`) }]);
    expect(forgotten.membership.members.map((entry) => entry.id)).toEqual(['s1', 's2']);
    expect(messagesOf(persisted, 'membership.update').map((update) => update.to)).toEqual(['s2']);
  });

  it('is refused while a route names it owner (the refusal names the page) or a member answers that one does', () => {
    const s1 = startedNodeOf('s1', [alpha], s3Draining);
    const [, refused] = run(s1, forget('s3'));
    expect(replies(refused)).toEqual([{ ok: false, message: expect.stringContaining("cannot forget s3: s1's routes name s3 owner of 1 page (alpha/2)") }]);
    // s1 also asks the others for alpha/2's route, in case its own is stale.
    expect(messagesOf(refused, 'route.query').map((query) => query.to)).toEqual(['s2']);

    // s1 knows nothing naming s3 (beta only), but s2's table names s3 owner of alpha/2: s2 answers not clear, and asks.
    const [s1Asking, asked] = run(startedNodeOf('s1', [beta], s3Draining), forget('s3'));
    const [, s2Answer, s2Effects] = answerCheck(startedNodeOf('s2', [alpha], s3Draining), 's1', messagesOf(asked, 'forget.check')[0]!.message);
    expect(s2Answer).toEqual({ type: 'forget.answer', membership: s3Draining, servers: ['s3'], clear: false, reason: "s2's routes name s3 owner of 1 page (alpha/2)" });
    expect(messagesOf(s2Effects, 'route.query').map((query) => query.to)).toEqual(['s1']);
    // The administrator hears what s2 found (a review found the refusal dropped, and the command blaming s2 as down),
    // and s2 is asked again (its route may be stale, and is being repaired).
    const [s1Refused, still] = run(s1Asking, { type: 'peer.message', from: 's2', message: s2Answer! }, forget('s3', 'again'));
    expect(replies(still)).toEqual([{ ok: false, message: expect.stringContaining("cannot forget s3: s2's routes name s3 owner of 1 page (alpha/2)") }]);
    expect(messagesOf(still, 'forget.check').map((check) => check.to)).toEqual(['s2']);
    expect(s1Refused.forgetCheck?.refusals).toEqual({});
  });

  it('is refused while a move toward it runs here', () => {
    // s1 started a move of beta/0 to s3 before it learnt that s3 drains.
    const [s1Moving] = run(startedNodeOf('s1', [beta], bootstrap), { type: 'admin.move', requestId: 'm', pageKey: { volume: 'beta', page: 0 }, to: 's3', kind: 'piecewise' });
    const [s1Draining] = run(s1Moving, { type: 'peer.message', from: 's2', message: { type: 'membership.update', membership: s3Draining } });
    const [, refused] = run(s1Draining, forget('s3'));
    expect(replies(refused)).toEqual([{ ok: false, message: expect.stringContaining('s1 moves beta/0 toward s3') }]);
  });

  it('is not held up by a move toward it that was abandoned (it waits for the dead destination\'s answer for ever)', () => {
    // A review found the refusal asking for the abandon, and the abandoned record then refusing the forget for ever.
    const pageKey = { volume: 'beta', page: 0 };
    const auto = (effect: NodeEffect) => effect.type === 'meta.commit' || effect.type === 'data.read' || effect.type === 'data.sync';
    let [s1] = stepThrough(startedNodeOf('s1', [beta], bootstrap), [{ type: 'admin.move', requestId: 'm', pageKey, to: 's3', kind: 'piecewise' }], auto);
    [s1] = stepThrough(s1, [peer('s2', { type: 'membership.update', membership: s3Draining })], auto);
    const [abandoned, abandoning] = stepThrough(s1, [{ type: 'admin.abandonMove', requestId: 'ab', pageKey }], auto);
    expect(replies(abandoning)).toEqual([{ ok: true, message: expect.stringContaining('abandoned the move of beta/0') }]);
    expect(replies(run(abandoned, forget('s3'))[1])).toEqual([{ ok: false, message: expect.stringContaining('waiting for s2 to confirm') }]);
  });

  it('is refused while a volume is being created over it, and no volume is created over a server drained meanwhile', () => {
    // A review's reproduction: s1 reserved gamma over s1 and s3 while s3 was active, confirmed the forget (gamma not
    // defined yet), then defined gamma on s2's grant: gamma/1 routed for good to a server no longer a member.
    const gamma: VolumeDefinition = { ...beta, name: 'gamma', servers: ['s1', 's3'] };
    let [s1, effects] = run(startedNodeOf('s1', [beta], bootstrap), { type: 'admin.createVolume', requestId: 'create', volume: gamma });
    const reserve = messagesOf(effects, 'volume.reserve').find((sent) => sent.to === 's2')!.message as Extract<PeerMessage, { type: 'volume.reserve' }>;
    [s1, effects] = run(s1, peer('s2', { type: 'forget.check', membership: s3Draining, servers: ['s3'] }));
    const [s1Answered, answered] = commitAll(s1, effects);
    expect(messagesOf(answered, 'forget.answer')[0]?.message).toMatchObject({ clear: false });
    // s2's grant arrives once s1 knows s3 drains: the creation is given up, not defined over s3.
    const [created, createdEffects] = run(s1Answered, peer('s2', { type: 'volume.reserveAnswer', name: 'gamma', reservationId: reserve.reservationId, granted: true, reason: null }));
    expect(created.volumes['gamma']).toBeUndefined();
    expect(replies(createdEffects)).toEqual([{ ok: false, message: 'volume gamma was not created: s3 is draining or not a member now' }]);
    // A member that knows s3 drains grants no name over it.
    const [, granting] = run(startedNodeOf('s2', [beta], s3Draining), peer('s1', { type: 'volume.reserve', volume: gamma, reservationId: 'r' }));
    expect(messagesOf(granting, 'volume.reserveAnswer')[0]?.message).toMatchObject({ granted: false, reason: 's3 is draining at s2' });
    // Nor one over a server it does not know, and it says that may be its record lagging (a server added moments ago).
    const [, lagging] = run(startedNodeOf('s2', [beta], bootstrap), peer('s1', { type: 'volume.reserve', volume: { ...gamma, servers: ['s1', 's4'] }, reservationId: 'r' }));
    expect(messagesOf(lagging, 'volume.reserveAnswer')[0]?.message).toMatchObject({ granted: false, reason: 's4 is not a member at s2 (at its membership epoch 0: a server added moments ago is not known everywhere yet; try again in a few seconds)' });
  });

  it('forgets two servers down for good together, neither waiting for the other\'s confirmation', () => {
    const four = [...threeServers, 's4'];
    const both = changedMembership(changedMembership(bootstrapMembership(four.map((id) => member(id))), { kind: 'drain', id: 's3' }) as Membership, { kind: 'drain', id: 's4' }) as Membership;
    const s1 = startedNodeOf('s1', [beta], both, four);
    // One at a time, each waits for the other (a review found two dead servers could never be forgotten).
    expect(replies(run(s1, forget('s3'))[1])[0]?.message).toContain('waiting for s2, s4');
    const [asking, asked] = run(s1, forget(['s4', 's3']));
    expect(replies(asked)[0]?.message).toContain('waiting for s2 to confirm at membership epoch 2 that nothing they know names s3, s4');
    const [, s2Answer] = answerCheck(startedNodeOf('s2', [beta], both, four), 's1', messagesOf(asked, 'forget.check')[0]!.message);
    const [inMemory, forgetting] = run(asking, peer('s2', s2Answer!), forget(['s3', 's4'], 'again'));
    const [forgotten, persisted] = commitAll(inMemory, forgetting);
    expect(replies(persisted)).toEqual([{ ok: true, message: expect.stringContaining('membership epoch 3: s1 (weight 1), s2 (weight 1)') }]);
    expect(forgotten.membership.members.map((entry) => entry.id)).toEqual(['s1', 's2']);
  });

  it('a record made at once with the forget merges with it: the server stays forgotten and the other change lands', () => {
    // Until 27 Nov one of the two records won a tie-break, which could bring the forgotten server back.
    const four = [...threeServers, 's4'];
    const r1 = changedMembership(bootstrapMembership(four.map((id) => member(id))), { kind: 'drain', id: 's3' }) as Membership;
    let [s1, asked] = run(startedNodeOf('s1', [beta], r1, four), forget('s3'));
    for (const from of ['s2', 's4']) {
      const [, answer] = answerCheck(startedNodeOf(from, [beta], r1, four), 's1', messagesOf(asked, 'forget.check')[0]!.message);
      [s1] = run(s1, peer(from, answer!));
    }
    const [done] = commitAll(...run(s1, forget('s3', 'again')));
    const drainS2 = changedMembership(r1, { kind: 'drain', id: 's2' }) as Membership;
    const [merged] = commitAll(...run(done, peer('s4', { type: 'membership.update', membership: drainS2 })));
    expect(done.membership.epoch).toBe(drainS2.epoch);
    expect(merged.membership).toEqual({ epoch: drainS2.epoch + 1, members: drainS2.members.filter((entry) => entry.id !== 's3'), departed: [{ id: 's3', generation: 0 }] });
    const [, again] = run(merged, forget('s3', 'third'));
    expect(replies(again)[0]).toEqual(expect.objectContaining({ ok: false, message: 's3 is not a member' }));
  });

  it('a join of it this server made is not made again after the forget (a review brought a forgotten server back as an active member)', () => {
    const two = ['s1', 's2'];
    const pair = bootstrapMembership(two.map((id) => member(id)));
    const change = (requestId: string, membershipChange: Extract<NodeInput, { type: 'admin.changeMembership' }>['change']): NodeInput => ({ type: 'admin.changeMembership', requestId, change: membershipChange });
    // `server add` and `server forget` both go through s1, which never sees a peer's record in between.
    let [s1] = commitAll(...run(startedNodeOf('s1', [beta], pair, two), change('add', { kind: 'add', member: member('s3') })));
    [s1] = commitAll(...run(s1, change('drain', { kind: 'drain', id: 's3' })));
    const [asking, asked] = run(s1, forget('s3'));
    const [, s2Answer] = answerCheck(startedNodeOf('s2', [beta], pair, two), 's1', messagesOf(asked, 'forget.check')[0]!.message);
    const [forgotten] = commitAll(...run(asking, peer('s2', s2Answer!), forget('s3', 'again')));
    expect(forgotten.membership.members.map((entry) => entry.id)).toEqual(['s1', 's2']);
    // The record keeps s3 as departed, so no record that still names it active brings it back in a merge.
    expect(forgotten.membership.departed).toEqual([{ id: 's3', generation: 0 }]);
    // Any later record from a peer: s3 stays gone.
    const withS4 = changedMembership(forgotten.membership, { kind: 'add', member: member('s4') }) as Membership;
    const [later] = commitAll(...run(forgotten, peer('s2', { type: 'membership.update', membership: withS4 })));
    expect(later.membership.members.map((entry) => entry.id)).toEqual(['s1', 's2', 's4']);
  });

  it('keeps the loss epoch a drained server reported when it asked to leave, instead of judging its writes lost', () => {
    // s3 drained, asked to leave (loss epoch 3), and died before its leave completed; then it is forgotten.
    const s2 = withUnflushedWrites(afterFirstBarrier(startedNodeOf('s2', [beta], s3Draining)), 'beta', [{ server: 's3', lossEpoch: 3 }]);
    const [asked, asking] = run(s2, peer('s3', { type: 'leave.check', membership: s3Draining, lossEpoch: 3 }));
    const [leaving] = commitAll(asked, asking);
    const [confirmed] = answerCheck(leaving, 's1', { type: 'forget.check', membership: s3Draining, servers: ['s3'] });
    expect(confirmed.departedLossEpochs['s3']).toBe(3);
  });

  it('once forgotten, a FLUSH covering a write it held reports a possible loss once, instead of waiting for it for ever', () => {
    // s1 acknowledged writes s3 applied and did not sync; s3 died; s2 forgot it (s1 confirmed, then s2's record reaches s1).
    const s1 = withUnflushedWrites(afterFirstBarrier(startedNodeOf('s1', [beta], s3Draining)), 'beta', [{ server: 's3', lossEpoch: 0 }]);
    const [confirmed] = answerCheck(s1, 's2', { type: 'forget.check', membership: s3Draining, servers: ['s3'] });
    const forgotten = changedMembership(s3Draining, { kind: 'forget', ids: ['s3'] }) as Membership;
    const [adopted, adopting] = run(confirmed, { type: 'peer.message', from: 's2', message: { type: 'membership.update', membership: forgotten } });
    const [s1Knows] = commitAll(adopted, adopting);
    expect(s1Knows.membership).toEqual(forgotten);
    const flush = (requestId: string): NodeInput => ({ type: 'client.flush', requestId, connectionId: 'c1', volume: 'beta' });
    const [waiting, asked] = stepThrough(s1Knows, [flush('f')], (effect) => effect.type === 'data.sync');
    expect(messagesOf(asked, 'flush.request').map((request) => request.to)).toEqual(['s2']);
    const [, answered] = run(waiting, { type: 'peer.message', from: 's2', message: { type: 'flush.done', flushId: 's1:f', ok: true, membershipEpoch: forgotten.epoch, lossEpoch: 0 } });
    const reply = answered.find((effect) => effect.type === 'client.reply');
    expect(reply).toMatchObject({ requestId: 'f', outcome: { status: 'error', errno: 5, reason: expect.stringContaining('in a power cut of s3') } });
  });
});
