import type { ServerId } from '../identifiers.js';
import type { Membership } from '../membership/membership.js';
import { changedMembership, memberIds, memberOf, membershipText } from '../membership/membership.js';
import type { NodeDraft } from './node-draft.js';
import type { MembershipWork } from './node-membership.js';
import { adoptMembership, askAboutRoutesNaming, receiveMembership } from './node-membership.js';

/**
 * Forgetting a member that cannot leave by itself: the administrator's
 * removal of a server that is down for good and holds nothing.
 *
 * Theory of operation. A server normally leaves by itself, once drained
 * (node-membership.ts): only it knows that it holds no page. A server that
 * died cannot, and it stayed a member for ever: every leave of another member
 * waited for its confirmation, and a server that crashed and restarted while
 * it was down failed every FLUSH until it came back (flush-barrier.ts). Here
 * another member removes it, on the administrator's word that it is gone,
 * once the group shows it holds nothing. The member must be marked draining
 * first (an ordinary drain change), so that from that record on no move
 * toward it starts. Then the asking server checks its own tables and asks
 * every other member (not the forgotten one) to confirm, durably at the
 * current record, that no route it knows names the server as a page's owner
 * and no move it runs is headed to it. Every page has a route at every member
 * (its initial placement, then each flip, which both sides of the move know),
 * so a page the server still owns is named at some member; a page that moved
 * away from it has its newer route at the destination, and a member with a
 * stale route asks the others for it (`route.query`) before its next answer.
 * Any answer about another record does not count, and a change of record
 * starts the check over; checks are re-sent on a bounded timer, and the
 * administrator asks again until every member has confirmed (a member that is
 * down blocks the forget, as it blocks a leave). Then the server is removed
 * like a leaving one, and the record is sent to every member but it.
 *
 * What it does not do. A page whose only copy is on the dead server is not
 * declared lost and given to another: such a server cannot be forgotten (the
 * refusal names its pages). A move toward it must be abandoned first
 * (`blockshift move abandon`). Its loss epoch is unknown, so a FLUSH covering
 * a write it held unsynced reports a possible loss once per connection
 * (node-membership.ts, `unknownDepartedLossEpoch`); a write it held on a page
 * that moved away was copied and synced by the new owner, unless a power cut
 * took it first, which only its epoch could tell. If it comes back, its peers
 * refuse it (it is no peer of theirs): its data directory must not be used
 * again under its id.
 */

/** At most this many pages are named in a refusal or a check's answer. */
const pagesNamedMax = 4;

/** What this server knows that still names `server`: pages whose route names it owner, and moves toward it; null when nothing does. */
export function stillNaming(next: NodeDraft, server: ServerId): string | null {
  const pages: string[] = [];
  let pageCount = 0;
  for (const [key, route] of next.routes) {
    if (route.owner !== server) continue;
    pageCount += 1;
    if (pages.length < pagesNamedMax) pages.push(key);
  }
  const moves = Object.entries(next.read('moves')).filter(([, move]) => move.snapshot.context.destination === server).map(([key]) => key);
  if (pageCount === 0 && moves.length === 0) return null;
  const parts: string[] = [];
  if (pageCount > 0) parts.push(`${next.config.self}'s routes name it owner of ${pageCount} page${pageCount === 1 ? '' : 's'} (${pages.join(', ')}${pageCount > pages.length ? ', ...' : ''})`);
  if (moves.length > 0) parts.push(`${next.config.self} moves ${moves.slice(0, pagesNamedMax).join(', ')}${moves.length > pagesNamedMax ? ', ...' : ''} toward it`);
  return parts.join('; ');
}

/** The administrator asks this server to forget `server` (see the top of the file). */
export function forgetMember(work: MembershipWork, requestId: string, server: ServerId): void {
  const self = work.next.config.self;
  const refuse = (message: string): void => { work.effects.push({ type: 'admin.reply', requestId, ok: false, message }); };
  if (server === self) return refuse(`${self} cannot forget itself: drain it, and it leaves once it holds nothing`);
  const current = work.next.membership;
  const member = memberOf(current, server);
  if (!member) return refuse(`${server} is not a member`);
  if (!member.draining) return refuse(`drain ${server} first, so that no move toward it starts`);
  const held = stillNaming(work.next, server);
  if (held !== null) {
    askAboutRoutesNaming(work, new Set([server]), memberIds(current).filter((id) => id !== server));
    return refuse(`${server} cannot be forgotten: ${held}. A page it owns must move away first (a page whose only copy is on ${server} cannot), and a move toward it must be abandoned`);
  }
  const waitingFor = membersNotConfirmingForget(work.next, server);
  if (waitingFor.length > 0) {
    askToConfirmForget(work, server);
    return refuse(`waiting for ${waitingFor.join(', ')} to confirm at membership epoch ${current.epoch} that nothing they know names ${server} (a member that is down blocks this)`);
  }
  const next = changedMembership(current, { kind: 'forget', id: server });
  if (typeof next === 'string') return refuse(next);
  const told = memberIds(current).filter((id) => id !== self && id !== server);
  adoptMembership(work, next, { requestId, told, removal: false });
}

