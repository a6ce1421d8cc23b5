import { describe, expect, it } from 'vitest';
import type { Membership } from '../../machines/membership/membership.js';
import { bootstrapMembership, changedMembership } from '../../machines/membership/membership.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { afterFirstBarrier, member, startedNode as startedNodeOf, stepThrough, threeServers, withUnflushedWrites } from './membership-fixture.js';

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
const forget = (id: string, requestId = `forget-${id}`): NodeInput => ({ type: 'admin.changeMembership', requestId, change: { kind: 'forget', id } });

function messagesOf(effects: readonly NodeEffect[], type: PeerMessage['type']): Array<{ to: string; message: PeerMessage }> {
  return effects.flatMap((effect) => (effect.type === 'peer.send' && effect.message.type === type ? [{ to: effect.to, message: effect.message }] : []));
}

function replies(effects: readonly NodeEffect[]): Array<{ ok: boolean; message: string }> {
  return effects.flatMap((effect) => (effect.type === 'admin.reply' ? [{ ok: effect.ok, message: effect.message }] : []));
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
    expect(replies(run(s1, forget('s3'))[1])).toEqual([{ ok: false, message: 'drain s3 first, so that no move toward it starts' }]);
  });

  it('removes a draining member once every other member confirmed nothing names it, and tells every member but it', () => {
    const [s1Asking, asked] = run(startedNodeOf('s1', [beta], s3Draining), forget('s3'));
    expect(replies(asked)).toEqual([{ ok: false, message: expect.stringContaining('waiting for s2 to confirm') }]);
    const checks = messagesOf(asked, 'forget.check');
    expect(checks.map((check) => check.to)).toEqual(['s2']);
    expect(asked.some((effect) => effect.type === 'timer.set' && effect.timerId.startsWith('forget|'))).toBe(true);

    // s2 still follows the bootstrap record: it adopts s3Draining from the check, makes it durable, then answers.
    const [s2Knows, s2Answer] = answerCheck(startedNodeOf('s2', [beta], bootstrap), 's1', checks[0]!.message);
    expect(s2Knows.membership).toEqual(s3Draining);
    expect(s2Answer).toEqual({ type: 'forget.answer', membership: s3Draining, server: 's3', clear: true });

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
    expect(replies(refused)).toEqual([{ ok: false, message: expect.stringMatching(/s3 cannot be forgotten: s1's routes name it owner of 1 page \(alpha\/2\)/) }]);
    // s1 also asks the others for alpha/2's route, in case its own is stale.
    expect(messagesOf(refused, 'route.query').map((query) => query.to)).toEqual(['s2']);

    // s1 knows nothing naming s3 (beta only), but s2's table names s3 owner of alpha/2: s2 answers not clear, and asks.
    const [s1Asking, asked] = run(startedNodeOf('s1', [beta], s3Draining), forget('s3'));
    const [, s2Answer, s2Effects] = answerCheck(startedNodeOf('s2', [alpha], s3Draining), 's1', messagesOf(asked, 'forget.check')[0]!.message);
    expect(s2Answer).toEqual({ type: 'forget.answer', membership: s3Draining, server: 's3', clear: false });
    expect(messagesOf(s2Effects, 'route.query').map((query) => query.to)).toEqual(['s1']);
    const [, still] = run(s1Asking, { type: 'peer.message', from: 's2', message: s2Answer! }, forget('s3', 'again'));
    expect(replies(still)).toEqual([{ ok: false, message: expect.stringContaining('waiting for s2 to confirm') }]);
  });

  it('is refused while a move toward it runs here', () => {
    // s1 started a move of beta/0 to s3 before it learnt that s3 drains.
    const [s1Moving] = run(startedNodeOf('s1', [beta], bootstrap), { type: 'admin.move', requestId: 'm', pageKey: { volume: 'beta', page: 0 }, to: 's3', kind: 'piecewise' });
    const [s1Draining] = run(s1Moving, { type: 'peer.message', from: 's2', message: { type: 'membership.update', membership: s3Draining } });
    const [, refused] = run(s1Draining, forget('s3'));
    expect(replies(refused)).toEqual([{ ok: false, message: expect.stringContaining('s1 moves beta/0 toward it') }]);
  });

  it('once forgotten, a FLUSH covering a write it held reports a possible loss once, instead of waiting for it for ever', () => {
    // s1 acknowledged writes s3 applied and did not sync; s3 died; the group forgot it (s2's record reaches s1).
    const s1 = withUnflushedWrites(afterFirstBarrier(startedNodeOf('s1', [beta], s3Draining)), 'beta', [{ server: 's3', lossEpoch: 0 }]);
    const forgotten = changedMembership(s3Draining, { kind: 'forget', id: 's3' }) as Membership;
    const [adopted, adopting] = run(s1, { type: 'peer.message', from: 's2', message: { type: 'membership.update', membership: forgotten } });
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
