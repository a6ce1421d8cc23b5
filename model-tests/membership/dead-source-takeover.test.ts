import { describe, expect, it } from 'vitest';
import { pageKeyText } from '../../machines/identifiers.js';
import type { Membership } from '../../machines/membership/membership.js';
import { changedMembership } from '../../machines/membership/membership.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { nodeStep } from '../../machines/node/node.js';
import type { Nodes } from './dead-source-takeover-scenario.js';
import { committedWithDeadSource, exchange, membershipChange, takeoverPageKey, takeoverPageText } from './dead-source-takeover-scenario.js';

/**
 * A source that dies for good after its destination committed, before its
 * flip (machines/node/dead-source-takeover.ts), in the scenario of
 * dead-source-takeover-scenario.ts. The administrator drains and forgets s1
 * through s3 (or s2): the destination makes the flip s1 would have made, and
 * the forget completes. Before, the forget was refused for good ("only s1
 * could send it") and the page could be neither moved on nor drained.
 */
const pageKey = takeoverPageKey;
const pageText = takeoverPageText;

/** `exchange`'s effects in order, each marked with the server that returned it (`at`). */
function run(nodes: Nodes, at: string, inputs: readonly NodeInput[], fails?: (commit: Extract<NodeEffect, { type: 'meta.commit' }>) => boolean): NodeEffect[] {
  return exchange(nodes, at, inputs, fails).flatMap((step) => step.effects.map((effect) => ({ ...effect, at: step.at })));
}

const onward: NodeInput = { type: 'admin.move', requestId: 'onward', pageKey, to: 's3', kind: 'unit' };
const admin = membershipChange;
const repliesTo = (effects: readonly NodeEffect[], requestId: string) => effects.filter((effect): effect is Extract<NodeEffect, { type: 'admin.reply' }> => effect.type === 'admin.reply' && effect.requestId === requestId);
const sent = (effects: readonly NodeEffect[], type: PeerMessage['type']) => effects.filter((effect): effect is Extract<NodeEffect, { type: 'peer.send' }> => effect.type === 'peer.send' && effect.message.type === type);

/** Where a client read of block 0 at `node` goes: served from the local copy, or forwarded (to whom). */
function readGoesTo(node: NodeState): string {
  const [, effects] = nodeStep(node, { type: 'client.request', requestId: 'probe', connectionId: 'probe', operation: { kind: 'read', pageKey, offsetBlocks: 0, lengthBlocks: 1, fua: false } });
  if (effects.some((effect) => effect.type === 'data.read' && pageKeyText(effect.pageKey) === pageText)) return 'local';
  const forward = sent(effects, 'request.forward')[0];
  return forward ? `forwarded to ${forward.to}` : effects.map((effect) => effect.type).join(', ');
}

