import { describe, expect, it } from 'vitest';
import type { Membership } from '../../machines/membership/membership.js';
import { bootstrapMembership, changedMembership } from '../../machines/membership/membership.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { isTimerLive, nodeStep } from '../../machines/node/node.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { member, startedNode as startedNodeOf, threeServers } from './membership-fixture.js';

/**
 * Persist, then act: a membership record is acted on — announced to peers,
 * answered to the administrator, handed to the runtime, used to welcome new
 * members — only once its metadata commit has completed, so a crash cannot
 * take back a record that others have already acted on.
 */
const alpha: VolumeDefinition = { name: 'alpha', pageCount: 6, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1', 's2', 's3'] };
const bootstrap = bootstrapMembership(threeServers.map((id) => member(id)));
const addS4: NodeInput = { type: 'admin.changeMembership', requestId: 'add', change: { kind: 'add', member: member('s4') } };

const startedNode = (self: string) => startedNodeOf(self, [alpha], bootstrap);

/** What a step did besides writing metadata: the actions that must wait for durability. */
function actions(effects: readonly NodeEffect[]): string[] {
  return effects.filter((effect) => effect.type !== 'meta.commit').map((effect) => (effect.type === 'peer.send' ? `${effect.message.type}>${effect.to}` : effect.type));
}

function membershipCommit(effects: readonly NodeEffect[], membership: Membership): string {
  const commit = effects.find((effect) => effect.type === 'meta.commit');
  expect(commit).toEqual({ type: 'meta.commit', completionId: expect.any(String), writes: [{ kind: 'membership', membership }] });
  return (commit as { completionId: string }).completionId;
}

describe('a membership record is acted on only once durable', () => {
  it('a change is announced and answered from the commit\'s completion, not before', () => {
    const [changed, effects] = nodeStep(startedNode('s1'), addS4);
    expect(changed.membership.epoch).toBe(1);
    expect(actions(effects)).toEqual([]);
    // The record already governs this node: a move to a server it marks draining would be refused now.
    const [, done] = nodeStep(changed, { type: 'io.done', completionId: membershipCommit(effects, changed.membership), ok: true });
    expect(actions(done).sort()).toEqual(['admin.reply', 'membership.changed', 'membership.update>s2', 'membership.update>s3', 'membership.update>s4', 'volume.define>s4'].sort());
  });

  it('a failed commit is announced and answered to no one, and is made again after a pause until it holds', () => {
    const [changed, effects] = nodeStep(startedNode('s1'), addS4);
    const [paused, failed] = nodeStep(changed, { type: 'io.done', completionId: membershipCommit(effects, changed.membership), ok: false });
    expect(failed).toEqual([{ type: 'timer.set', timerId: expect.stringMatching(/^membership-commit\|/), delayMs: expect.any(Number) }]);
    const timerId = (failed[0] as { timerId: string }).timerId;
    expect(isTimerLive(paused, timerId)).toBe(true);
    const [retried, again] = nodeStep(paused, { type: 'timer.fired', timerId });
    const [, done] = nodeStep(retried, { type: 'io.done', completionId: membershipCommit(again, changed.membership), ok: true });
    expect(actions(done).sort()).toEqual(['admin.reply', 'membership.changed', 'membership.update>s2', 'membership.update>s3', 'membership.update>s4', 'volume.define>s4'].sort());
    expect(done.find((effect) => effect.type === 'admin.reply')).toMatchObject({ requestId: 'add', ok: true });
  });

  it('a failed commit that a newer record replaces before its retry is dropped, and its administrator told so', () => {
    const [changed, effects] = nodeStep(startedNode('s1'), addS4);
    const [paused, failed] = nodeStep(changed, { type: 'io.done', completionId: membershipCommit(effects, changed.membership), ok: false });
    const newer = changedMembership(changed.membership, { kind: 'add', member: member('s5') }) as Membership;
    const [replaced] = nodeStep(paused, { type: 'peer.message', from: 's2', message: { type: 'membership.update', membership: newer } });
    const timerId = (failed[0] as { timerId: string }).timerId;
    const [, fired] = nodeStep(replaced, { type: 'timer.fired', timerId });
    expect(fired).toEqual([{ type: 'admin.reply', requestId: 'add', ok: false, message: 'membership epoch 1 was replaced by epoch 2 before it could be persisted' }]);
  });

  it('a record adopted from a peer reaches the runtime and greets new members only once durable', () => {
    const withS4 = changedMembership(bootstrap, { kind: 'add', member: member('s4') }) as Membership;
    const [adopted, effects] = nodeStep(startedNode('s2'), { type: 'peer.message', from: 's1', message: { type: 'membership.update', membership: withS4 } });
    expect(adopted.membership).toEqual(withS4);
    expect(actions(effects)).toEqual([]);
    const [, done] = nodeStep(adopted, { type: 'io.done', completionId: membershipCommit(effects, withS4), ok: true });
    expect(actions(done)).toEqual(['membership.changed', 'volume.define>s4']);
  });
});
