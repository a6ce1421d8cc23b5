import type { PageKey, ServerId } from '../identifiers.js';
import { pageKeyOfText } from '../identifiers.js';
import type { Membership, MembershipChange } from '../membership/membership.js';
import { changedMembership, generationOf, isRefusedChange, memberIds, memberOf, membershipProblem, membershipText, mergedMembership, refusedChange } from '../membership/membership.js';
import { withHolderReplaced } from './loss-watch.js';
import type { RefusedChange } from '../membership/membership.js';
import { isReadyToLeave } from '../membership/drain-plan.js';
import type { NodeEffect, Route } from './node-io.js';
import type { NodeDraft } from './node-draft.js';
import { settleFlushParts } from './flush-barrier.js';
import { pushGivenUpRoutes } from './given-up-routes.js';
import { forgetMember } from './member-forget.js';
import type { LostPagesWork } from './lost-pages.js';
import type { Continuation, MembershipChangeMade } from './node-state.js';

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
 * peer's record is merged with ours (membership.ts, `mergedMembership`); a
 * merge that changes ours is persisted the same way, and a peer whose record
 * lacks something ours has is answered with ours. Every server that learns of a member it
 * did not know sends it the volume definitions and the routes it knows past
 * their initial owner, so the new member can serve and forward at once
 * (stale routes still repair lazily on use). A leaving server re-pushes the
 * route of every copy it gave up, so no table keeps naming it; a server
 * that learns of a departure while a route still names the departed server
 * asks the remaining members for that page's route, and its FLUSH barriers
 * stop waiting for it.
 *
 * Leaving safely. A server that holds nothing may still be the destination
 * of a move another member started before it learnt of the drain (a late
 * admin or balancer move, a lost update, a move restarted after a crash); if
 * it left, that move would finish onto a server that is gone. So a drained
 * server leaves only once every remaining member has answered a leave check
 * at its current record: the member makes that record (which marks the
 * asker draining, so it refuses new moves toward it) durable, then answers
 * whether it runs any move toward the asker. Answers about another record do
 * not count, and any change of record starts the check over. Checks are
 * re-sent on a bounded timer; the drain driver asks again after that. A
 * member that is down cannot answer and so blocks the leave until it is back
 * (or is itself removed). A move toward the drained server that started
 * before its source learnt of the drain simply completes; the server then
 * holds the page again and its drain moves it on.
 */
export interface MembershipWork {
  readonly next: NodeDraft;
  readonly effects: NodeEffect[];
  /** Registers a continuation and returns the completion id that resumes it. */
  awaitCompletion(continuation: Continuation): string;
  /** Learns a route into the table (node.ts): a takeover's, once durable (dead-source-takeover.ts). */
  learnRoute(pageKey: PageKey, route: Route): void;
}

export function changeMembership(work: MembershipWork & LostPagesWork, requestId: string, change: MembershipChange): void {
  if (change.kind === 'forget') return forgetMember(work, requestId, change.ids, change.declareLost === true);
  const self = work.next.config.self;
  const refuse = (refused: RefusedChange): void => refuseChange(work, requestId, refused);
  if (change.kind === 'remove') {
    if (change.id !== self) return refuse(refusedChange(`ask ${change.id} itself to leave: only it knows it holds no page`));
    if (!isReadyToLeave(work.next.finish())) return refuse(refusedChange(`${self} still holds pages or runs moves`, { reason: 'stillHolds', servers: [self] }));
  }
  const previous = work.next.membership;
  const next = changedMembership(previous, change);
  if (isRefusedChange(next)) return refuse(next);
  if (change.kind === 'remove') {
    const waitingFor = membersNotConfirmingLeave(work);
    if (waitingFor.length > 0) {
      askToConfirmLeave(work);
      return refuse(refusedChange(`waiting for ${waitingFor.join(', ')} to confirm at membership epoch ${previous.epoch} that no move toward ${self} runs (a member that is down blocks the leave)`, { reason: 'waitingFor', servers: waitingFor }));
    }
  }
  const told = new Set([...memberIds(previous), ...memberIds(next)]);
  told.delete(self);
  adoptMembership(work, next, { requestId, told: [...told], removal: change.kind === 'remove' });
}

