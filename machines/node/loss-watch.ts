import type { ServerId } from '../identifiers.js';
import { assert } from '../identifiers.js';

/**
 * Whether a FLUSH may answer `ok`. NBD: a successful FLUSH means every write
 * acknowledged before it is durable. A server that loses power loses the
 * writes it had applied but not synced, restarts, and then syncs what is left
 * without error — so a group-wide sync barrier alone would answer `ok` over a
 * lost write.
 *
 * Theory of operation. Each server has a loss epoch: a durable counter its
 * runtime raises on every restart that may have lost applied-but-unsynced
 * writes (a power cut; not a process kill, which leaves the page cache — see
 * DurableRecords.lossEpoch). Every acknowledgement of a write that is not
 * durable at once (no FUA) names the servers that applied it and their loss
 * epochs (`WriteHolder`), on the local part, on each `block.written` of the
 * other side of a move, and on the `request.answer` that relays a forwarded
 * write. The server the client talks to keeps, per volume, the holders of
 * the writes it acknowledged that no FLUSH has covered yet: one entry per
 * (server, loss epoch), with the numbers of the first and the newest
 * acknowledgements that added to it. A FLUSH notes how many acknowledgements
 * it covers, and every member answers its sync with its current loss epoch.
 * An entry holding a covered write (its first acknowledgement is covered)
 * whose server answers with a higher epoch stands for writes that may be
 * lost: the FLUSH fails with EIO and the entry is dropped (the cut that took
 * them has been reported). Otherwise the entry is dropped if every write it
 * stands for is covered (now durable), and kept if not. Acknowledgement numbers
 * matter only against FLUSHes in flight, so while none is, every entry's
 * number and the count stay 0: a watch is then a function of its holders
 * alone, and the explorer does not tell apart states that differ only in
 * how many writes came before.
 *
 * Reporting follows Linux's errseq for writeback errors: a loss found is
 * counted per volume, and each connection to the volume known when it was
 * found (a connection is known from its first request) gets EIO at its next
 * FLUSH, once; a connection first used later does not (its writes came
 * after). Unlike Linux, a FLUSH in flight when
 * another found a loss fails too, even on a connection already told: the
 * writes it covers may be the ones that were lost, and the other FLUSH took
 * their entries away. With CAN_MULTI_CONN a FLUSH on one connection covers
 * the writes of every connection to the volume on this server, so all of
 * them are checked, and all of them learn of a loss.
 *
 * False alarms are possible and safe: a holder that restarted after its
 * writes were copied away durably by a move, or whose write was later copied
 * again, still fails the FLUSH once. Missed losses are not: an entry is
 * dropped only by a FLUSH whose every member answered after its sync.
 */
export interface WriteHolder {
  readonly server: ServerId;
  readonly lossEpoch: number;
}

export interface UnflushedHolder extends WriteHolder {
  /** The number of the first acknowledgement that added to this entry (a FLUSH covering it checks the entry). */
  readonly firstAck: number;
  /** The number of the newest (a FLUSH covering it as well drops the entry). */
  readonly lastAck: number;
}

export interface LossWatch {
  /** Holders of acknowledged writes no FLUSH has covered yet, one entry per (server, loss epoch). */
  readonly unflushed: readonly UnflushedHolder[];
  /** Acknowledgements of writes that were not durable at once, counted. */
  readonly acks: number;
  /** Losses found by FLUSHes, counted (the errseq counter). */
  readonly lossesFound: number;
  /** Each open connection to the volume: the losses found when it last learned of them (or opened). */
  readonly connections: Readonly<Record<string, number>>;
}

export const noLossWatch: LossWatch = { unflushed: [], acks: 0, lossesFound: 0, connections: {} };

/**
 * The most loss epochs of one server an entry list keeps apart; beyond it the
 * two oldest merge (the older epoch, the newer acknowledgement), which can
 * only make a FLUSH fail where it need not. A server restarting this often
 * between two FLUSHes is broken anyway.
 */
