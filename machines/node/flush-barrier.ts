import type { ServerId } from '../identifiers.js';
import { errnoIo } from '../routing/request-routing.machine.js';
import { flushSettled, noLossWatch, withNoFlushInFlight } from './loss-watch.js';
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

/** Whether a FLUSH of `volume` is in flight here (acknowledgements are numbered only then; see loss-watch.ts). */
export function isFlushInFlight(next: NodeDraft, volume: string): boolean {
  return Object.values(next.read('flushes')).some((flush) => flush.volume === volume);
}

/**
 * Removes a FLUSH that settled or gave up. The one place a FLUSH ends, so the
 * loss watch's rule holds everywhere: once none of its volume is in flight,
 * its acknowledgement numbers go back to 0 (a FLUSH that gave up leaves its
 * covered writes for the next one, which then covers them all).
 */
export function endFlush(work: FlushWork, flushId: string): void {
  const flush = work.next.read('flushes')[flushId];
  if (!flush) return;
  delete work.next.flushes[flushId];
  const watch = work.next.read('lossWatches')[flush.volume];
  if (watch && !isFlushInFlight(work.next, flush.volume)) work.next.lossWatches[flush.volume] = withNoFlushInFlight(watch);
}

export function settleFlushParts(work: FlushWork, flushId: string, settled: readonly ServerId[]): void {
  const flush = work.next.read('flushes')[flushId];
  if (!flush) return;
  const remaining = flush.remaining.filter((server) => !settled.includes(server));
  if (remaining.length === flush.remaining.length) return;
  if (remaining.length > 0) {
    work.next.flushes[flushId] = { ...flush, remaining };
    return;
  }
  const watch = work.next.read('lossWatches')[flush.volume] ?? noLossWatch;
  const settledWatch = flushSettled(watch, flush.connectionId, flush.coveredAcks, flush.lossesFoundAtStart, flush.answeredEpochs, work.next.read('departedLossEpochs'));
  work.next.lossWatches[flush.volume] = settledWatch.watch;
  endFlush(work, flushId);
  const outcome = settledWatch.lossReported
    ? { status: 'error' as const, errno: errnoIo, reason: `${flushLossReason} in a power cut of ${settledWatch.lostOn.join(', ') || 'a server (found by an earlier flush)'}` }
    : { status: 'ok' as const };
  work.effects.push({ type: 'client.reply', requestId: flush.requestId, outcome, dataToken: null });
}
