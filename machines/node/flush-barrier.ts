import { assert } from '../identifiers.js';
import type { ServerId } from '../identifiers.js';
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
 * The watch is volatile: a server that restarts has forgotten the holders
 * of the writes its earlier runs acknowledged, which any member may still
 * hold unsynced (a review found a FLUSH after a kill -9 of the server a
 * client talks to answered ok asking no one, while another server held the
 * client's acknowledged write in its page cache). So until a barrier over
 * every member has completed since the start (`earlierRunsSynced`), a FLUSH
 * asks every member, as every FLUSH did before; while a member is down,
 * FLUSHes on a server restarted since then fail, until it is back.
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
 * The servers a FLUSH covering the volume's acknowledgements up to
 * `coveredAcks` waits for: those holding a write it covers (an entry whose
 * first acknowledgement it covers), and `alsoAsked` (every member, for the
 * first barrier after a start), each once, in canonical order. A holder known
 * to have left is not asked (`flushSettled` judges it by the epoch it left
 * with); one this server does not know as a member yet is asked all the same
 * (a write relayed from a server that joined since), and answers once this
 * server has learnt its address.
 */
export function flushMembers(watch: LossWatch, coveredAcks: number, alsoAsked: readonly ServerId[], departedEpochs: Readonly<Record<ServerId, number>>): ServerId[] {
  const members = [...alsoAsked];
  for (const entry of watch.unflushed) {
    if (entry.firstAck <= coveredAcks && !members.includes(entry.server) && departedEpochs[entry.server] === undefined) members.push(entry.server);
  }
  return members.sort();
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
  // Every member has synced since this server started (or left, holding nothing): what earlier runs acknowledged is durable.
  if (flush.everyMember) work.next.earlierRunsSynced = true;
  const watch = work.next.read('lossWatches')[flush.volume] ?? noLossWatch;
  const settledWatch = flushSettled(watch, flush.connectionId, flush.coveredAcks, flush.lossesFoundAtStart, flush.answeredEpochs, work.next.read('departedLossEpochs'));
  work.next.lossWatches[flush.volume] = settledWatch.watch;
  endFlush(work, flushId);
  const outcome = settledWatch.lossReported
    ? { status: 'error' as const, errno: errnoIo, reason: `${flushLossReason} in a power cut of ${settledWatch.lostOn.join(', ') || 'a server (found by an earlier flush)'}` }
    : { status: 'ok' as const };
  work.effects.push({ type: 'client.reply', requestId: flush.requestId, outcome, dataToken: null });
}