export const lossEpochsPerServerMax = 4;

/** The watch with the connection known (sampling the errseq counter on its first use), or null if it is new and `connectionsMax` are open. */
export function withConnection(watch: LossWatch, connectionId: string, connectionsMax: number, connectionsOpen: number): LossWatch | null {
  if (watch.connections[connectionId] !== undefined) return watch;
  if (connectionsOpen >= connectionsMax) return null;
  return { ...watch, connections: { ...watch.connections, [connectionId]: watch.lossesFound } };
}

export function withoutConnection(watch: LossWatch, connectionId: string): LossWatch {
  if (watch.connections[connectionId] === undefined) return watch;
  const connections = { ...watch.connections };
  delete connections[connectionId];
  return { ...watch, connections };
}

/**
 * Every holder of either list, once, in canonical order (by server, then
 * epoch): lists that hold the same holders are equal whatever order the
 * parts completed in, so the explorer does not tell such states apart.
 */
export function unionOfHolders(first: readonly WriteHolder[], second: readonly WriteHolder[]): readonly WriteHolder[] {
  if (first.length === 0 && isCanonical(second)) return second;
  const union = [...first];
  for (const holder of second) {
    if (!union.some((known) => known.server === holder.server && known.lossEpoch === holder.lossEpoch)) union.push(holder);
  }
  return union.sort(compareHolders);
}

function compareHolders(a: WriteHolder, b: WriteHolder): number {
  return a.server < b.server ? -1 : a.server > b.server ? 1 : a.lossEpoch - b.lossEpoch;
}

function isCanonical(holders: readonly WriteHolder[]): boolean {
  for (let index = 1; index < holders.length; index += 1) if (compareHolders(holders[index - 1]!, holders[index]!) >= 0) return false;
  return true;
}

/** The watch after acknowledging a write that `holders` applied without making it durable. */
export function acknowledged(watch: LossWatch, holders: readonly WriteHolder[], flushesInFlight: boolean): LossWatch {
  if (holders.length === 0) return watch;
  if (!flushesInFlight) {
    watch = withNoFlushInFlight(watch);
    // With no FLUSH in flight every number stays 0, so a write whose holders all have their entry already changes
    // nothing: the watch itself is the answer (the entry list is kept in canonical order throughout). This is the
    // common case, one per acknowledged write, and it allocates nothing.
    if (holders.every((holder) => watch.unflushed.some((entry) => entry.server === holder.server && entry.lossEpoch === holder.lossEpoch))) return watch;
  }
  const lastAck = flushesInFlight ? watch.acks + 1 : 0;
  let unflushed = watch.unflushed;
  for (const holder of holders) {
    const index = unflushed.findIndex((entry) => entry.server === holder.server && entry.lossEpoch === holder.lossEpoch);
    const next = unflushed.slice();
    if (index >= 0) next[index] = { ...next[index]!, lastAck };
    else next.push({ server: holder.server, lossEpoch: holder.lossEpoch, firstAck: lastAck, lastAck });
    unflushed = mergeOldEpochs(next, holder.server);
  }
  return { ...watch, unflushed: unflushed.slice().sort(compareHolders), acks: lastAck };
}

function mergeOldEpochs(entries: UnflushedHolder[], server: ServerId): UnflushedHolder[] {
  const own = entries.filter((entry) => entry.server === server).sort((a, b) => a.lossEpoch - b.lossEpoch);
  if (own.length <= lossEpochsPerServerMax) return entries;
  const [oldest, second] = own as [UnflushedHolder, UnflushedHolder];
  const merged: UnflushedHolder = { server, lossEpoch: oldest.lossEpoch, firstAck: Math.min(oldest.firstAck, second.firstAck), lastAck: Math.max(oldest.lastAck, second.lastAck) };
  return [...entries.filter((entry) => entry !== oldest && entry !== second), merged];
}

/**
 * The loss epoch below every real one (they start at 0): an entry at it is
 * judged lost by whatever its server answers next.
 */
