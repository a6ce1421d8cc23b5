import { describe, expect, it } from 'vitest';
import type { Membership } from '../../machines/membership/membership.js';
import { bootstrapMembership, changedMembership } from '../../machines/membership/membership.js';
import { isReadyToLeave } from '../../machines/membership/drain-plan.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { member, startedNode as startedNodeOf, stepThrough, threeServers } from './membership-fixture.js';
import { statusOf } from '../../impl/runtime/status-report.js';

/**
 * A drained server leaves only once every remaining member has confirmed, at
 * its current record, that no move toward it runs; and a server that has
 * left takes no page. Without either, a move started before its source
 * learnt of the drain could end with the page only on a server that left.
 */
// s3 owns no page of beta: it holds nothing and is ready to leave as soon as it drains.
const beta: VolumeDefinition = { name: 'beta', pageCount: 4, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1', 's2'] };
const bootstrap = bootstrapMembership(threeServers.map((id) => member(id)));
const s3Draining = changedMembership(bootstrap, { kind: 'drain', id: 's3' }) as Membership;
const startedNode = (self: string, membership: Membership) => startedNodeOf(self, [beta], membership);
/** Every I/O is left for the test to complete. */
const run = (state: NodeState, ...inputs: NodeInput[]) => stepThrough(state, inputs);

function messagesOf(effects: readonly NodeEffect[], type: PeerMessage['type']): Array<{ to: string; message: PeerMessage }> {
  return effects.flatMap((effect) => (effect.type === 'peer.send' && effect.message.type === type ? [{ to: effect.to, message: effect.message }] : []));
}

function replies(effects: readonly NodeEffect[]): Array<{ ok: boolean; message: string }> {
  return effects.flatMap((effect) => (effect.type === 'admin.reply' ? [{ ok: effect.ok, message: effect.message }] : []));
}

/** Delivers a leave check to `member`, completes the metadata commit it asks for, and returns the member and its answer. */
function answerCheck(memberState: NodeState, from: string, check: PeerMessage): [NodeState, PeerMessage | undefined] {
  const [asked, effects] = run(memberState, { type: 'peer.message', from, message: check });
  const commits = effects.flatMap((effect) => (effect.type === 'meta.commit' && effect.completionId !== null ? [effect] : []));
  expect(commits.length).toBeGreaterThan(0);
  for (const commit of commits) expect(commit.writes).toEqual([{ kind: 'membership', membership: asked.membership }]);
  // Nothing is answered before the record is durable.
  expect(messagesOf(effects, 'leave.answer')).toEqual([]);
  const [answered, done] = run(asked, ...commits.map((commit): NodeInput => ({ type: 'io.done', completionId: commit.completionId!, ok: true })));
  return [answered, messagesOf(done, 'leave.answer')[0]?.message];
}

const remove = (id: string): NodeInput => ({ type: 'admin.changeMembership', requestId: `remove-${id}`, change: { kind: 'remove', id } });

describe('leaving the group safely', () => {
  it('a drained server leaves only after every remaining member confirmed at its record that no move toward it runs', () => {
    // s1 started a move of beta/0 to s3 before it learnt that s3 drains (it still follows the bootstrap record).
    const [s1Moving, moveStarted] = run(startedNode('s1', bootstrap), { type: 'admin.move', requestId: 'm', pageKey: { volume: 'beta', page: 0 }, to: 's3', kind: 'piecewise' });
    expect(replies(moveStarted)[0]?.ok).toBe(true);
    const s3 = startedNode('s3', s3Draining);
    expect(isReadyToLeave(s3)).toBe(true);

    // s3 holds nothing, yet may not leave: it asks s1 and s2 first.
    const [s3Asking, asked] = run(s3, remove('s3'));
    expect(replies(asked)).toEqual([{ ok: false, message: expect.stringContaining('waiting for s1, s2 to confirm') }]);
    expect(s3Asking.membership).toEqual(s3Draining);
    const checks = messagesOf(asked, 'leave.check');
    expect(checks.map((check) => check.to)).toEqual(['s1', 's2']);
    expect(asked.some((effect) => effect.type === 'timer.set' && effect.timerId.startsWith('leave|'))).toBe(true);

    // s1 adopts the record (so it refuses new moves to s3) and answers that a move toward s3 runs; s2 answers clear.
    const [s1Knows, s1Answer] = answerCheck(s1Moving, 's3', checks[0]!.message);
    expect(s1Knows.membership).toEqual(s3Draining);
    expect(s1Answer).toEqual({ type: 'leave.answer', membership: s3Draining, clear: false });
    const [, s2Answer] = answerCheck(startedNode('s2', s3Draining), 's3', checks[1]!.message);
    expect(s2Answer).toEqual({ type: 'leave.answer', membership: s3Draining, clear: true });
    const [s3Waiting, stillWaiting] = run(s3Asking,
      { type: 'peer.message', from: 's1', message: s1Answer! }, { type: 'peer.message', from: 's2', message: s2Answer! }, remove('s3'));
    expect(replies(stillWaiting)).toEqual([{ ok: false, message: expect.stringContaining('waiting for s1 to confirm') }]);
    expect(s3Waiting.membership).toEqual(s3Draining);
    // `status` (and `server drain`'s progress) shows whom the leave waits for.
    expect(statusOf(s3Waiting).drain).toEqual({ pagesHeld: 0, movesRunning: 0, leaveWaitingFor: ['s1'] });
    expect(statusOf(s3).drain?.leaveWaitingFor).toBeNull();

    // An answer about an older record does not count, whatever it says.
    const [, oldAnswer] = run(s3Waiting, { type: 'peer.message', from: 's1', message: { type: 'leave.answer', membership: bootstrap, clear: true } }, remove('s3'));
    expect(replies(oldAnswer)[0]?.ok).toBe(false);
    // Nor does one about another record at the same epoch (a concurrent change there, under which s3 may not be draining).
    const concurrent = changedMembership(bootstrap, { kind: 'add', member: member('s4') }) as Membership;
    expect(concurrent.epoch).toBe(s3Draining.epoch);
    const [, otherAnswer] = run(s3Waiting, { type: 'peer.message', from: 's1', message: { type: 'leave.answer', membership: concurrent, clear: true } }, remove('s3'));
    expect(replies(otherAnswer)[0]?.ok).toBe(false);

    // Once s1 runs no move toward s3 (here: a member that never had one), its clear answer lets s3 leave.
    const [, s1Clear] = answerCheck(startedNode('s1', s3Draining), 's3', checks[0]!.message);
    const [leftInMemory, leaving] = run(s3Waiting, { type: 'peer.message', from: 's1', message: s1Clear! }, remove('s3'));
    const commit = leaving.find((effect) => effect.type === 'meta.commit' && effect.completionId !== null) as { completionId: string };
    const [left, persisted] = run(leftInMemory, { type: 'io.done', completionId: commit.completionId, ok: true });
    expect(replies(persisted)[0]).toEqual({ ok: true, message: expect.stringContaining(`membership epoch ${s3Draining.epoch + 1}`) });
    expect(left.membership.members.map((entry) => entry.id)).toEqual(['s1', 's2']);
  });

  it('a server that joined and drained through the same member, then left, is not brought back by that member', () => {
    // The membership random walk's find: s1 made the join and the drain and never adopted a peer's record between, so
    // it still remembered the join, and made it again once the record without s3 arrived.
    const pair = bootstrapMembership(['s1', 's2'].map((id) => member(id)));
    const complete = ([state, effects]: [NodeState, NodeEffect[]]) => run(state, ...effects.flatMap((effect) => (effect.type === 'meta.commit' && effect.completionId !== null ? [{ type: 'io.done', completionId: effect.completionId, ok: true } as NodeInput] : [])));
    let [s1] = complete(run(startedNodeOf('s1', [beta], pair, ['s1', 's2']), { type: 'admin.changeMembership', requestId: 'add', change: { kind: 'add', member: member('s3') } }));
    [s1] = complete(run(s1, { type: 'admin.changeMembership', requestId: 'drain', change: { kind: 'drain', id: 's3' } }));
    const left = changedMembership(s1.membership, { kind: 'remove', id: 's3' }) as Membership;
    const [after, effects] = complete(run(s1, { type: 'peer.message', from: 's3', message: { type: 'membership.update', membership: left } }));
    expect(after.membership).toEqual(left);
    expect(messagesOf(effects, 'membership.update')).toEqual([]);
  });

  it('a new record starts the leave check over; the check is re-sent on a bounded timer', () => {
    const [s3Asking, asked] = run(startedNode('s3', s3Draining), remove('s3'));
    const timer = asked.find((effect) => effect.type === 'timer.set' && effect.timerId.startsWith('leave|'));
    const [, resent] = run(s3Asking, { type: 'timer.fired', timerId: (timer as { timerId: string }).timerId });
    expect(messagesOf(resent, 'leave.check').map((check) => check.to)).toEqual(['s1', 's2']);
    let state = s3Asking;
    let firings = 0;
    for (let retry = 0; retry < 100; retry += 1) {
      const [next, effects] = run(state, { type: 'timer.fired', timerId: `leave|${s3Draining.epoch}|${retry}` });
      state = next;
      if (messagesOf(effects, 'leave.check').length === 0) break;
      firings += 1;
    }
    expect(firings).toBe(state.config.peerRetriesMax);
    // Both confirm, then a member joins: the confirmations were about the old record and no longer count.
    const clear = (from: string): NodeInput => ({ type: 'peer.message', from, message: { type: 'leave.answer', membership: s3Draining, clear: true } });
    const joined = changedMembership(s3Draining, { kind: 'add', member: member('s4') }) as Membership;
    const [, after] = run(s3Asking, clear('s1'), clear('s2'), { type: 'peer.message', from: 's1', message: { type: 'membership.update', membership: joined } }, remove('s3'));
    expect(replies(after)).toEqual([{ ok: false, message: expect.stringContaining('waiting for s1, s2, s4 to confirm') }]);
  });

  it('a server that has left refuses piece copies, writes, reads and commits of a move toward it, and tells the sender its record', () => {
    const left = changedMembership(s3Draining, { kind: 'remove', id: 's3' }) as Membership;
    const s3 = startedNode('s3', left);
    const pageKey = { volume: 'beta', page: 0 };
    const [afterCopy, copyEffects] = run(s3, { type: 'peer.message', from: 's1', message: { type: 'piece.copy', pageKey, attempt: 1, epoch: 2, piece: 0, offsetBlocks: 0, lengthBlocks: 4, sequence: 1, handedOverBlocks: 0, sourceSequence: 1, dataToken: 't' } });
    expect(afterCopy.replicas.get('beta/0')).toBeUndefined();
    // The copy's bytes are let go unwritten.
    expect(copyEffects).toEqual([{ type: 'peer.send', to: 's1', message: { type: 'membership.update', membership: left } }, { type: 'token.release', token: 's1>t' }]);
    const [afterWrite, writeEffects] = run(s3, { type: 'peer.message', from: 's1', message: { type: 'block.write', requestId: 'w', pageKey, attempt: 1, epoch: 2, offsetBlocks: 0, lengthBlocks: 1, sequence: 2, fua: false, dataToken: 't', senderIncarnation: 0 } });
    expect(afterWrite.replicas.get('beta/0')).toBeUndefined();
    expect(messagesOf(writeEffects, 'block.written').map((sent) => sent.message)).toEqual([{ type: 'block.written', requestId: 'w', ok: false, lossEpoch: 0 }]);
    const [, readEffects] = run(s3, { type: 'peer.message', from: 's1', message: { type: 'block.read', requestId: 'r', pageKey, attempt: 1, epoch: 2, offsetBlocks: 0, lengthBlocks: 1 } });
    expect(messagesOf(readEffects, 'block.readDone').map((sent) => sent.message)).toEqual([{ type: 'block.readDone', requestId: 'r', ok: false, dataToken: null }]);
    const [afterCommit, commitEffects] = run(s3, { type: 'peer.message', from: 's1', message: { type: 'move.commit', pageKey, attempt: 1, epoch: 2, freshCopy: true, sourceSequence: 1 } });
    expect(afterCommit.replicas.get('beta/0')).toBeUndefined();
    expect(commitEffects.filter((effect) => effect.type !== 'peer.send' || effect.message.type !== 'membership.update')).toEqual([]);
  });
});
