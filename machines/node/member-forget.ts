import type { ServerId } from '../identifiers.js';
import { pageKeyText } from '../identifiers.js';
import type { Membership, MembershipRefusal } from '../membership/membership.js';
import { changedMembership, isRefusedChange, isServerList, memberIds, memberOf, membershipText, refusedChange, sameServers } from '../membership/membership.js';
import { isUnderWay } from '../migration/move-machines.js';
import { copyStanding } from './copy-standing.js';
import type { NodeDraft } from './node-draft.js';
import type { MembershipWork } from './node-membership.js';
import type { Takeover } from './dead-source-takeover.js';
import { completeTakeovers, pagesToTakeOver, takeoverWrites } from './dead-source-takeover.js';
import type { LostPagesWork } from './lost-pages.js';
import { declareLostPages } from './lost-pages.js';
import { adoptMembership, askAboutRoutesNaming, noteDepartedEpoch, receiveMembership, refuseChange, unknownDepartedLossEpoch } from './node-membership.js';

/**
 * Forgetting members that cannot leave by themselves: the administrator's
 * removal of servers that are down for good and hold nothing.
 *
 * Theory of operation. A server normally leaves by itself, once drained
 * (node-membership.ts): only it knows that it holds no page. A server that
 * died cannot, and it stayed a member for ever: every leave of another member
 * waited for its confirmation, and a server that crashed and restarted while
 * it was down failed every FLUSH until it came back (flush-barrier.ts). Here
 * another member removes it, on the administrator's word that it is gone,
 * once the group shows it holds nothing. Several may be forgotten at once (a
 * rack lost together): each waits for no confirmation from the others. They
 * must be marked draining first (ordinary drain changes), so that from that
 * record on no move toward them starts and no volume is created over them
 * (volume-reservation.ts refuses a grant, and its creator a definition, naming
 * a server that is not an active member). Then the asking server checks its
 * own tables and asks every other member to confirm, durably at the current
 * record, that no route it knows names one of them a page's owner, no move it
 * runs heads to one (a move abandoned already serves its page at the source
 * and only waits for the dead destination's answer: it does not count), and
 * no volume it is creating or granting names one. Every page has a route at
 * every member (its initial placement, then each flip, which both sides of the
 * move know), so a page a forgotten server still owns is named at some member;
 * a page that moved away from it has its newer route at the destination, and
 * a member with a stale route asks the others for it (`route.query`) before
 * its next answer. An answer about another record does not count, a change of
 * record starts the check over (a change made at once merges with the forget:
 * membership.ts, `mergedMembership`; the administrator's command still checks
 * every member's record afterwards); checks are re-sent on
 * a bounded timer, and the administrator asks again until every member has
 * confirmed (a member that is down and not forgotten with them blocks the
 * forget, as it blocks a leave). Then they are removed like leaving servers,
 * and the record goes to every member but them.
 *
 * A page copied to a member by a move from a forgotten server, committed there
 * before the server died and flipped, is taken over by that member on the
 * check (or on the ask, if it is the asker), before it confirms
 * (dead-source-takeover.ts): the asker's own stale route to such a page is
 * repaired by the destination's push, so the checks go out even while the
 * asker's routes still name the server.
 *
 * What it does not do by itself. A page whose only copy is on a dead server
 * is not declared lost and given to another: such a server cannot be
 * forgotten (the refusal names its pages) unless the administrator asks for
 * its pages to be declared lost (`declareLost`, lost-pages.ts). A move toward
 * one must be abandoned first (`blockshift move abandon`); its record stays at
 * the source, notifying no one, until a new move of the page replaces it. A
 * forgotten server's loss epoch is unknown, so a FLUSH covering a write it
 * held unsynced reports a possible loss once per connection
 * (`unknownDepartedLossEpoch`); a write it held on a page that moved away was
 * copied and synced by the new owner, unless a power cut took it first, which
 * only its epoch could tell. If it comes back, its peers refuse it (it is no
 * peer of theirs).
 */

/** At most this many pages are named in a refusal. */
const pagesNamedMax = 4;

/**
 * What this server knows that still names one of `servers`, in words; null
 * when nothing does. With `awaitingFlipCounts` false, a page copied here by a
 * move from one of them whose flip this server has not learnt does not count:
 * the forget's asker takes such pages over once they are draining.
 */
export function stillNaming(next: NodeDraft, servers: readonly ServerId[], awaitingFlipCounts = true): string | null {
  const parts = [routesNaming(next, servers, awaitingFlipCounts), movesOrCreationsNaming(next, servers)].filter((part): part is string => part !== null);
  return parts.length === 0 ? null : parts.join('; ');
}