export const formerRunLossEpoch = -1;

/**
 * The watch once `server` is another server than the one that held its
 * entries: an id forgotten (or that left) and added again, a new generation
 * with a fresh directory, whose loss epoch says nothing of what the old one
 * held (a review: its answer vouched for writes that died with the old
 * server). Its entries become one at `formerRunLossEpoch`, so the next FLUSH
 * covering them reports a possible loss (a false alarm at worst).
 */
export function withHolderReplaced(watch: LossWatch, server: ServerId): LossWatch {
  const own = watch.unflushed.filter((entry) => entry.server === server);
  if (own.length === 0 || (own.length === 1 && own[0]!.lossEpoch === formerRunLossEpoch)) return watch;
  const merged: UnflushedHolder = { server, lossEpoch: formerRunLossEpoch, firstAck: Math.min(...own.map((entry) => entry.firstAck)), lastAck: Math.max(...own.map((entry) => entry.lastAck)) };
  return { ...watch, unflushed: [...watch.unflushed.filter((entry) => entry.server !== server), merged].sort(compareHolders) };
}

/**
 * Settles a FLUSH that covered acknowledgements up to `coveredAcks` and
 * started when `lossesFoundAtStart` losses had been found. Each
 * holder's epoch now is its answer to the FLUSH's sync (`answeredEpochs`),
 * or, for a server that has left the group, the epoch it reported when it
 * asked to leave (`departedEpochs`): it held no page then, and every page it
 * gave away was synced by its new owner, copied from what it held, so only a
 * loss before that could have taken a write. A holder with neither counts
 * as lost (a false alarm at worst). Returns the new watch, whether this
 * connection gets EIO, and the servers whose losses were found.
 */
export function flushSettled(
  watch: LossWatch, connectionId: string, coveredAcks: number, lossesFoundAtStart: number,
  answeredEpochs: Readonly<Record<ServerId, number>>, departedEpochs: Readonly<Record<ServerId, number>>,
): { watch: LossWatch; lossReported: boolean; lostOn: ServerId[] } {
  assert(coveredAcks <= watch.acks, 'a FLUSH covers only acknowledgements already made');
  const lostOn = new Set<ServerId>();
  const unflushed: UnflushedHolder[] = [];
  for (const entry of watch.unflushed) {
    if (entry.firstAck > coveredAcks) {
      unflushed.push(entry);
      continue;
    }
    const epochNow = answeredEpochs[entry.server] ?? departedEpochs[entry.server];
    const lost = epochNow === undefined || epochNow > entry.lossEpoch;
    if (lost) lostOn.add(entry.server);
    // Writes it holds that were acknowledged after this FLUSH began are the next FLUSH's to check (and, if lost, report).
    if (entry.lastAck > coveredAcks) unflushed.push(lost ? { ...entry, firstAck: coveredAcks + 1 } : entry);
  }
  const lossesFound = watch.lossesFound + (lostOn.size > 0 ? 1 : 0);
  const seen = watch.connections[connectionId] ?? lossesFound;
  const connections = seen === lossesFound ? watch.connections : { ...watch.connections, [connectionId]: lossesFound };
  return { watch: { ...watch, unflushed, lossesFound, connections }, lossReported: seen < lossesFound || lossesFoundAtStart < lossesFound, lostOn: [...lostOn].sort() };
}

/**
 * The watch once no FLUSH of its volume is in flight (the last one settled or
 * gave up): acknowledgement numbers matter only against FLUSHes in flight, so
 * every entry's and the count go back to 0, and the next FLUSH covers them all.
 */
export function withNoFlushInFlight(watch: LossWatch): LossWatch {
  if (watch.acks === 0 && watch.unflushed.every((entry) => entry.firstAck === 0 && entry.lastAck === 0)) return watch;
  return { ...watch, unflushed: watch.unflushed.map((entry) => ({ ...entry, firstAck: 0, lastAck: 0 })), acks: 0 };
}
