import type { PageKey, ServerId } from '../identifiers.js';
import { pageKeyOfText } from '../identifiers.js';
import { memberIds, memberOf } from '../membership/membership.js';
import type { NodeEffect, Route } from './node-io.js';
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
 * server makes the flip itself: it learns the route naming itself at the
 * copy's epoch, which is the route the source would have pushed, and pushes
 * it to the other members. The route's commit is issued before whatever
 * commit the forget then waits for (the confirming member's durable record,
 * or the asker's new record), and the store keeps commits in order, so the
 * forget never takes effect without the takeover durable. If the source was
 * not dead after all, its own flip writes the same route at the same epoch:
 * nothing conflicts. What a live source could still do is serve reads of its
 * old copy to its own clients after this server has taken writes, which is
 * why the administrator's word is needed (as for any forget: a forgotten
 * server is refused by its peers if it comes back).
 */
export interface TakeoverWork {
  readonly next: NodeDraft;
  readonly effects: NodeEffect[];
  /** Learns a route into the table (node.ts), persisting it after the commits already issued. */
  learnRoute(pageKey: PageKey, route: Route): void;
}

/** At most this many pages are taken over in one step (the rest at the administrator's next ask): a bound on a step's work. */
export const takeoversPerStepMax = 1024;

/** The pages this server holds as a committed destination whose table still names one of `servers` (draining members) owner. */
export function pagesAwaitingFlipFrom(next: NodeDraft, servers: ReadonlySet<ServerId>): Array<{ pageKey: PageKey; route: Route }> {
  const found: Array<{ pageKey: PageKey; route: Route }> = [];
  for (const [key, route] of next.routes) {
    if (found.length >= takeoversPerStepMax) break;
    if (!servers.has(route.owner) || copyStanding(next, key) !== 'awaitingFlip') continue;
    const record = next.replicas.get(key)?.context.record;
    const pageKey = pageKeyOfText(key);
    if (record?.status !== 'valid' || !pageKey || !(record.epoch > route.epoch)) continue;
    found.push({ pageKey, route: { owner: next.config.self, epoch: record.epoch } });
  }
  return found;
}

/**
 * Takes over every page awaiting the flip of a move from one of `servers`,
 * which must all be draining members (the forget's precondition). Returns
 * the pages taken over.
 */
export function takeOverFromForgotten(work: TakeoverWork, servers: readonly ServerId[]): PageKey[] {
  const membership = work.next.membership;
  if (!servers.every((id) => memberOf(membership, id)?.draining)) return [];
  const forgotten = new Set(servers);
  const taken = pagesAwaitingFlipFrom(work.next, forgotten);
  const self = work.next.config.self;
  const told = memberIds(membership).filter((id) => id !== self && !forgotten.has(id));
  for (const { pageKey, route } of taken) {
    work.learnRoute(pageKey, route);
    for (const to of told) work.effects.push({ type: 'peer.send', to, message: { type: 'route.update', pageKey, owner: route.owner, epoch: route.epoch } });
  }
  return taken.map(({ pageKey }) => pageKey);
}
