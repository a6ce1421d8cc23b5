import type { ServerId } from '../identifiers.js';
import { errnoIo } from '../routing/request-routing.machine.js';
import { flushSettled, noLossWatch } from './loss-watch.js';
import type { NodeDraft } from './node-draft.js';
import type { NodeEffect } from './node-io.js';

/**
 * The one rule that settles part of a FLUSH barrier. A barrier waits for
 * every member to sync; a member's part settles when it answers that its sync
 * is done (with its loss epoch), or when it leaves the group (it held no page
 * when it left: every page it gave away was synced by its new owner before
 * the flip). The settled members are dropped from the barrier. A barrier
 * that waits for no one any more answers its client: `ok`, unless a write it
 * covers may have been lost in a power cut since it was acknowledged, or an
 * earlier FLUSH found such a loss this connection has not heard of (EIO; see
 * loss-watch.ts). Parts that settle twice (a duplicated answer, a member that
 * answered and then left) change nothing.
 */
export interface FlushWork {
  readonly next: NodeDraft;
  readonly effects: NodeEffect[];
}

/** How the reason of a FLUSH failed for a possible loss begins (the simulator recognises it). */
export const flushLossReason = 'writes acknowledged before this flush may have been lost';

export function settleFlushParts(work: FlushWork, flushId: string, settled: readonly ServerId[]): void {
  const flush = work.next.read('flushes')[flushId];
  if (!flush) return;
  const remaining = flush.remaining.filter((server) => !settled.includes(server));
  if (remaining.length === flush.remaining.length) return;
  if (remaining.length > 0) {
    work.next.flushes[flushId] = { ...flush, remaining };
    return;
  }
  delete work.next.flushes[flushId];
  const watch = work.next.read('lossWatches')[flush.volume] ?? noLossWatch;
  const otherFlushesInFlight = Object.values(work.next.read('flushes')).some((other) => other.volume === flush.volume);
  const settledWatch = flushSettled(watch, flush.connectionId, flush.coveredAcks, flush.lossesFoundAtStart, flush.answeredEpochs, work.next.read('departedLossEpochs'), otherFlushesInFlight);
  if (settledWatch.watch !== watch) work.next.lossWatches[flush.volume] = settledWatch.watch;
  const outcome = settledWatch.lossReported
    ? { status: 'error' as const, errno: errnoIo, reason: `${flushLossReason} in a power cut of ${settledWatch.lostOn.join(', ') || 'a server (found by an earlier flush)'}` }
    : { status: 'ok' as const };
  work.effects.push({ type: 'client.reply', requestId: flush.requestId, outcome, dataToken: null });
}