describe('a source that dies for good between its destination\'s commit and its flip', () => {
  it('is forgotten through another member: the destination takes the page over, durably before it confirms, and every member learns it', () => {
    const { nodes, epoch } = committedWithDeadSource();
    expect(readGoesTo(nodes['s3']!)).toBe('forwarded to s1');
    // Stuck: s2 serves the page, but refuses to move it on while it waits for s1's flip.
    expect(repliesTo(nodeStep(nodes['s2']!, onward)[1], 'onward')[0]).toMatchObject({ ok: false, flipPending: true });

    expect(repliesTo(run(nodes, 's3', [admin('drain', { kind: 'drain', id: 's1' })]), 'drain')[0]?.ok).toBe(true);
    const first = run(nodes, 's3', [admin('forget', { kind: 'forget', ids: ['s1'] })]);
    // s2's step on the check: the route naming itself goes in the commit its answer waits for, with the record.
    const confirmCommit = first.find((effect): effect is Extract<NodeEffect, { type: 'meta.commit' }> => effect.type === 'meta.commit' && (effect as { at?: string }).at === 's2' && effect.completionId !== null && effect.writes.some((write) => write.kind === 'membership'));
    expect(confirmCommit?.writes).toContainEqual({ kind: 'route', pageKey, route: { owner: 's2', epoch } });
    expect(sent(first, 'route.update').map((effect) => [effect.to, effect.message])).toContainEqual(['s3', { type: 'route.update', pageKey, owner: 's2', epoch }]);
    expect(sent(first, 'forget.answer')[0]?.message).toMatchObject({ clear: true });

    // The route is the flip s1 would have made: s2 at the move's epoch, at both members; s2 now owns the page.
    expect(nodes['s2']!.routes.get(pageText)).toEqual({ owner: 's2', epoch });
    expect(nodes['s3']!.routes.get(pageText)).toEqual({ owner: 's2', epoch });
    expect(readGoesTo(nodes['s2']!)).toBe('local');
    expect(readGoesTo(nodes['s3']!)).toBe('forwarded to s2');

    // The administrator's next ask completes the forget (the first was refused: s3's own route named s1 then).
    expect(repliesTo(first, 'forget')[0]).toMatchObject({ ok: false });
    const second = run(nodes, 's3', [admin('forget-again', { kind: 'forget', ids: ['s1'] })]);
    expect(repliesTo(second, 'forget-again')[0]).toMatchObject({ ok: true });
    for (const id of ['s2', 's3']) expect(nodes[id]!.membership.members.map((entry) => entry.id)).toEqual(['s2', 's3']);
    // And the page can move on from s2 (it could not while awaiting the flip).
    const [moving, moved] = nodeStep(nodes['s2']!, onward);
    expect(repliesTo(moved, 'onward')[0]).toMatchObject({ ok: true });
    expect(moving.moves[pageText]?.snapshot.context.destination).toBe('s3');
  });

  it('is forgotten through the destination itself, which takes the page over once its route is durable, then asks again', () => {
    const { nodes, epoch } = committedWithDeadSource();
    run(nodes, 's2', [admin('drain', { kind: 'drain', id: 's1' })]);
    // Its takeover commit fails first (the store skips it): nothing learnt, the forget refused.
    const failed = run(nodes, 's2', [admin('fails', { kind: 'forget', ids: ['s1'] })], (commit) => commit.writes.some((write) => write.kind === 'route' && write.route.owner === 's2'));
    expect(repliesTo(failed, 'fails')[0]).toMatchObject({ ok: false, message: expect.stringContaining(`taking over 1 page (${pageText}) copied to s2 by moves from s1`) });
    expect(nodes['s2']!.routes.get(pageText)?.owner).toBe('s1');
    const first = run(nodes, 's2', [admin('forget', { kind: 'forget', ids: ['s1'] })]);
    expect(repliesTo(first, 'forget')[0]).toMatchObject({ ok: false });
    expect(nodes['s2']!.routes.get(pageText)).toEqual({ owner: 's2', epoch });
    expect(sent(first, 'route.update').map((effect) => effect.to)).toContain('s3');
    // s3's answer to the check of the failed attempt (its route still named s1) is refused with, and s3 asked again,
    // as the CLI does: the ask after it goes through.
    const second = run(nodes, 's2', [admin('forget-again', { kind: 'forget', ids: ['s1'] })]);
    expect(repliesTo(second, 'forget-again')[0]?.message).toContain("s3's routes name s1 owner of 1 page");
    const third = run(nodes, 's2', [admin('forget-last', { kind: 'forget', ids: ['s1'] })]);
    expect(repliesTo(third, 'forget-last')[0]).toMatchObject({ ok: true });
    expect(nodes['s3']!.routes.get(pageText)).toEqual({ owner: 's2', epoch });
  });

  it('learns nothing while the commit that holds the takeover fails, and confirms nothing; the next check takes the page over', () => {
    const { nodes, epoch } = committedWithDeadSource();
    run(nodes, 's3', [admin('drain', { kind: 'drain', id: 's1' })]);
    const takesOver = (commit: Extract<NodeEffect, { type: 'meta.commit' }>) => commit.writes.some((write) => write.kind === 'route' && write.route.owner === 's2');
    const failed = run(nodes, 's3', [admin('forget', { kind: 'forget', ids: ['s1'] })], takesOver);
    expect(failed.some((effect) => effect.type === 'meta.commit' && takesOver(effect))).toBe(true);
    // The store skipped it: s2 still awaits the flip, pushed nothing, and did not answer the check.
    expect(nodes['s2']!.routes.get(pageText)?.owner).toBe('s1');
    expect(sent(failed, 'route.update').filter((effect) => effect.message.type === 'route.update' && effect.message.owner === 's2')).toEqual([]);
    expect(sent(failed, 'forget.answer')).toEqual([]);
    expect(repliesTo(run(nodes, 's3', [admin('still', { kind: 'forget', ids: ['s1'] })]), 'still')[0]).toMatchObject({ ok: false });
    // s3's check timer asks s2 again: this time the commit lands, and the forget goes through.
    const timer = failed.find((effect): effect is Extract<NodeEffect, { type: 'timer.set' }> => effect.type === 'timer.set' && effect.timerId.startsWith('forget|') && (effect as { at?: string }).at === 's3');
    run(nodes, 's3', [{ type: 'timer.fired', timerId: timer!.timerId }]);
    expect(nodes['s2']!.routes.get(pageText)).toEqual({ owner: 's2', epoch });
    expect(repliesTo(run(nodes, 's3', [admin('again', { kind: 'forget', ids: ['s1'] })]), 'again')[0]).toMatchObject({ ok: true });
  });

  it('takes over only a page whose route names the source at the epoch just below the copy\'s: a stale route is repaired first', () => {
    const { nodes, epoch } = committedWithDeadSource();
    // As if s2's table were older than the move's source (the page may have come from another server since).
    nodes['s2'] = { ...nodes['s2']!, routes: nodes['s2']!.routes.with(pageText, { owner: 's1', epoch: epoch - 2 }) };
    run(nodes, 's3', [admin('drain', { kind: 'drain', id: 's1' })]);
    const first = run(nodes, 's3', [admin('forget', { kind: 'forget', ids: ['s1'] })]);
    // Not taken over on that route: s2 answers that it still names s1, and asks the others for the page's route.
    expect(sent(first, 'forget.answer')[0]?.message).toMatchObject({ clear: false });
    expect(sent(first, 'route.query').filter((effect) => (effect as { at?: string }).at === 's2').map((effect) => effect.to)).toEqual(['s3']);
    // s3's answer (s1 at the epoch below the copy's: s1 was the move's source) lets the next check take it over.
    expect(nodes['s2']!.routes.get(pageText)).toEqual({ owner: 's1', epoch: epoch - 1 });
    run(nodes, 's3', [admin('again', { kind: 'forget', ids: ['s1'] })]);
    const timer = [...first].reverse().find((effect): effect is Extract<NodeEffect, { type: 'timer.set' }> => effect.type === 'timer.set' && effect.timerId.startsWith('forget|') && (effect as { at?: string }).at === 's3');
    run(nodes, 's3', [{ type: 'timer.fired', timerId: timer!.timerId }]);
    expect(nodes['s2']!.routes.get(pageText)).toEqual({ owner: 's2', epoch });
    expect(repliesTo(run(nodes, 's3', [admin('last', { kind: 'forget', ids: ['s1'] })]), 'last')[0]).toMatchObject({ ok: true });
  });

  it('asks every member for the route of a copy awaiting the flip of a server no longer a member (that server would never answer)', () => {
    const { nodes } = committedWithDeadSource();
    const drained = changedMembership(nodes['s2']!.membership, { kind: 'drain', id: 's1' }) as Membership;
    const without = changedMembership(drained, { kind: 'forget', ids: ['s1'] }) as Membership;
    expect(without.members.map((entry) => entry.id)).toEqual(['s2', 's3']);
    const [, refused] = nodeStep({ ...nodes['s2']!, membership: without }, onward);
    expect(repliesTo(refused, 'onward')[0]).toMatchObject({ ok: false, flipPending: true });
    expect(sent(refused, 'route.query').map((effect) => effect.to)).toEqual(['s3']);
    // While s1 is a member, it is the one asked.
    expect(sent(nodeStep(nodes['s2']!, onward)[1], 'route.query').map((effect) => effect.to)).toEqual(['s1']);
  });

  it('takes nothing over until the source is draining: a forget asked first is refused (drain first, at the destination; naming the page elsewhere)', () => {
    const { nodes } = committedWithDeadSource();
    // At s2 the page does not hold the forget back (s2 would take it over): the answer is to drain s1 first, which the
    // CLI's forget does and asks again.
    const atDestination = run(nodes, 's2', [admin('forget', { kind: 'forget', ids: ['s1'] })]);
    expect(repliesTo(atDestination, 'forget')[0]).toMatchObject({ ok: false, refusal: { reason: 'notDraining', servers: ['s1'] } });
    // At s3 the route names s1 owner: refused, naming the page (drained first, s2 takes it over on the check).
    const elsewhere = run(nodes, 's3', [admin('forget', { kind: 'forget', ids: ['s1'] })]);
    expect(repliesTo(elsewhere, 'forget')[0]).toMatchObject({ ok: false, refusal: { reason: 'stillHolds', servers: ['s1'] } });
    expect(repliesTo(elsewhere, 'forget')[0]?.message).toContain(`s3's routes name s1 owner of 1 page (${pageText})`);
    const effects = [...atDestination, ...elsewhere];
    expect(nodes['s2']!.routes.get(pageText)?.owner).toBe('s1');
    expect(sent(effects, 'route.update').filter((effect) => effect.message.type === 'route.update' && effect.message.owner === 's2')).toEqual([]);
  });
});
