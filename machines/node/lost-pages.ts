import type { PageKey, ServerId } from '../identifiers.js';
import { pageKeyOfText, pageKeyText, ownValue } from '../identifiers.js';
import type { Membership } from '../membership/membership.js';
import { isServerList, memberIds, memberOf, membershipText, refusedChange, sameServers } from '../membership/membership.js';
import type { ReplicaRecord } from '../replica/replica-record.js';
import type { ReplicaEvent } from '../replica/replica.machine.js';
import type { Takeover } from './dead-source-takeover.js';
import { completeTakeovers, pagesToTakeOver, takeoverWrites } from './dead-source-takeover.js';
import type { NodeDraft } from './node-draft.js';
import { isCommitUnderWay } from './node-state.js';
import type { NodeEffect, Route } from './node-io.js';
import type { Continuation, LostCheck, LostClaim, LostDeclaration, LostPageReport } from './node-state.js';
import { receiveMembership, refuseChange } from './node-membership.js';

/**
 * Declaring lost the pages whose only copy was on a server that died for
 * good: the administrator's explicit choice (`server forget --declare-lost`)
 * to have them served again, empty, rather than keep the group unable to
 * forget that server and those pages unreadable for ever.
 *
 * Theory of operation. A page has one owner, and only its owner moves it:
 * that is what keeps two copies from being written at once. The owner being
 * dead, some survivor must decide for it, and two survivors deciding at once
 * could give one page two owners. So declaring is claimed first. The
 * claimant (the member the administrator asked) makes its claim durable,
 * then asks every other member to accept it (`lost.check`, naming the pages
 * its table says a forgotten server owns, at most `lostPagesPerRoundMax`).
 * A member accepts at most one claim at a time, the one of the smallest
 * claimant id it has seen for the same servers while it stands (its
 * claimant an active member, not drained: it may have died since; its
 * servers members already at the claim's record, not forgotten and not
 * added again since; a claim about other servers is refused until then,
 * naming its claimant for the administrator to ask): it makes the claim
 * durable before it answers, refuses a larger claimant meanwhile, and
 * refuses every claimant while a claim or declaration of its own is under
 * way. Two claimants therefore never both hear every member accept: each
 * must hear the other, and a claimant that accepted the other's claim gave
 * up its own round, while one that had declared already reports the route
 * it declared (below). A member also refuses, once it accepted a claim, a
 * commit of a move from one of the claim's servers, and stops serving the
 * pieces such a move handed over to it (Table 2); it does not report on a
 * page whose commit is under way here until that commit is done (then its
 * copy is reported valid). So from its answer on, no copy of those pages
 * turns valid here, nor takes a write, except by the declaration. Answers
 * name the claimant's round, so one to an earlier round never counts.
 *
 * A member's answer reports, for each page asked, its route and its copy's
 * record, and the pages its own table names a forgotten server owner of
 * (the claimant learns those routes, and asks about them in its next round).
 * Once every other member has answered the claimant's current round, on the
 * administrator's next ask, a page is declared lost only if nobody knows a
 * newer route (one is learnt instead) and nobody holds it valid: a committed
 * destination takes such a page over on the forget's check instead
 * (dead-source-takeover.ts), keeping its data. The page is declared at an
 * epoch two above every epoch reported for it, so above any move the dead
 * server had started (a move's copy is one above its source's route) and
 * any copy still receiving one: such a copy is let go when its holder learns
 * the new route (abandoned-copy.ts, `releaseCopyOfPassedMove`).
 *
 * The claimant serves each declared page itself. First its own data file of
 * the page is deleted, and the deletion awaited (a partial copy it was
 * receiving, or data a crash left without a record, would otherwise be served
 * as the page); then the copy's valid record and the route naming it are
 * made durable in one commit; only then does it learn them, step the copy's
 * replica machine (`replica.recreate`) and push the route to every member.
 * A crash or a failed commit before that leaves the page as it was, and the
 * administrator's next ask starts over. What the page held is gone: reads
 * return zeros, and a FLUSH covering a write the dead server held reports a
 * possible loss (member-forget.ts, `unknownDepartedLossEpoch`). So is a
 * piece a Table 2 move from the dead server had already handed to another
 * member: the page is declared lost whole, the piece let go with the
 * receiving copy.
 *
 * Like a forget, this trusts the administrator's word that the server is
 * dead for good and that nothing it sent is still on its way.
 */
