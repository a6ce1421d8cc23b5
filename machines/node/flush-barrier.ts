import { assert } from '../identifiers.js';
import type { ServerId } from '../identifiers.js';
import { errnoIo } from '../routing/request-routing.machine.js';
import { flushSettled, noLossWatch, withNoFlushInFlight } from './loss-watch.js';
import type { LossWatch } from './loss-watch.js';
import { memberOf } from '../membership/membership.js';
import type { Membership } from '../membership/membership.js';
import type { NodeDraft } from './node-draft.js';
import type { NodeEffect } from './node-io.js';

/**
 * Which servers a FLUSH barrier waits for, and the one rule that settles part
 * of it.
 *
 * Theory of operation. A FLUSH is a barrier across the group: every member
 * syncs what it holds, so a write is durable after it wherever in the group
 * it landed (both sides of a move included), whichever server acknowledged
 * it. For the writes this server acknowledged (NBD's promise to its client),
 * the loss watch names exactly the servers that applied them without syncing
 * (loss-watch.ts, one entry per holder: a move's destination syncs every
 * piece it is handed before the source gives it up, and names itself on
 * every dual write it applies). Those holders must answer. Any other member
 * holds none of those writes, so when it has not answered within a retry
 * period (it is down, or stuck) it is *excused*: the barrier stops waiting
 * for it, and later barriers do not wait for it either until it sends this
 * server anything again. A member that dies therefore costs one retry period
 * on one FLUSH, not every client's FLUSH (until 27 Nov every FLUSH failed
 * after its retries, about 10 s, while any member was down); a holder that
 * cannot answer still fails the FLUSH after the retries, as it must. A holder
 * that is no longer a member is settled by the loss epoch it left with (see
 * `flushSettled`); one this server does not know as a member yet (a write
 * relayed from a server that joined since) is asked all the same. A member
 * whose sync fails is waited for as a holder is (asked again; the FLUSH fails
 * if it never succeeds). A barrier also waits for members its server learns
 * of while it runs: a peer with a newer record answers the request with it,
 * and its own answer counts only once that record is adopted
 * (node-membership.ts).
 *
 * The watch is volatile: a server that restarts has forgotten the holders of
 * the writes its earlier runs acknowledged, which any member may still hold
 * unsynced. So no member is excused until a barrier in which every member
 * synced has completed since the start (`earlierRunsSynced`), unless the
 * start itself says every earlier run's writes are durable: the previous run
 * stopped cleanly after a FLUSH of every volume succeeded with that flag set
 * (impl/runtime/stop-barrier.ts, DurableRecords.earlierRunsSynced), or it is
 * the first run. So a server restarted cleanly while a member is down serves
 * FLUSHes after one retry period (the member is excused); one that crashed
 * fails them until that member is back, or is forgotten (member-forget.ts).
 *
 * A member's part settles when it answers that its sync is done (with its
 * loss epoch), when it is excused, or when it leaves the group (it held no
 * page when it left: every page it gave away was synced by its new owner
 * before the flip). The settled members are dropped from the barrier. A
 * barrier that waits for no one (any more) answers its client: `ok`, unless
 * a write it covers may have been lost in a power cut since it was
 * acknowledged, or an earlier FLUSH found such a loss this connection has
 * not heard of (EIO; see loss-watch.ts). Parts that settle twice (a
 * duplicated answer, a member that answered and then left) change nothing.
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
 * The servers holding a write that a FLUSH covering the volume's
 * acknowledgements up to `coveredAcks` covers (an entry whose first
 * acknowledgement it covers), each once, in canonical order, but those known
 * to have left and not members (`flushSettled` judges them by the epoch they
 * left with). A member with a departed epoch (it asked to leave, then stayed
 * or came back under its id) is a holder like any other: a review found one
 * excused and its stale epoch taken for its answer.
 */
export function flushHolders(watch: LossWatch, coveredAcks: number, departedEpochs: Readonly<Record<ServerId, number>>, membership: Membership): ServerId[] {
  const holders: ServerId[] = [];
  for (const entry of watch.unflushed) {
    if (entry.firstAck > coveredAcks || holders.includes(entry.server)) continue;
    if (departedEpochs[entry.server] !== undefined && memberOf(membership, entry.server) === null) continue;
    holders.push(entry.server);
  }
  return holders.sort();
}

/**
 * The servers a new FLUSH waits for: every member and every holder, but the
 * members excused (never a holder, and only once `excusesAllowed`).
 */
export function flushWaitsFor(members: readonly ServerId[], holders: readonly ServerId[], excused: readonly ServerId[], excusesAllowed: boolean): ServerId[] {
  const asked = [...new Set([...members, ...holders])];
  return asked.filter((server) => !excusesAllowed || holders.includes(server) || !excused.includes(server)).sort();
}

/**
 * A retry period has passed: the members the FLUSH still waits for that hold
 * none of its writes are excused (from this barrier and, until they send
 * anything, from later ones), if excuses are allowed.
 */
export function excuseSilentMembers(work: FlushWork, flushId: string): void {
  const flush = work.next.read('flushes')[flushId];
  if (!flush || !flush.excusesAllowed) return;
  const silent = flush.remaining.filter((server) => !flush.holders.includes(server) && server !== work.next.config.self);
  if (silent.length === 0) return;
  work.next.flushExcused = [...new Set([...work.next.flushExcused, ...silent])].sort();
  settleFlushParts(work, flushId, silent);
}

/** Any message from `from` ends its excuse from FLUSH barriers. */
export function endFlushExcuse(next: NodeDraft, from: ServerId): void {
  if (next.flushExcused.length > 0 && next.flushExcused.includes(from)) next.flushExcused = next.flushExcused.filter((server) => server !== from);
}

/** Drops the parts of `settled` servers from the barrier (answered, excused or departed), and answers it once none is left. */
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
  // Every member has synced since this server started (or left, holding nothing; none was excused, excuses were not
  // allowed yet): what earlier runs acknowledged is durable.
  if (!flush.excusesAllowed) work.next.earlierRunsSynced = true;
  const watch = work.next.read('lossWatches')[flush.volume] ?? noLossWatch;
  const settledWatch = flushSettled(watch, flush.connectionId, flush.coveredAcks, flush.lossesFoundAtStart, flush.answeredEpochs, work.next.read('departedLossEpochs'));
  work.next.lossWatches[flush.volume] = settledWatch.watch;
  endFlush(work, flushId);
  const outcome = settledWatch.lossReported
    ? { status: 'error' as const, errno: errnoIo, reason: `${flushLossReason} in a power cut of ${settledWatch.lostOn.join(', ') || 'a server (found by an earlier flush)'}` }
    : { status: 'ok' as const };
  work.effects.push({ type: 'client.reply', requestId: flush.requestId, outcome, dataToken: null });
}
