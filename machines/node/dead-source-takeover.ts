import type { PageKey, ServerId } from '../identifiers.js';
import { pageKeyOfText } from '../identifiers.js';
import { memberIds, memberOf } from '../membership/membership.js';
import type { MetadataWrite, NodeEffect, Route } from './node-io.js';
import { copyStanding } from './copy-standing.js';
import type { NodeDraft } from './node-draft.js';

/**
 * A committed destination takes over the pages whose source the
 * administrator forgets before that source flipped.
 *
 * Theory of operation. A move's destination that has committed holds the
 * page durably and valid at the move's epoch, and waits for the source's
 * flip (copy-standing.ts, `awaitingFlip`). From its commit on, every write
 * the source acknowledged reached the destination too (Table 1: writes go to
 * both until the flip; Table 2: every piece is handed over before the
 * commit), and the source can no longer abandon the move or copy again (a
 * commit once asked is only repeated). So the flip is decided: the only
 * route the source can ever write for that page is this server at the
 * move's epoch. If the source dies for good in between, nobody else may
 * write it, and the page stayed stuck: served here, but not movable, and the
 * source not forgettable (`server forget` refused while a route named it).
 *
 * When the administrator forgets such a source (member-forget.ts: the server
 * is draining, and the administrator's word is that it is gone), this
 * server makes the flip itself: it writes the route naming itself at the
 * copy's epoch, which is the route the source would have pushed, and once
 * that is durable learns it and pushes it to the other members. Nothing
 * changes in memory before the route is durable, and a member confirms the
 * forget only in the same durable commit (or, as the asker, refuses until
 * its takeover commit has completed and asks again): a failed commit (which
 * the store skips, carrying on with later ones) leaves the page awaiting
 * its flip, and the forget refused, rather than forgotten with the route
 * lost (a review's case: the page stuck for good after a restart).
 *
 * Which source. The table may be stale: a page that moved from the
 * forgotten server to another and from there here still has the first
 * route at this server while the real source, alive, awaits the commit's
 * answer (a review's case: taken over here, it then committed for ever). A
 * move's epoch is one above its source's, and each epoch has one owner, so
 * the page is taken over only when the copy's epoch is the route's plus
 * one; otherwise it keeps counting as named, and the forget's route queries
 * repair the table first.
 *
 * If the source was not dead after all, its own flip writes the same route
 * at the same epoch: nothing conflicts. What a live source could still do is
 * serve reads of its old copy to its own clients after this server has
 * taken writes, which is why the administrator's word is needed (as for any
 * forget: a forgotten server is refused by its peers if it comes back).
 */
export interface TakeoverWork {
  readonly next: NodeDraft;
  readonly effects: NodeEffect[];
  /** Learns a route into the table (node.ts). */
  learnRoute(pageKey: PageKey, route: Route): void;
}

/** A page to take over, and the route that takes it: this server at the copy's epoch. */
export interface Takeover {
  readonly pageKey: PageKey;
  readonly route: Route;
}

/** At most this many pages are taken over in one step (the rest at the administrator's next ask): a bound on a step's work. */
export const takeoversPerStepMax = 1024;

/**
 * The pages this server may take over from `servers`, which must all be
 * draining members (the forget's precondition; none otherwise): those it
 * holds as a committed destination (awaiting the flip) whose route names one
 * of them at the epoch just below the copy's.
 */
export function pagesToTakeOver(next: NodeDraft, servers: readonly ServerId[]): Takeover[] {
  const membership = next.membership;
  if (!servers.every((id) => memberOf(membership, id)?.draining)) return [];
  const found: Takeover[] = [];
  for (const [key, route] of next.routes) {
    if (found.length >= takeoversPerStepMax) break;
    if (!servers.includes(route.owner) || copyStanding(next, key) !== 'awaitingFlip') continue;
    const record = next.replicas.get(key)?.context.record;
    const pageKey = pageKeyOfText(key);
    if (record?.status !== 'valid' || !pageKey || record.epoch !== route.epoch + 1) continue;
    found.push({ pageKey, route: { owner: next.config.self, epoch: record.epoch } });
  }
  return found;
}

/** The metadata writes that make `takeovers` durable (in a commit the caller awaits). */
export function takeoverWrites(takeovers: readonly Takeover[]): MetadataWrite[] {
  return takeovers.map(({ pageKey, route }) => ({ kind: 'route', pageKey, route }));
}

/**
 * The takeovers' routes are durable: learnt here, and pushed to every other
 * member but the forgotten `servers`. (Learnt whatever happened since: a
 * durable route is never taken back, and epochs only grow.)
 */
export function completeTakeovers(work: TakeoverWork, takeovers: readonly Takeover[], servers: readonly ServerId[]): void {
  const self = work.next.config.self;
  const told = memberIds(work.next.membership).filter((id) => id !== self && !servers.includes(id));
  for (const { pageKey, route } of takeovers) {
    work.learnRoute(pageKey, route);
    for (const to of told) work.effects.push({ type: 'peer.send', to, message: { type: 'route.update', pageKey, owner: route.owner, epoch: route.epoch } });
  }
}