export interface LostPagesWork {
  readonly next: NodeDraft;
  readonly effects: NodeEffect[];
  awaitCompletion(continuation: Continuation): string;
  learnRoute(pageKey: PageKey, route: Route): void;
  /** Steps the page's replica machine; with `alreadyDurable`, its record was committed already (node.ts). */
  stepReplica(pageKey: PageKey, event: ReplicaEvent, awaiting: Continuation | null, alreadyDurable?: boolean): boolean;
}

/** At most this many pages are asked about and declared per round (the rest in the administrator's next asks): a bound on a message and a step. */
export const lostPagesPerRoundMax = 64;

/** The epochs a declared page is put above every epoch reported for it (see the top of the file). */
const declaredEpochsAbove = 2;

/**
 * Whether `claim` still binds: its claimant is an active member (one being
 * drained, or forgotten, may be dead: a review's claimant died after its
 * claim, which then blocked every forget for good), and its servers are
 * members that were already members at the claim's record (once forgotten,
 * an id added again is another server, whose moves must not be refused).
 */
export function claimStands(membership: Membership, claim: LostClaim | null): claim is LostClaim {
  if (claim === null) return false;
  const claimant = memberOf(membership, claim.claimant);
  return claimant !== null && !claimant.draining && claim.servers.every((id) => isClaimedServer(membership, claim, id));
}

/** Whether `id` is one of the claim's servers, still the member it was at the claim's record. */
function isClaimedServer(membership: Membership, claim: LostClaim, id: ServerId): boolean {
  const server = memberOf(membership, id);
  return claim.servers.includes(id) && server !== null && (server.joinedAt ?? 0) <= claim.epoch;
}

/** Whether this server is deleting or recording a page it declared lost (it refuses every claim meanwhile). */
export function isDeclaring(next: NodeDraft): boolean {
  for (const continuation of next.read('continuations').values()) {
    if (continuation.kind === 'lost.deleted' || continuation.kind === 'lost.declared' || continuation.kind === 'lost.claimed') return true;
  }
  return false;
}

/**
 * Whether a commit of a move from `source` is refused here, and the pieces such a move handed over not served: a
 * claim to declare its pages lost was accepted (or made) here. Whoever the claimant, and whether its claim still
 * stands: a claimant drained since may still declare on the answers it has (a review's trace: a write acknowledged
 * here after the claim lapsed, then thrown away by the declaration).
 */
export function refusesCommitFrom(next: NodeDraft, source: ServerId): boolean {
  const claim = next.lostClaim;
  return claim !== null && isClaimedServer(next.membership, claim, source);
}

/**
 * The administrator asks this server (`forgetMember`, with `declareLost`) to
 * forget `servers`, all draining members, while its table still names them
 * owners of pages: claim, ask, or declare, and say what happens.
 */
