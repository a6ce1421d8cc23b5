import type { ServerId } from '../identifiers.js';
import { pageKeyText } from '../identifiers.js';
import type { NodeDraft } from './node-draft.js';
import type { NodeEffect } from './node-io.js';

/**
 * A copy this server gave up (flagged invalid by a flip) records the page's
 * new owner and epoch: the one route this server can vouch for. The push that
 * followed the flip may have been lost (a crash of the source before it sent,
 * a destination that was down, a leaving server's neighbours that must stop
 * naming it), so a server re-pushes the route of every copy it gave up to
 * the servers it names. A copy whose move is still held is skipped: that
 * move pushes the route itself when it finishes.
 */
export interface RouteRepairWork {
  readonly next: NodeDraft;
  readonly effects: NodeEffect[];
}

export function pushGivenUpRoutes(work: RouteRepairWork, to: readonly ServerId[]): void {
  const self = work.next.config.self;
  const moves = work.next.read('moves');
  for (const replica of work.next.replicas.values()) {
    const { pageKey, record } = replica.context;
    if (record?.status !== 'invalid' || moves[pageKeyText(pageKey)]) continue;
    for (const server of to) {
      if (server !== self) work.effects.push({ type: 'peer.send', to: server, message: { type: 'route.update', pageKey, owner: record.owner, epoch: record.epoch } });
    }
  }
}