/** Answers the administrator that a membership change is refused, with the message and the reason. */
export function refuseChange(work: MembershipWork, requestId: string, refused: RefusedChange): void {
  work.effects.push({ type: 'admin.reply', requestId, ok: false, message: refused.message, refusal: refused.refusal });
}

/**
 * A peer's record: merge it with ours (membership.ts, `mergedMembership`).
 * If that changes ours, adopt the merge; a merge that is neither record (two
 * changes made at once) goes to every member once durable, as a change made
 * here does. The sender hears the merge unless it is its own record. An
 * epoch-0 record is each server's own configuration, never another's: two
 * of them differ only while the operator rolls out a changed config, and
 * adopting one by its text (the tie-break) let the old config's record win,
 * be persisted and then outlive the rollout (a review reproduced it).
 */
export function receiveMembership(work: MembershipWork, from: ServerId, membership: Membership): void {
  if (membershipProblem(membership) !== null) return;
  const own = work.next.membership;
  if (membership.epoch === 0 && own.epoch === 0) return;
  const merged = mergedMembership(own, membership);
  const theirs = merged === membership || membershipText(merged) === membershipText(membership);
  if (merged !== own && membershipText(merged) !== membershipText(own)) {
    const told = theirs ? null : [...new Set([...memberIds(own), ...memberIds(membership), ...memberIds(merged)])].filter((id) => id !== work.next.config.self);
    adoptMembership(work, merged, told === null ? null : { requestId: null, told, removal: false });
  }
  // The sender's record lacks what ours adds (or is older): it hears ours, now or once the merge is durable.
  if (!theirs && (merged === own || membershipText(merged) === membershipText(own))) {
    work.effects.push({ type: 'peer.send', to: from, message: { type: 'membership.update', membership: own } });
  }
}

/** The runtime's periodic announcement: every other member hears our record (and answers if theirs is newer). */
export function announceMembership(work: MembershipWork): void {
  const self = work.next.config.self;
  for (const to of memberIds(work.next.membership)) {
    if (to !== self) work.effects.push({ type: 'peer.send', to, message: { type: 'membership.update', membership: work.next.membership } });
  }
  askAboutRoutesNamingNonMembers(work);
}

/** At most this many pages are asked about per call of `askAboutRoutesNamingNonMembers`: a bound on one step's messages. */
export const nonMemberRoutesAskedMax = 64;

/**
 * Asks every other member for the route of each page (up to
 * `nonMemberRoutesAskedMax`) this server's table names a server that is not
 * a member owner of. Such a route is stale (a server leaves or is forgotten
 * only once it owns nothing), and requests following it would go to a
 * server that never answers. The ask made when a departure is learnt can be
 * lost, and a restart can bring back a route whose repair was never made
 * durable (a random walk of the dead-source takeover found a survivor
 * routing to the forgotten source for good): so this runs at every start
 * and every announcement, until a look finds no such route; it scans the
 * table only while one may remain (`nonMemberRoutesMayRemain`).
 */
export function askAboutRoutesNamingNonMembers(work: MembershipWork): void {
  // Nothing has departed since a look found no such route: no scan (see NodeState.nonMemberRoutesMayRemain).
  if (!work.next.nonMemberRoutesMayRemain) return;
  const self = work.next.config.self;
  const membership = work.next.membership;
  const others = memberIds(membership).filter((id) => id !== self);
  let asked = 0;
  for (const [key, route] of work.next.routes) {
    if (asked >= nonMemberRoutesAskedMax) return;
    if (route.owner === self || memberOf(membership, route.owner) !== null) continue;
    const pageKey = pageKeyOfText(key);
    if (!pageKey) continue;
    asked += 1;
    for (const to of others) work.effects.push({ type: 'peer.send', to, message: { type: 'route.query', pageKey } });
  }
  // Looked at every route and found none: until a member departs, there is nothing to ask about.
  if (asked === 0) work.next.nonMemberRoutesMayRemain = false;
}