export function declareLostPages(work: LostPagesWork, requestId: string, servers: readonly ServerId[]): void {
  const next = work.next;
  const self = next.config.self;
  // `declaringLost` names the servers, or the claimant to ask instead; `waitingFor` the members that have not answered.
  const refuse = (message: string, about: readonly ServerId[] = servers, reason: 'declaringLost' | 'waitingFor' = 'declaringLost'): void =>
    refuseChange(work, requestId, refusedChange(message, { reason, servers: about }));
  const named = `${servers.join(', ')}'s pages`;
  if (memberOf(next.membership, self)?.draining) return refuse(`${self} is draining: ask another member to declare ${named} lost`, servers);
  if (isDeclaring(next)) return refuse(`${self} is claiming or declaring ${named} lost; ask again`);
  const claim = next.lostClaim;
  if (claimStands(next.membership, claim) && claim.claimant !== self && (claim.claimant < self || !sameServers(claim.servers, servers))) {
    return refuse(`${claim.claimant} is declaring the pages of ${claim.servers.join(', ')} lost; ask ${claim.claimant}`, [claim.claimant]);
  }
  if (claim === null || claim.claimant !== self || !sameServers(claim.servers, servers) || next.lostCheck === null || next.lostCheck.epoch !== next.membership.epoch) {
    const mine: LostClaim = { servers, claimant: self, epoch: next.membership.epoch };
    next.lostClaim = mine;
    next.lostCheck = null;
    const completionId = work.awaitCompletion({ kind: 'lost.claimed', claim: mine, epoch: next.membership.epoch });
    work.effects.push({ type: 'meta.commit', completionId, writes: [{ kind: 'lostClaim', claim: mine }] });
    return refuse(`${self} claims the declaring of ${named} lost, and asks every member to accept; ask again`);
  }
  const candidates = candidatePages(next, servers);
  const check = next.lostCheck;
  if (!samePages(check.pages, candidates)) {
    startRound(work, servers, candidates);
    return refuse(`${self} asks every member about ${candidates.length} page${candidates.length === 1 ? '' : 's'} its table names ${servers.join(', ')} owner of; ask again`);
  }
  const refusals = Object.values(check.refusals);
  if (refusals.length > 0) {
    // A member holds a smaller claimant's claim: that claimant is the one to ask (the administrator's CLI follows).
    const deferTo = refusals.map((refusal) => refusal.deferTo).filter((id): id is ServerId => id !== null && id !== self && memberOf(next.membership, id) !== null).sort()[0];
    startRound(work, servers, candidates);
    const words = `cannot declare ${named} lost yet: ${refusals.map((refusal) => refusal.reason).join('; ')}`;
    return deferTo === undefined ? refuse(words) : refuse(`${words}; ask ${deferTo}`, [deferTo]);
  }
  const waitingFor = othersNotAnswered(next, check);
  if (waitingFor.length > 0) {
    if (check.retries >= next.config.peerRetriesMax) startRound(work, servers, candidates);
    return refuse(`waiting for ${waitingFor.join(', ')} to accept ${self}'s claim and report on ${candidates.length} page${candidates.length === 1 ? '' : 's'} (a member that is down blocks this; forget it with them)`, waitingFor, 'waitingFor');
  }
  const { declarations, learnt } = decide(work, check);
  next.lostCheck = null;
  for (const declaration of declarations) {
    const completionId = work.awaitCompletion({ kind: 'lost.deleted', declaration });
    work.effects.push({ type: 'data.delete', pageKey: declaration.pageKey, reason: 'declaredLost', completionId });
  }
  const declared = declarations.map(({ pageKey }) => pageKeyText(pageKey));
  const parts = [
    ...(declared.length > 0 ? [`declaring ${declared.length} page${declared.length === 1 ? '' : 's'} lost (${declared.slice(0, 4).join(', ')}${declared.length > 4 ? ', ...' : ''}): ${self} serves ${declared.length === 1 ? 'it' : 'them'} empty`] : []),
    ...(learnt > 0 ? [`${learnt} route${learnt === 1 ? '' : 's'} learnt newer than ${self}'s`] : []),
    ...(declared.length + learnt < candidates.length ? [`${candidates.length - declared.length - learnt} held valid elsewhere (taken over on the forget's check)`] : []),
  ];
  return refuse(`${parts.join('; ')}; ask again`);
}

/** The pages this server's table names one of `servers` owner of, sorted, at most `lostPagesPerRoundMax`. */
function candidatePages(next: NodeDraft, servers: readonly ServerId[]): string[] {
  const found: string[] = [];
  for (const [key, route] of next.routes) {
    if (servers.includes(route.owner)) found.push(key);
    if (found.length >= lostPagesPerRoundMax) break;
  }
  return found.sort();
}

function startRound(work: LostPagesWork, servers: readonly ServerId[], pages: readonly string[]): void {
  // Answers name their round: one to an earlier round (whose pages may be the same) never counts in this one.
  work.next.nextId += 1;
  const round = `${work.next.incarnation}.${work.next.nextId}`;
  work.next.lostCheck = { servers, epoch: work.next.membership.epoch, round, pages, reports: {}, refusals: {}, retries: 0 };
  sendChecks(work);
}

function sendChecks(work: LostPagesWork): void {
  const check = work.next.lostCheck;
  if (!check) return;
  const pageKeys = check.pages.map((key) => pageKeyOfText(key)!);
  for (const to of othersNotAnswered(work.next, check)) {
    work.effects.push({ type: 'peer.send', to, message: { type: 'lost.check', membership: work.next.membership, servers: check.servers, round: check.round, pages: pageKeys } });
  }
  work.effects.push({ type: 'timer.set', timerId: `lost|${check.epoch}|${check.retries}`, delayMs: work.next.config.peerRetryDelayMs });
}