/** The routes here that name one of `servers` owner, in words (see `stillNaming`); null when none does. */
function routesNaming(next: NodeDraft, servers: readonly ServerId[], awaitingFlipCounts: boolean): string | null {
  const self = next.config.self;
  const parts: string[] = [];
  for (const server of servers) {
    const pages: string[] = [];
    let pageCount = 0;
    let awaitingFlip = 0;
    for (const [key, route] of next.routes) {
      if (route.owner !== server) continue;
      const waitsForFlip = copyStanding(next, key) === 'awaitingFlip';
      if (waitsForFlip && !awaitingFlipCounts) continue;
      pageCount += 1;
      if (pages.length < pagesNamedMax) pages.push(key);
      if (waitsForFlip) awaitingFlip += 1;
    }
    if (pageCount > 0) {
      parts.push(`${self}'s routes name ${server} owner of ${pageCount} page${pageCount === 1 ? '' : 's'} (${pages.join(', ')}${pageCount > pages.length ? ', ...' : ''})` +
        (awaitingFlip > 0 ? `, ${awaitingFlip} of them copied here by a move whose flip ${self} has not learnt (a forget of ${server}, draining, makes ${self} take over those it was the source of)` : ''));
    }
  }
  return parts.length === 0 ? null : parts.join('; ');
}

/** The moves here toward one of `servers` and the volumes being created over one, in words; null when there is none. */
function movesOrCreationsNaming(next: NodeDraft, servers: readonly ServerId[]): string | null {
  const self = next.config.self;
  const parts: string[] = [];
  for (const server of servers) {
    const moves = Object.entries(next.read('moves')).filter(([, move]) => move.snapshot.context.destination === server && isUnderWay(move.snapshot)).map(([key]) => key);
    if (moves.length > 0) parts.push(`${self} moves ${moves.slice(0, pagesNamedMax).join(', ')}${moves.length > pagesNamedMax ? ', ...' : ''} toward ${server}`);
    const creations = Object.values(next.read('volumeReservations')).filter((held) => held.volume.servers.includes(server)).map((held) => held.volume.name);
    if (creations.length > 0) parts.push(`volume ${creations.join(', ')}, being created over ${server}, is held at ${self}`);
  }
  return parts.length === 0 ? null : parts.join('; ');
}