/** The durable record a restarted server kept (or its runtime's bootstrap record): it replaces the configured one. */
export function startMembership(work: MembershipWork, membership: Membership | null | undefined): void {
  if (!membership) return;
  work.next.membership = membership;
  work.effects.push({ type: 'membership.changed', membership });
}

/** The remaining members that have not yet confirmed this server's leave at its current record. */
function membersNotConfirmingLeave(work: MembershipWork): ServerId[] {
  const self = work.next.config.self;
  const check = work.next.leaveCheck;
  const confirmed = check?.epoch === work.next.membership.epoch ? check.confirmed : [];
  return memberIds(work.next.membership).filter((id) => id !== self && !confirmed.includes(id));
}

/** Starts a leave check at the current record, or restarts one whose retries ran out; one still running is left to its timer. */
function askToConfirmLeave(work: MembershipWork): void {
  const check = work.next.leaveCheck;
  const epoch = work.next.membership.epoch;
  if (check?.epoch === epoch && check.retries < work.next.config.peerRetriesMax) return;
  work.next.leaveCheck = { epoch, confirmed: check?.epoch === epoch ? check.confirmed : [], retries: 0 };
  sendLeaveChecks(work);
}

function sendLeaveChecks(work: MembershipWork): void {
  const check = work.next.leaveCheck;
  if (!check) return;
  for (const to of membersNotConfirmingLeave(work)) work.effects.push({ type: 'peer.send', to, message: { type: 'leave.check', membership: work.next.membership, lossEpoch: work.next.lossEpoch } });
  work.effects.push({ type: 'timer.set', timerId: `leave|${check.epoch}|${check.retries}`, delayMs: work.next.config.peerRetryDelayMs });
}

/** The leave check's retry timer: re-ask the members that have not answered, a bounded number of times. */
export function leaveCheckTimerFired(work: MembershipWork, epoch: number, retries: number): void {
  const check = work.next.leaveCheck;
  if (!check || check.epoch !== epoch || check.retries !== retries || check.epoch !== work.next.membership.epoch) return;
  if (check.retries >= work.next.config.peerRetriesMax || membersNotConfirmingLeave(work).length === 0) return;
  work.next.leaveCheck = { ...check, retries: check.retries + 1 };
  sendLeaveChecks(work);
}

export function isLeaveCheckTimerLive(check: { epoch: number; retries: number } | null, epoch: string, retries: string): boolean {
  return check !== null && String(check.epoch) === epoch && String(check.retries) === retries;
}

/**
 * A draining member asks whether this server runs a move toward it. The
 * record it sends is adopted if newer; if it is ours and marks the asker
 * draining, it is made durable (again: a commit of the same record is
 * harmless) before the answer, so a crash cannot bring back a record under
 * which this server would start a move toward the asker.
 */
export function receiveLeaveCheck(work: MembershipWork, from: ServerId, membership: Membership, lossEpoch: number): void {
  receiveMembership(work, from, membership);
  noteDepartingLossEpoch(work, from, lossEpoch);
  const current = work.next.membership;
  if (membershipText(current) !== membershipText(membership) || !memberOf(current, from)?.draining) return;
  const completionId = work.awaitCompletion({ kind: 'leave.confirm', to: from, epoch: current.epoch });
  work.effects.push({ type: 'meta.commit', completionId, writes: [{ kind: 'membership', membership: current }] });
}

/**
 * A server asking to leave holds no page any more: its loss epoch now is the
 * one FLUSHes compare its earlier writes against once it is gone (see
 * loss-watch.ts). Remembered for the newest `departedServersRememberedMax`
 * askers; a forgotten one makes such a FLUSH fail, never pass.
 */