/** The members other than this server and the claim's servers that have not answered the round (with a report or a refusal). */
function othersNotAnswered(next: NodeDraft, check: LostCheck): ServerId[] {
  return memberIds(next.membership).filter((id) => id !== next.config.self && !check.servers.includes(id) && check.reports[id] === undefined && check.refusals[id] === undefined);
}

/** The round's retry timer: the members that have not answered are asked again, a bounded number of times. */
export function lostCheckTimerFired(work: LostPagesWork, epoch: number, retries: number): void {
  const check = work.next.lostCheck;
  if (!check || check.epoch !== epoch || check.retries !== retries || check.epoch !== work.next.membership.epoch) return;
  if (check.retries >= work.next.config.peerRetriesMax || othersNotAnswered(work.next, check).length === 0) return;
  work.next.lostCheck = { ...check, retries: check.retries + 1 };
  sendChecks(work);
}

export function isLostCheckTimerLive(check: LostCheck | null, epoch: string, retries: string): boolean {
  return check !== null && String(check.epoch) === epoch && String(check.retries) === retries;
}

/** The claimant's own claim is durable: its first round goes out (if the claim is still its own). */
export function claimDurable(work: LostPagesWork, claim: LostClaim, epoch: number, ok: boolean): void {
  const current = work.next.lostClaim;
  if (!ok || current === null || current.claimant !== claim.claimant || !sameServers(current.servers, claim.servers) || work.next.membership.epoch !== epoch) return;
  startRound(work, claim.servers, candidatePages(work.next, claim.servers));
}

/**
 * The round's answers are in: learn every newer route reported, and declare
 * lost each page nobody knows newer and nobody holds valid, at an epoch two
 * above every epoch reported for it.
 */
function decide(work: LostPagesWork, check: LostCheck): { declarations: LostDeclaration[]; learnt: number } {
  const next = work.next;
  const self = next.config.self;
  const declarations: LostDeclaration[] = [];
  let learnt = 0;
  for (const key of check.pages) {
    const pageKey = pageKeyOfText(key)!;
    const route = next.routes.get(key);
    const own = next.replicas.get(key)?.context.record ?? null;
    const reports = Object.values(check.reports).map((pages) => pages.find((report) => pageKeyText(report.pageKey) === key));
    if (route === undefined || !check.servers.includes(route.owner) || reports.some((report) => report === undefined)) continue;
    // Its own commit of the page under way (a move from the dead server, asked before the claim): valid once done.
    if (isCommitUnderWay(next.read('continuations'), key)) continue;
    const newer = reports.map((report) => report!.route).filter((known): known is Route => known !== null && known.epoch > route.epoch);
    if (newer.length > 0) {
      for (const known of newer) work.learnRoute(pageKey, known);
      learnt += 1;
      continue;
    }
    const copies = [own, ...reports.map((report) => report!.copy)].filter((copy): copy is ReplicaRecord => copy !== null);
    if (copies.some((copy) => copy.status === 'valid')) continue;
    const epoch = Math.max(route.epoch, ...copies.map((copy) => copy.epoch), ...reports.map((report) => report!.route?.epoch ?? 0)) + declaredEpochsAbove;
    declarations.push({ pageKey, route: { owner: self, epoch }, servers: check.servers });
  }
  // Pages named elsewhere only (of volumes known here): learnt, and asked about in the next round.
  for (const pages of Object.values(check.reports)) {
    for (const report of pages) {
      if (report.route !== null && !check.pages.includes(pageKeyText(report.pageKey)) && ownValue(next.read('volumes'), report.pageKey.volume) !== undefined) work.learnRoute(report.pageKey, report.route);
    }
  }
  // A member that reported an older route than this server now knows hears the newer one: a committed destination
  // whose table was stale can then take the page over (a review's trace: its copy one above a route only another
  // member knew, skipped as held valid at every ask, and the forget never ended).
  for (const [member, pages] of Object.entries(check.reports)) {
    for (const report of pages) {
      const known = next.routes.get(pageKeyText(report.pageKey));
      if (known !== undefined && check.pages.includes(pageKeyText(report.pageKey)) && (report.route === null || report.route.epoch < known.epoch)) {
        work.effects.push({ type: 'peer.send', to: member, message: { type: 'route.update', pageKey: report.pageKey, owner: known.owner, epoch: known.epoch } });
      }
    }
  }
  return { declarations, learnt };
}

