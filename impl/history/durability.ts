/**
 * When each acknowledged write became *required* durable, by NBD's contract:
 * a write sent with FUA is durable once acknowledged; any other write is
 * durable from its acknowledgement on as soon as a FLUSH sent on the same
 * connection after that acknowledgement completes `ok`. (The FLUSH's `ok`
 * says every write acknowledged before it is durable, so no power cut since
 * the acknowledgement may have taken it: a group that lost it must fail the
 * FLUSH, machines/node/loss-watch.ts.) A write that met neither condition may
 * be lost by a power loss, and the checker's crash model lets it be.
 *
 * The group's FLUSH is in fact a group-wide barrier, so this rule is weaker
 * than what blockshift promises: it can miss a loss the barrier forbids, but
 * it never calls a permitted loss a violation.
 */
import type { Operation } from './history-event.js';

/** Write id → the monotonic time (ns) from which it must survive a power loss; Infinity if never. */
export function requiredDurableTimes(operations: readonly Operation[]): Map<number, number> {
  const flushesByConnection = new Map<number, Operation[]>();
  for (const operation of operations) {
    if (operation.f !== 'flush' || operation.outcome !== 'ok') continue;
    const list = flushesByConnection.get(operation.connection) ?? [];
    list.push(operation);
    flushesByConnection.set(operation.connection, list);
  }
  // For each connection: the invocation times of its successful flushes, sorted.
  const flushInvokesByConnection = new Map<number, number[]>();
  for (const [connection, flushes] of flushesByConnection) flushInvokesByConnection.set(connection, flushes.map((flush) => flush.invokeNs).sort((left, right) => left - right));
  const durable = new Map<number, number>();
  for (const operation of operations) {
    if (operation.f !== 'write') continue;
    if (operation.outcome !== 'ok') {
      durable.set(operation.value, Infinity);
      continue;
    }
    if (operation.fua) {
      durable.set(operation.value, operation.completeNs);
      continue;
    }
    const flushInvokes = flushInvokesByConnection.get(operation.connection);
    const flushedLater = flushInvokes !== undefined && firstAtOrAfter(flushInvokes, operation.completeNs) >= 0;
    durable.set(operation.value, flushedLater ? operation.completeNs : Infinity);
  }
  return durable;
}

function firstAtOrAfter(sorted: readonly number[], timeNs: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sorted[middle]! < timeNs) low = middle + 1;
    else high = middle;
  }
  return low < sorted.length ? low : -1;
}