function noteDepartingLossEpoch(work: MembershipWork, from: ServerId, lossEpoch: number): void {
  const known = work.next.read('departedLossEpochs');
  // Epochs only rise: a late duplicate of a check sent before a power cut must not lower the one recorded. (A forget
  // check's mark, unknownDepartedLossEpoch, gives way: the server was not forgotten, and now leaves by itself.)
  if (known[from] !== undefined && known[from] !== unknownDepartedLossEpoch && known[from] >= lossEpoch) return;
  noteDepartedEpoch(work, from, lossEpoch);
}

/**
 * The loss epoch a forgotten server is judged by once it is gone, which no
 * holder ever reaches: a server forgotten by the administrator
 * (member-forget.ts) never said its epoch, so a FLUSH covering a write it held
 * reports a possible loss (once per connection, then the write is let go)
 * instead of waiting for an answer that cannot come. Noted by every member
 * that confirms a forget check (and by the asker); a member does not judge
 * a departure it heard of no other way so.
 */
export const unknownDepartedLossEpoch = Number.MAX_SAFE_INTEGER;

/** Records `server`'s departed epoch, keeping the newest `departedServersRememberedMax`. */
export function noteDepartedEpoch(work: MembershipWork, server: ServerId, lossEpoch: number): void {
  const departed = work.next.departedLossEpochs;
  delete departed[server];
  departed[server] = lossEpoch;
  const servers = Object.keys(departed);
  for (const server of servers.slice(0, Math.max(0, servers.length - work.next.config.departedServersRememberedMax))) delete departed[server];
}

/** The record a leave check asked about is durable: answer whether any move toward the asker is held (running, interrupted or restarting). */
export function answerLeaveCheck(work: MembershipWork, to: ServerId, epoch: number, ok: boolean): void {
  const current = work.next.membership;
  if (!ok || current.epoch !== epoch || !memberOf(current, to)?.draining) return;
  const clear = !Object.values(work.next.read('moves')).some((move) => move.snapshot.context.destination === to);
  work.effects.push({ type: 'peer.send', to, message: { type: 'leave.answer', membership: current, clear } });
}

/** A member's answer counts only if it is about our current record and finds no move toward us. */
export function receiveLeaveAnswer(work: MembershipWork, from: ServerId, membership: Membership, clear: boolean): void {
  const check = work.next.leaveCheck;
  const current = work.next.membership;
  if (!clear || !check || check.epoch !== current.epoch || membershipText(membership) !== membershipText(current)) return;
  if (from === work.next.config.self || !memberOf(current, from) || check.confirmed.includes(from)) return;
  work.next.leaveCheck = { ...check, confirmed: [...check.confirmed, from] };
}

/**
 * Persist, then act: the record takes effect in memory at once (so moves to a
 * server it marks draining are refused from now on), but nothing is said
 * about it — to the runtime, to peers, to the administrator — until it is
 * durable, so a crash cannot take back a record others have acted on.
 */
export function adoptMembership(work: MembershipWork, membership: Membership, change: MembershipChangeMade | null = null): void {
  // A member whose generation rose (forgotten and added again, in one merge) is a new member, as one added back is.
  const before = work.next.membership;
  const previousMembers = before.members.filter((member) => {
    const now = memberOf(membership, member.id);
    return now === null || generationOf(now) === generationOf(member);
  }).map((member) => member.id);
  work.next.membership = membership;
  work.next.leaveCheck = null;
  work.next.forgetCheck = null;
  work.next.lostCheck = null;
  waitForNewMembersInFlushes(work, previousMembers);
  const completionId = work.awaitCompletion({ kind: 'membership.persisted', membership, previousMembers, change });
  work.effects.push({ type: 'meta.commit', completionId, writes: [{ kind: 'membership', membership }] });
}