/** The page's data file is gone (or the deletion failed: nothing is declared, and the next ask starts over). */
export function lostPageDeleted(work: LostPagesWork, declaration: LostDeclaration, ok: boolean): void {
  if (!ok) return;
  const record: ReplicaRecord = { status: 'valid', epoch: declaration.route.epoch };
  const completionId = work.awaitCompletion({ kind: 'lost.declared', declaration });
  work.effects.push({ type: 'meta.commit', completionId, writes: [{ kind: 'replica', pageKey: declaration.pageKey, record }, { kind: 'route', pageKey: declaration.pageKey, route: declaration.route }] });
}

/** The declared page's valid record and route are durable: serve it, and tell every other member (but the dead). */
export function lostPageDeclared(work: LostPagesWork, declaration: LostDeclaration, ok: boolean): void {
  if (!ok) return;
  const { pageKey, route } = declaration;
  const key = pageKeyText(pageKey);
  delete work.next.attemptsJoined[key];
  delete work.next.blockVersions[key];
  work.stepReplica(pageKey, { type: 'replica.recreate', epoch: route.epoch }, null, true);
  work.learnRoute(pageKey, route);
  const self = work.next.config.self;
  for (const to of memberIds(work.next.membership)) {
    if (to !== self && !declaration.servers.includes(to)) work.effects.push({ type: 'peer.send', to, message: { type: 'route.update', pageKey, owner: route.owner, epoch: route.epoch } });
  }
}

/**
 * A claimant asks this member to accept its claim and report on `pages`. The
 * record it sends is adopted if newer; the claim is accepted (see the top of
 * the file) and made durable, with any page taken over meanwhile
 * (dead-source-takeover.ts), before the answer.
 */
export function receiveLostCheck(work: LostPagesWork, from: ServerId, membership: Membership, servers: readonly ServerId[], round: string, pages: readonly PageKey[]): void {
  receiveMembership(work, from, membership);
  const next = work.next;
  const self = next.config.self;
  const current = next.membership;
  if (membershipText(current) !== membershipText(membership) || !isServerList(servers, current) || servers.includes(self) || servers.includes(from)) return;
  if (!servers.every((id) => memberOf(current, id)?.draining) || memberOf(current, from) === null) return;
  if (!Array.isArray(pages) || pages.length > lostPagesPerRoundMax || !pages.every((pageKey) => isPageKey(pageKey)) || typeof round !== 'string' || round.length > 64) return;
  const answerRefused = (refusal: string, deferTo: ServerId | null): void => {
    work.effects.push({ type: 'peer.send', to: from, message: { type: 'lost.answer', membership: current, servers, round, pages: null, refusal, deferTo } });
  };
  const claim = next.lostClaim;
  // The claimant the asker should give way to: one whose claim stands here and wins over the asker's (smaller, or
  // about other servers: one declaration at a time), for the administrator to ask instead.
  const winner = claimStands(current, claim) && claim.claimant !== from && (claim.claimant < from || !sameServers(claim.servers, servers)) ? claim.claimant : null;
  if (isDeclaring(next)) return answerRefused(`${self} is claiming or declaring pages lost itself`, winner);
  // A commit of an asked page under way here would make a copy valid after this report said otherwise (a review's
  // trace: two owners for good): asked again once it is done, when the copy is reported valid.
  const committing = pages.find((pageKey) => isCommitUnderWay(next.read('continuations'), pageKeyText(pageKey)));
  if (committing !== undefined) return answerRefused(`${self} is committing a move of ${pageKeyText(committing)}`, null);
  if (winner !== null) {
    const holder = winner === self ? `${self} claims the declaring of` : `${self} accepted ${winner}'s claim to declare`;
    return answerRefused(`${holder} the pages of ${claim!.servers.join(', ')} lost`, winner);
  }
  const accepted: LostClaim = { servers, claimant: from, epoch: current.epoch };
  next.lostClaim = accepted;
  // Its own claim given way to a smaller claimant's: its round ends here, and it never declares on it.
  if (claim?.claimant === self) next.lostCheck = null;
  const takeovers = pagesToTakeOver(next, servers);
  const completionId = work.awaitCompletion({ kind: 'lost.reported', to: from, claim: accepted, epoch: current.epoch, round, pages, takeovers });
  work.effects.push({ type: 'meta.commit', completionId, writes: [{ kind: 'lostClaim', claim: accepted }, { kind: 'membership', membership: current }, ...takeoverWrites(takeovers)] });
}