/** The members other than this server and `server` that have not yet confirmed at the current record. */
function membersNotConfirmingForget(next: NodeDraft, server: ServerId): ServerId[] {
  const check = next.forgetCheck;
  const confirmed = check?.server === server && check.epoch === next.membership.epoch ? check.confirmed : [];
  return memberIds(next.membership).filter((id) => id !== next.config.self && id !== server && !confirmed.includes(id));
}

/** Starts a check at the current record, or restarts one whose retries ran out; one still running is left to its timer. */
function askToConfirmForget(work: MembershipWork, server: ServerId): void {
  const check = work.next.forgetCheck;
  const epoch = work.next.membership.epoch;
  const same = check?.server === server && check.epoch === epoch;
  if (same && check.retries < work.next.config.peerRetriesMax) return;
  work.next.forgetCheck = { server, epoch, confirmed: same ? check.confirmed : [], retries: 0 };
  sendForgetChecks(work);
}

function sendForgetChecks(work: MembershipWork): void {
  const check = work.next.forgetCheck;
  if (!check) return;
  for (const to of membersNotConfirmingForget(work.next, check.server)) {
    work.effects.push({ type: 'peer.send', to, message: { type: 'forget.check', membership: work.next.membership, server: check.server } });
  }
  work.effects.push({ type: 'timer.set', timerId: `forget|${check.epoch}|${check.retries}`, delayMs: work.next.config.peerRetryDelayMs });
}

/** The check's retry timer: ask the members that have not answered again, a bounded number of times. */
export function forgetCheckTimerFired(work: MembershipWork, epoch: number, retries: number): void {
  const check = work.next.forgetCheck;
  if (!check || check.epoch !== epoch || check.retries !== retries || check.epoch !== work.next.membership.epoch) return;
  if (check.retries >= work.next.config.peerRetriesMax || membersNotConfirmingForget(work.next, check.server).length === 0) return;
  work.next.forgetCheck = { ...check, retries: check.retries + 1 };
  sendForgetChecks(work);
}

export function isForgetCheckTimerLive(check: { epoch: number; retries: number } | null, epoch: string, retries: string): boolean {
  return check !== null && String(check.epoch) === epoch && String(check.retries) === retries;
}

/**
 * Another member asks whether anything here names `server`. The record it
 * sends is adopted if newer; if it is ours and marks `server` draining, it is
 * made durable (again: harmless) before the answer, so a crash cannot bring
 * back a record under which this server would start a move toward it.
 */
export function receiveForgetCheck(work: MembershipWork, from: ServerId, membership: Membership, server: ServerId): void {
  receiveMembership(work, from, membership);
  const current = work.next.membership;
  if (server === work.next.config.self || membershipText(current) !== membershipText(membership) || !memberOf(current, server)?.draining) return;
  const completionId = work.awaitCompletion({ kind: 'forget.confirm', to: from, server, epoch: current.epoch });
  work.effects.push({ type: 'meta.commit', completionId, writes: [{ kind: 'membership', membership: current }] });
}

/** The record a forget check asked about is durable: answer whether anything here names the server; a stale route is asked about. */
export function answerForgetCheck(work: MembershipWork, to: ServerId, server: ServerId, epoch: number, ok: boolean): void {
  const current = work.next.membership;
  if (!ok || current.epoch !== epoch || !memberOf(current, server)?.draining) return;
  const clear = stillNaming(work.next, server) === null;
  if (!clear) askAboutRoutesNaming(work, new Set([server]), memberIds(current).filter((id) => id !== server));
  work.effects.push({ type: 'peer.send', to, message: { type: 'forget.answer', membership: current, server, clear } });
}

/** A member's answer counts only if it is about our current record and check, and finds nothing naming the server. */
export function receiveForgetAnswer(work: MembershipWork, from: ServerId, membership: Membership, server: ServerId, clear: boolean): void {
  const check = work.next.forgetCheck;
  const current = work.next.membership;
  if (!clear || !check || check.server !== server || check.epoch !== current.epoch || membershipText(membership) !== membershipText(current)) return;
  if (from === work.next.config.self || from === server || !memberOf(current, from) || check.confirmed.includes(from)) return;
  work.next.forgetCheck = { ...check, confirmed: [...check.confirmed, from] };
}