/** The record is durable: tell the runtime, greet new members, repair what departures left behind, then tell peers and answer. */
export function membershipPersisted(work: MembershipWork, continuation: Extract<Continuation, { kind: 'membership.persisted' }>, ok: boolean): void {
  const { membership, change } = continuation;
  if (!ok) {
    // The record already took effect in memory, so the commit is tried again after a pause until it holds (or a newer
    // record replaces it). Given up at once, the server kept a record it never made durable nor acted on: its transport
    // never met a new member, and the administrator's retry was refused as
    // already made (a review reproduced both).
    const retryId = work.awaitCompletion(continuation);
    work.effects.push({ type: 'timer.set', timerId: membershipCommitTimerId(retryId), delayMs: work.next.config.moveRestartDelayMs });
    return;
  }
  work.effects.push({ type: 'membership.changed', membership });
  if (change?.removal) pushGivenUpRoutes(work, memberIds(membership));
  actOnNewMembers(work, new Set(continuation.previousMembers), membership);
  if (!change) return;
  for (const to of change.told) work.effects.push({ type: 'peer.send', to, message: { type: 'membership.update', membership } });
  if (change.requestId !== null) work.effects.push({ type: 'admin.reply', requestId: change.requestId, ok: true, message: `membership epoch ${membership.epoch}: ${describeMembers(membership)}` });
}

/**
 * A FLUSH started under an older record may have missed members that already
 * hold data (pages moved to a server this node had not heard of; a restarted
 * server's first barrier must reach every member): every barrier in progress
 * waits for the new members as well, from the moment the record is adopted,
 * so it cannot complete without them. A member added back under an id that
 * had left is no longer judged by the epoch it left with.
 */
function waitForNewMembersInFlushes(work: MembershipWork, previousMembers: readonly ServerId[]): void {
  const added = memberIds(work.next.membership).filter((id) => !previousMembers.includes(id));
  if (added.length === 0) return;
  for (const id of added) if (work.next.read('departedLossEpochs')[id] !== undefined) delete work.next.departedLossEpochs[id];
  // Writes an earlier server of an id added again held unsynced: its successor cannot vouch for them. (Only a later
  // generation: entries naming a server added for the first time are its own, acknowledged before this node heard of it.)
  const successors = added.filter((id) => generationOf(memberOf(work.next.membership, id)!) > 0);
  for (const [volume, watch] of successors.length === 0 ? [] : Object.entries(work.next.read('lossWatches'))) {
    let next = watch;
    for (const id of successors) next = withHolderReplaced(next, id);
    if (next !== watch) work.next.lossWatches[volume] = next;
  }
  for (const [flushId, flush] of Object.entries(work.next.read('flushes'))) {
    work.next.flushes[flushId] = { ...flush, remaining: [...flush.remaining, ...added.filter((id) => !flush.remaining.includes(id))].sort() };
  }
}

function actOnNewMembers(work: MembershipWork, previous: ReadonlySet<ServerId>, membership: Membership): void {
  const current = new Set(memberIds(membership));
  for (const id of current) {
    if (!previous.has(id) && id !== work.next.config.self) welcome(work, id);
  }
  // Barriers waiting for a member the runtime can reach only now (it connects on membership.changed) ask it at once.
  for (const [flushId, flush] of Object.entries(work.next.read('flushes'))) {
    for (const to of flush.remaining) {
      if (!previous.has(to) && current.has(to) && to !== work.next.config.self) work.effects.push({ type: 'peer.send', to, message: { type: 'flush.request', flushId, membershipEpoch: work.next.membership.epoch } });
    }
  }
  const gone = [...previous].filter((id) => !current.has(id));
  if (gone.length === 0) return;
  work.next.nonMemberRoutesMayRemain = true;
  askAboutRoutesNaming(work, new Set(gone), [...current]);
  stopWaitingForFlushesFrom(work, new Set(gone));
}

/**
 * A barrier no longer waits for a member that left (see flush-barrier.ts); one that waited only for it is complete.
 * A holder not yet known as a member stays asked: only a departure settles a part.
 */