/** The administrator asks this server to forget `servers` (see the top of the file). */
export function forgetMember(work: MembershipWork & LostPagesWork, requestId: string, servers: readonly ServerId[], declareLost = false): void {
  const self = work.next.config.self;
  const refuse = (message: string, refusal?: MembershipRefusal): void => refuseChange(work, requestId, refusedChange(message, refusal));
  const forgotten = [...new Set(servers)].sort();
  if (forgotten.length === 0) return refuse('no member to forget');
  if (forgotten.includes(self)) return refuse(`${self} cannot forget itself: drain it, and it leaves once it holds nothing`);
  const current = work.next.membership;
  const strangers = forgotten.filter((id) => !memberOf(current, id));
  if (strangers.length > 0) return refuse(`${strangers.join(', ')} ${strangers.length === 1 ? 'is' : 'are'} not a member`, { reason: 'notAMember', servers: strangers });
  // A page copied here by a move from one of them, whose flip it died before making, is taken over first, and only
  // once its route is durable does it stop counting (dead-source-takeover.ts): refused meanwhile, and asked again.
  const takeovers = pagesToTakeOver(work.next, forgotten);
  if (takeovers.length > 0) {
    const completionId = work.awaitCompletion({ kind: 'takeover.durable', servers: forgotten, takeovers });
    work.effects.push({ type: 'meta.commit', completionId, writes: takeoverWrites(takeovers) });
    askToConfirmForget(work, forgotten);
    return refuse(`taking over ${takeovers.length} page${takeovers.length === 1 ? '' : 's'} (${takeovers.slice(0, pagesNamedMax).map(({ pageKey }) => pageKeyText(pageKey)).join(', ')}${takeovers.length > pagesNamedMax ? ', ...' : ''}) copied to ${self} by moves from ${forgotten.join(', ')} whose flips never came; ask again`, { reason: 'stillHolds', servers: forgotten });
  }
  // Looked at before the drain is asked for: a drain cannot be taken back, and a server still owning pages cannot be
  // forgotten. Before the drain, pages this server may take over do not count: the answer is to drain first. Once
  // draining, those it could not take over count (a stale route: dead-source-takeover.ts, "Which source").
  const draining = forgotten.every((id) => memberOf(current, id)!.draining);
  const held = stillNaming(work.next, forgotten, draining);
  // Only routes left (no move toward them, no volume being created over them): with the administrator's leave, the
  // pages they name owner are declared lost (lost-pages.ts), once the servers are draining.
  if (held !== null && declareLost && movesOrCreationsNaming(work.next, forgotten) === null) {
    if (!draining) {
      const notDraining = forgotten.filter((id) => !memberOf(current, id)!.draining);
      return refuse(`drain ${notDraining.join(', ')} first, so that no move toward ${notDraining.length === 1 ? 'it' : 'them'} starts`, { reason: 'notDraining', servers: notDraining });
    }
    return declareLostPages(work, requestId, forgotten);
  }
  if (held !== null) {
    askAboutRoutesNaming(work, new Set(forgotten), memberIds(current).filter((id) => !forgotten.includes(id)));
    // The others are asked all the same: a committed destination of a move from one of them takes its page over on
    // the check (dead-source-takeover.ts), which is what repairs this server's route.
    if (draining) askToConfirmForget(work, forgotten);
    return refuse(`cannot forget ${forgotten.join(', ')}: ${held}. A page a server owns must move away first (a page whose only copy is on a dead server cannot), and a move toward it must be abandoned`, { reason: 'stillHolds', servers: forgotten });
  }
  // What other members found at this record: refused with it, and asked again (a stale route there is being repaired).
  const check = work.next.forgetCheck;
  const refusals = check !== null && sameServers(check.servers, forgotten) && check.epoch === current.epoch ? Object.entries(check.refusals) : [];
  if (refusals.length > 0) {
    work.next.forgetCheck = { ...check!, refusals: {}, retries: 0 };
    sendForgetChecks(work);
    return refuse(`cannot forget ${forgotten.join(', ')}: ${refusals.map(([, reason]) => reason).join('; ')}. A page a server owns must move away first (a page whose only copy is on a dead server cannot), and a move toward it must be abandoned`, { reason: 'stillHolds', servers: forgotten });
  }
  const notDraining = forgotten.filter((id) => !memberOf(current, id)!.draining);
  if (notDraining.length > 0) return refuse(`drain ${notDraining.join(', ')} first, so that no move toward ${notDraining.length === 1 ? 'it' : 'them'} starts`, { reason: 'notDraining', servers: notDraining });
  const waitingFor = membersNotConfirmingForget(work.next, forgotten);
  if (waitingFor.length > 0) {
    askToConfirmForget(work, forgotten);
    return refuse(`waiting for ${waitingFor.join(', ')} to confirm at membership epoch ${current.epoch} that nothing they know names ${forgotten.join(', ')} (a member that is down blocks this; forget it with them)`, { reason: 'waitingFor', servers: waitingFor });
  }
  const next = changedMembership(current, { kind: 'forget', ids: forgotten });
  if (isRefusedChange(next)) return refuseChange(work, requestId, next);
  noteForgotten(work, forgotten);
  const told = memberIds(current).filter((id) => id !== self && !forgotten.includes(id));
  adoptMembership(work, next, { requestId, told, removal: false });
}

/**
 * What a member that confirms (or makes) a forget keeps of the servers: an
 * unknown loss epoch, unless one was recorded when it asked to leave (it held
 * no page from then on, so that epoch bounds what it could lose: a review found
 * a drained server's leave epoch overwritten, and a FLUSH then failing for
 * nothing). The record keeps them as departed, so no merge with a record
 * that still names them brings them back (until 27 Nov a join made again
 * after the forget did: a review found it).
 */
function noteForgotten(work: MembershipWork, servers: readonly ServerId[]): void {
  for (const id of servers) if (work.next.read('departedLossEpochs')[id] === undefined) noteDepartedEpoch(work, id, unknownDepartedLossEpoch);
}

/** The members other than this server and the forgotten ones that have not yet confirmed at the current record. */
function membersNotConfirmingForget(next: NodeDraft, servers: readonly ServerId[]): ServerId[] {
  const check = next.forgetCheck;
  const confirmed = check !== null && sameServers(check.servers, servers) && check.epoch === next.membership.epoch ? check.confirmed : [];
  return memberIds(next.membership).filter((id) => id !== next.config.self && !servers.includes(id) && !confirmed.includes(id));
}

/** Starts a check at the current record, or restarts one whose retries ran out; one still running is left to its timer. */
function askToConfirmForget(work: MembershipWork, servers: readonly ServerId[]): void {
  const check = work.next.forgetCheck;
  const epoch = work.next.membership.epoch;
  const same = check !== null && sameServers(check.servers, servers) && check.epoch === epoch;
  if (same && check.retries < work.next.config.peerRetriesMax) return;
  work.next.forgetCheck = { servers, epoch, confirmed: same ? check.confirmed : [], refusals: same ? check.refusals : {}, retries: 0 };
  sendForgetChecks(work);
}

function sendForgetChecks(work: MembershipWork): void {
  const check = work.next.forgetCheck;
  if (!check) return;
  for (const to of membersNotConfirmingForget(work.next, check.servers)) {
    work.effects.push({ type: 'peer.send', to, message: { type: 'forget.check', membership: work.next.membership, servers: check.servers } });
  }
  work.effects.push({ type: 'timer.set', timerId: `forget|${check.epoch}|${check.retries}`, delayMs: work.next.config.peerRetryDelayMs });
}

