import { assert } from '../identifiers.js';
import type { ServerId } from '../identifiers.js';
import { memberOf } from '../membership/membership.js';
import type { Membership } from '../membership/membership.js';
import { errnoIo } from '../routing/request-routing.machine.js';
import { flushSettled, noLossWatch, withNoFlushInFlight } from './loss-watch.js';
import type { LossWatch } from './loss-watch.js';
import type { NodeDraft } from './node-draft.js';
import type { NodeEffect } from './node-io.js';

/**
 * Which servers a FLUSH barrier waits for, and the one rule that settles part
 * of it. A FLUSH must make durable every write this server acknowledged
 * before it (NBD), wherever in the group that write landed; the loss watch
 * already names the servers that applied each of them without syncing
 * (loss-watch.ts, one entry per holder), so the barrier asks exactly the
 * members holding a write it covers, and this server only if it is one of
 * them. Nothing else can hold such a write unsynced: a move's destination
 * syncs every piece it is handed (its copy and the dual writes before it)
 * before the source gives the piece up, and it names itself on every dual
 * write it applies. A member holding none of them, down or not, does not
 * hold the FLUSH up; one holding some that cannot answer makes it fail
 * after the retries, as it must. A holder that is no longer a member is
 * settled by the loss epoch it left with (see `flushSettled`).
 *
 * A member's part settles when it answers that its sync is done (with its
 * loss epoch), or when it leaves the group (it held no page when it left:
 * every page it gave away was synced by its new owner before the flip). The
 * settled members are dropped from the barrier. A barrier that waits for no
 * one (any more) answers its client: `ok`, unless a write it covers may have
 * been lost in a power cut since it was acknowledged, or an earlier FLUSH
 * found such a loss this connection has not heard of (EIO; see
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

/**
 * The members a FLUSH covering the volume's acknowledgements up to
 * `coveredAcks` waits for: those holding a write it covers (an entry whose
 * first acknowledgement it covers), each once, in canonical order.
 */
export function flushHolders(watch: LossWatch, coveredAcks: number, membership: Membership): ServerId[] {
  const holders: ServerId[] = [];
  for (const entry of watch.unflushed) {
    if (entry.firstAck <= coveredAcks && !holders.includes(entry.server) && memberOf(membership, entry.server) !== null) holders.push(entry.server);
  }
  return holders.sort();
}

export function settleFlushParts(work: FlushWork, flushId: string, settled: readonly ServerId[]): void {
  const flush = work.next.read('flushes')[flushId];
  if (!flush) return;
  const remaining = flush.remaining.filter((server) => !settled.includes(server));
  if (remaining.length === flush.remaining.length) return;
  work.next.flushes[flushId] = { ...flush, remaining };
  if (remaining.length === 0) answerFlush(work, flushId);
}

/** Answers a FLUSH that waits for no member (any more), and ends it. */
export function answerFlush(work: FlushWork, flushId: string): void {
  const flush = work.next.read('flushes')[flushId];
  if (!flush) return;
  assert(flush.remaining.length === 0, 'a FLUSH is answered only once no member it waits for is left');
  const watch = work.next.read('lossWatches')[flush.volume] ?? noLossWatch;
  const settledWatch = flushSettled(watch, flush.connectionId, flush.coveredAcks, flush.lossesFoundAtStart, flush.answeredEpochs, work.next.read('departedLossEpochs'));
  work.next.lossWatches[flush.volume] = settledWatch.watch;
  endFlush(work, flushId);
  const outcome = settledWatch.lossReported
    ? { status: 'error' as const, errno: errnoIo, reason: `${flushLossReason} in a power cut of ${settledWatch.lostOn.join(', ') || 'a server (found by an earlier flush)'}` }
    : { status: 'ok' as const };
  work.effects.push({ type: 'client.reply', requestId: flush.requestId, outcome, dataToken: null });
}