/** The accepted claim is durable: report on the pages asked, and on those this table names one of the servers owner of. */
export function answerLostCheck(work: LostPagesWork, continuation: Extract<Continuation, { kind: 'lost.reported' }>, ok: boolean): void {
  if (!ok) return;
  const { to, claim, epoch, round, pages, takeovers } = continuation;
  completeTakeovers(work, takeovers as readonly Takeover[], claim.servers);
  const next = work.next;
  const current = next.lostClaim;
  if (next.membership.epoch !== epoch || current === null || current.claimant !== claim.claimant || !sameServers(current.servers, claim.servers)) return;
  const committing = pages.find((pageKey) => isCommitUnderWay(next.read('continuations'), pageKeyText(pageKey)));
  if (committing !== undefined) {
    work.effects.push({ type: 'peer.send', to, message: { type: 'lost.answer', membership: next.membership, servers: claim.servers, round, pages: null, refusal: `${next.config.self} is committing a move of ${pageKeyText(committing)}`, deferTo: null } });
    return;
  }
  const report = (pageKey: PageKey): LostPageReport => {
    const key = pageKeyText(pageKey);
    return { pageKey, route: next.routes.get(key) ?? null, copy: next.replicas.get(key)?.context.record ?? null };
  };
  const asked = new Set(pages.map(pageKeyText));
  const reports = pages.map(report);
  for (const [key, route] of next.routes) {
    if (reports.length >= 2 * lostPagesPerRoundMax) break;
    if (claim.servers.includes(route.owner) && !asked.has(key)) reports.push(report(pageKeyOfText(key)!));
  }
  work.effects.push({ type: 'peer.send', to, message: { type: 'lost.answer', membership: next.membership, servers: claim.servers, round, pages: reports, refusal: null, deferTo: null } });
}

/** A member's answer counts only for the claimant's current round (named in it), at its current record, covering every page asked. */
export function receiveLostAnswer(work: LostPagesWork, from: ServerId, membership: Membership, servers: readonly ServerId[], round: string, pages: readonly LostPageReport[] | null, refusal: string | null, deferTo: ServerId | null): void {
  const next = work.next;
  const check = next.lostCheck;
  if (!check || round !== check.round || !Array.isArray(servers) || !sameServers(check.servers, servers) || check.epoch !== next.membership.epoch || membershipText(membership) !== membershipText(next.membership)) return;
  if (from === next.config.self || servers.includes(from) || !memberOf(next.membership, from) || check.reports[from] !== undefined) return;
  if (pages === null) {
    const reason = typeof refusal === 'string' ? refusal.slice(0, 400) : `${from} refused`;
    next.lostCheck = { ...check, refusals: { ...check.refusals, [from]: { reason, deferTo: typeof deferTo === 'string' ? deferTo : null } } };
    return;
  }
  if (!Array.isArray(pages) || pages.length > 2 * lostPagesPerRoundMax || !pages.every(isReport)) return;
  if (!check.pages.every((key) => pages.some((report) => pageKeyText(report.pageKey) === key))) return;
  next.lostCheck = { ...check, reports: { ...check.reports, [from]: pages } };
}

function isReport(report: LostPageReport): boolean {
  if (typeof report !== 'object' || report === null || !isPageKey(report.pageKey)) return false;
  const route = report.route;
  if (route !== null && (typeof route !== 'object' || typeof route.owner !== 'string' || !Number.isSafeInteger(route.epoch) || route.epoch < 0)) return false;
  const copy = report.copy;
  return copy === null || (typeof copy === 'object' && ['valid', 'receiving', 'invalid'].includes(copy.status) && Number.isSafeInteger(copy.epoch) && copy.epoch >= 0);
}

/** Whether a peer's page key is one: a volume name and a page index (a page the node does not know is simply not found). */
function isPageKey(pageKey: PageKey): boolean {
  if (typeof pageKey !== 'object' || pageKey === null || typeof pageKey.volume !== 'string' || !Number.isSafeInteger(pageKey.page) || pageKey.page < 0) return false;
  // Its text must name it back (a review's empty volume name became a route '/3' no round could ask about).
  const back = pageKeyOfText(pageKeyText(pageKey));
  return back !== null && back.volume === pageKey.volume && back.page === pageKey.page;
}


function samePages(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((key, index) => key === b[index]);
}