/** The check's retry timer: ask the members that have not answered again, a bounded number of times. */
export function forgetCheckTimerFired(work: MembershipWork, epoch: number, retries: number): void {
  const check = work.next.forgetCheck;
  if (!check || check.epoch !== epoch || check.retries !== retries || check.epoch !== work.next.membership.epoch) return;
  if (check.retries >= work.next.config.peerRetriesMax || membersNotConfirmingForget(work.next, check.servers).length === 0) return;
  work.next.forgetCheck = { ...check, retries: check.retries + 1 };
  sendForgetChecks(work);
}

export function isForgetCheckTimerLive(check: { epoch: number; retries: number } | null, epoch: string, retries: string): boolean {
  return check !== null && String(check.epoch) === epoch && String(check.retries) === retries;
}

/**
 * Another member asks whether anything here names `servers`. The record it
 * sends is adopted if newer; if it is ours and marks them all draining, it is
 * made durable (again: harmless) before the answer, so a crash cannot bring
 * back a record under which this server would start a move toward one.
 */
export function receiveForgetCheck(work: MembershipWork, from: ServerId, membership: Membership, servers: readonly ServerId[]): void {
  receiveMembership(work, from, membership);
  const current = work.next.membership;
  if (!isServerList(servers, current) || servers.includes(work.next.config.self) || membershipText(current) !== membershipText(membership)) return;
  if (!servers.every((id) => memberOf(current, id)?.draining)) return;
  // Pages to take over go in the same commit, which the answer waits for: learnt only once durable (dead-source-takeover.ts).
  const takeovers = pagesToTakeOver(work.next, servers);
  const completionId = work.awaitCompletion({ kind: 'forget.confirm', to: from, servers, epoch: current.epoch, takeovers });
  work.effects.push({ type: 'meta.commit', completionId, writes: [{ kind: 'membership', membership: current }, ...takeoverWrites(takeovers)] });
}

/** The asker's takeovers are durable (`forgetMember`): learnt and pushed; the administrator's next ask goes on. */
export function takeoversDurable(work: MembershipWork, servers: readonly ServerId[], takeovers: readonly Takeover[], ok: boolean): void {
  if (ok) completeTakeovers(work, takeovers, servers);
}

/**
 * The record a forget check asked about is durable: answer whether anything
 * here names the servers (a stale route is asked about). A clear answer notes
 * them as departed with an unknown loss epoch, for the FLUSHes once they are
 * gone (a mark a server that leaves by itself replaces with its own epoch).
 */
export function answerForgetCheck(work: MembershipWork, to: ServerId, servers: readonly ServerId[], epoch: number, takeovers: readonly Takeover[], ok: boolean): void {
  if (!ok) return;
  completeTakeovers(work, takeovers, servers);
  const current = work.next.membership;
  if (current.epoch !== epoch || !servers.every((id) => memberOf(current, id)?.draining)) return;
  const reason = stillNaming(work.next, servers);
  if (reason === null) noteForgotten(work, servers);
  else askAboutRoutesNaming(work, new Set(servers), memberIds(current).filter((id) => !servers.includes(id)));
  work.effects.push({ type: 'peer.send', to, message: { type: 'forget.answer', membership: current, servers, clear: reason === null, reason } });
}

/** A refusal's words are kept up to this length (a peer's text, shown to the administrator). */
const refusalReasonCharsMax = 400;

/**
 * A member's answer counts only if it is about our current record and check.
 * A clear one confirms; one that is not is kept with what the member found,
 * for the administrator's next ask (a review found a refusal dropped: the
 * command waited out its time-out and blamed a member that was up).
 */
export function receiveForgetAnswer(work: MembershipWork, from: ServerId, membership: Membership, servers: readonly ServerId[], clear: boolean, reason: string | null): void {
  const check = work.next.forgetCheck;
  const current = work.next.membership;
  if (!check || !Array.isArray(servers) || !sameServers(check.servers, servers) || check.epoch !== current.epoch || membershipText(membership) !== membershipText(current)) return;
  if (from === work.next.config.self || servers.includes(from) || !memberOf(current, from) || check.confirmed.includes(from)) return;
  if (clear) {
    const { [from]: _dropped, ...refusals } = check.refusals;
    work.next.forgetCheck = { ...check, confirmed: [...check.confirmed, from], refusals };
    return;
  }
  const words = typeof reason === 'string' ? reason.slice(0, refusalReasonCharsMax) : `${from} knows something that names ${servers.join(', ')}`;
  work.next.forgetCheck = { ...check, refusals: { ...check.refusals, [from]: words } };
}
