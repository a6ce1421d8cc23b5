import type { ServerId } from '../identifiers.js';
import { pageKeyText } from '../identifiers.js';
import type { Membership, MembershipChange } from '../membership/membership.js';
import { changedMembership, isNewerMembership, memberIds, membershipProblem } from '../membership/membership.js';
import { isReadyToLeave } from '../membership/drain-plan.js';
import type { NodeEffect } from './node-io.js';
import type { NodeDraft } from './node-draft.js';

/**
 * The node's side of dynamic membership (machines/membership/membership.ts):
 * changes made here on an administrator's request, records adopted from
 * peers, and the welcome a newly learned member gets.
 *
 * Theory of operation. A change is checked against the record and, for a
 * server leaving, against this node's own state (only the leaving server
 * knows it holds nothing: a removal is therefore asked of that server). The
 * new record is adopted at once and persisted in order with the node's other
 * metadata; it is sent to every member of the old and the new record, so the
 * leaving server's neighbours hear it and the joining server hears it. A
 * record adopted from a peer is persisted the same way; one that is older
 * than ours is answered with ours. Every server that learns of a member it
 * did not know sends it the volume definitions and the routes it knows past
 * their initial owner, so the new member can serve and forward at once
 * (stale routes still repair lazily on use). A leaving server re-pushes the
 * route of every copy it gave up, so no table keeps naming it; a server
 * that learns of a departure while a route still names the departed server
 * asks the remaining members for that page's route, and its FLUSH barriers
 * stop waiting for it.
 */
export interface MembershipWork {
  readonly next: NodeDraft;
  readonly effects: NodeEffect[];
}

export function changeMembership(work: MembershipWork, requestId: string, change: MembershipChange): void {
  const self = work.next.config.self;
  const refuse = (message: string): void => { work.effects.push({ type: 'admin.reply', requestId, ok: false, message }); };
  if (change.kind === 'remove') {
    if (change.id !== self) return refuse(`ask ${change.id} itself to leave: only it knows it holds no page`);
    if (!isReadyToLeave(work.next.finish())) return refuse(`${self} still holds pages or runs moves`);
  }
  const previous = work.next.membership;
  const next = changedMembership(previous, change);
  if (typeof next === 'string') return refuse(next);
  adoptMembership(work, next);
  if (change.kind === 'remove') pushGivenUpRoutes(work, memberIds(next));
  const told = new Set([...memberIds(previous), ...memberIds(next)]);
  told.delete(self);
  for (const to of told) work.effects.push({ type: 'peer.send', to, message: { type: 'membership.update', membership: next } });
  work.effects.push({ type: 'admin.reply', requestId, ok: true, message: `membership epoch ${next.epoch}: ${describeMembers(next)}` });
}

/** A peer's record: adopt it if newer, answer with ours if it is older. */
export function receiveMembership(work: MembershipWork, from: ServerId, membership: Membership): void {
  if (membershipProblem(membership) !== null) return;
  if (isNewerMembership(membership, work.next.membership)) {
    adoptMembership(work, membership);
    return;
  }
  if (isNewerMembership(work.next.membership, membership)) {
    work.effects.push({ type: 'peer.send', to: from, message: { type: 'membership.update', membership: work.next.membership } });
  }
}

/** The runtime's periodic announcement: every other member hears our record (and answers if theirs is newer). */
export function announceMembership(work: MembershipWork): void {
  const self = work.next.config.self;
  for (const to of memberIds(work.next.membership)) {
    if (to !== self) work.effects.push({ type: 'peer.send', to, message: { type: 'membership.update', membership: work.next.membership } });
  }
}

/** The durable record a restarted server kept (or its runtime's bootstrap record): it replaces the configured one. */
export function startMembership(work: MembershipWork, membership: Membership | null | undefined): void {
  if (!membership) return;
  work.next.membership = membership;
  work.effects.push({ type: 'membership.changed', membership });
}

function adoptMembership(work: MembershipWork, membership: Membership): void {
  const previous = new Set(memberIds(work.next.membership));
  work.next.membership = membership;
  work.effects.push({ type: 'meta.commit', completionId: null, writes: [{ kind: 'membership', membership }] });
  work.effects.push({ type: 'membership.changed', membership });
  const current = new Set(memberIds(membership));
  for (const id of current) {
    if (!previous.has(id) && id !== work.next.config.self) welcome(work, id);
  }
  const gone = [...previous].filter((id) => !current.has(id));
  if (gone.length === 0) return;
  askAboutRoutesNaming(work, new Set(gone), [...current]);
  stopWaitingForFlushesFrom(work, current);
}

/**
 * A FLUSH waits for every member to sync. A server that left held no page
 * when it left (every page it gave away was synced by its new owner before
 * the flip), so a barrier no longer waits for it; one that waited only for it
 * is complete.
 */
function stopWaitingForFlushesFrom(work: MembershipWork, members: ReadonlySet<ServerId>): void {
  for (const [flushId, flush] of Object.entries(work.next.read('flushes'))) {
    const remaining = flush.remaining.filter((id) => members.has(id));
    if (remaining.length === flush.remaining.length) continue;
    if (remaining.length > 0) {
      work.next.flushes[flushId] = { ...flush, remaining };
      continue;
    }
    delete work.next.flushes[flushId];
    work.effects.push({ type: 'client.reply', requestId: flush.requestId, outcome: { status: 'ok' }, dataToken: null });
  }
}

/**
 * A server that left held no page when it left, so a route still naming it
 * is stale (this server missed the push that followed the move away). Ask
 * every remaining member what it knows; the newest answer wins as usual.
 */
function askAboutRoutesNaming(work: MembershipWork, gone: ReadonlySet<ServerId>, members: readonly ServerId[]): void {
  const self = work.next.config.self;
  for (const [key, route] of Object.entries(work.next.read('routes'))) {
    if (!gone.has(route.owner)) continue;
    const pageKey = pageKeyOf(work, key);
    if (!pageKey) continue;
    for (const to of members) if (to !== self) work.effects.push({ type: 'peer.send', to, message: { type: 'route.query', pageKey } });
  }
}

function welcome(work: MembershipWork, to: ServerId): void {
  for (const volume of Object.values(work.next.read('volumes'))) work.effects.push({ type: 'peer.send', to, message: { type: 'volume.define', volume } });
  for (const [key, route] of Object.entries(work.next.read('routes'))) {
    if (route.epoch <= 1) continue;
    const pageKey = pageKeyOf(work, key);
    if (pageKey) work.effects.push({ type: 'peer.send', to, message: { type: 'route.update', pageKey, owner: route.owner, epoch: route.epoch } });
  }
}

function pushGivenUpRoutes(work: MembershipWork, members: readonly ServerId[]): void {
  for (const replica of Object.values(work.next.read('replicas'))) {
    const { pageKey, record } = replica.context;
    if (record?.status !== 'invalid') continue;
    for (const to of members) work.effects.push({ type: 'peer.send', to, message: { type: 'route.update', pageKey, owner: record.owner, epoch: record.epoch } });
  }
}

function pageKeyOf(work: MembershipWork, key: string): { volume: string; page: number } | null {
  const slash = key.lastIndexOf('/');
  const pageKey = { volume: key.slice(0, slash), page: Number(key.slice(slash + 1)) };
  return pageKeyText(pageKey) === key && Number.isSafeInteger(pageKey.page) ? pageKey : null;
}

export function describeMembers(membership: Membership): string {
  return membership.members.map((member) => `${member.id} (weight ${member.capacityWeight}${member.draining ? ', draining' : ''})`).join(', ');
}