function stopWaitingForFlushesFrom(work: MembershipWork, gone: ReadonlySet<ServerId>): void {
  for (const [flushId, flush] of Object.entries(work.next.read('flushes'))) {
    settleFlushParts(work, flushId, flush.remaining.filter((id) => gone.has(id)));
  }
}

/**
 * A server that left held no page when it left, so a route still naming it
 * is stale (this server missed the push that followed the move away). Ask
 * every remaining member what it knows; the newest answer wins as usual.
 */
export function askAboutRoutesNaming(work: MembershipWork, gone: ReadonlySet<ServerId>, members: readonly ServerId[]): void {
  const self = work.next.config.self;
  for (const [key, route] of work.next.routes) {
    if (!gone.has(route.owner)) continue;
    const pageKey = pageKeyOfText(key);
    if (!pageKey) continue;
    for (const to of members) if (to !== self) work.effects.push({ type: 'peer.send', to, message: { type: 'route.query', pageKey } });
  }
}

function welcome(work: MembershipWork, to: ServerId): void {
  // Routes first (one link keeps the order): a definition claims the pages its layout gives the server, at epoch 1,
  // except those whose newer route it already knows. A server forgotten and added again under its id, with a fresh
  // directory, took the definition first and claimed valid copies of pages that had long moved away (a review: two
  // owners in `status`, and a move toward it that restarted for ever).
  sendRoutesPastInitial(work, to, null);
  for (const volume of Object.values(work.next.read('volumes'))) work.effects.push({ type: 'peer.send', to, message: { type: 'volume.define', volume } });
}

/** Sends `to` every route this server knows past its page's initial one (epoch 1), of the volumes named or (null) of all; one pass. */
export function sendRoutesPastInitial(work: Pick<MembershipWork, 'next' | 'effects'>, to: ServerId, volumeNames: ReadonlySet<string> | null): void {
  for (const [key, route] of work.next.routes) {
    if (route.epoch <= 1) continue;
    const pageKey = pageKeyOfText(key);
    if (pageKey && (volumeNames === null || volumeNames.has(pageKey.volume))) work.effects.push({ type: 'peer.send', to, message: { type: 'route.update', pageKey, owner: route.owner, epoch: route.epoch } });
  }
}

export function describeMembers(membership: Membership): string {
  return membership.members.map((member) => `${member.id} (weight ${member.capacityWeight}${member.draining ? ', draining' : ''})`).join(', ');
}

export const membershipCommitTimer = 'membership-commit';

function membershipCommitTimerId(completionId: string): string {
  return `${membershipCommitTimer}|${completionId}|0`;
}

/** A membership commit that failed waits under `completionId` for its retry; it is due while that record is still ours. */
export function isMembershipCommitRetryDue(state: { readonly continuations: ReadonlyMap<string, Continuation> }, completionId: string): boolean {
  return state.continuations.get(completionId)?.kind === 'membership.persisted';
}

/**
 * The pause after a failed membership commit is over: the same record is
 * committed again under the same completion, if it is still this server's
 * record. One that a newer record replaced meanwhile is dropped (the newer
 * record's own commit covers it), and an administrator waiting on it is told.
 */
export function membershipCommitTimerFired(work: MembershipWork, completionId: string): void {
  const continuation = work.next.read('continuations').get(completionId);
  if (continuation?.kind !== 'membership.persisted') return;
  if (membershipText(continuation.membership) === membershipText(work.next.membership)) {
    work.effects.push({ type: 'meta.commit', completionId, writes: [{ kind: 'membership', membership: continuation.membership }] });
    return;
  }
  work.next.continuations.delete(completionId);
  const { change } = continuation;
  if (change && change.requestId !== null) work.effects.push({ type: 'admin.reply', requestId: change.requestId, ok: false, message: `membership epoch ${continuation.membership.epoch} was replaced by epoch ${work.next.membership.epoch} before it could be persisted` });
}

