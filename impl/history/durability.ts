/**
 * When each acknowledged write became *required* durable, by NBD's contract:
 * a write sent with FUA is durable once acknowledged; any other write is
 * durable from its acknowledgement on if the first FLUSH sent on the same
 * connection after that acknowledgement completes `ok`. (That `ok` says
 * every write acknowledged before it is durable, so no power cut since the
 * acknowledgement may have taken it: a group that lost it must fail the
 * FLUSH, machines/node/loss-watch.ts.) If that first FLUSH fails or its
 * outcome is unknown, the write stays uncertain for good: a loss is
 * reported once per connection, as Linux reports writeback errors, so a
 * later FLUSH's `ok` no longer vouches for it. A write that met neither
 * condition may be lost by a power loss, and the checker's crash model lets
 * it be.
 *
 * The group's FLUSH is in fact a barrier over every connection to the
 * volume on that server, so this rule is weaker than what blockshift
 * promises: it can miss a loss the barrier forbids, but it never calls a
 * permitted loss a violation.
 */
import type { Operation } from './history-event.js';

/** Write id → the monotonic time (ns) from which it must survive a power loss; Infinity if never. */
export function requiredDurableTimes(operations: readonly Operation[]): Map<number, number> {
  // For each connection: its flushes of any outcome, by invocation time.
  const flushesByConnection = new Map<number, Operation[]>();
  for (const operation of operations) {
    if (operation.f !== 'flush') continue;
    const list = flushesByConnection.get(operation.connection) ?? [];
    list.push(operation);
    flushesByConnection.set(operation.connection, list);
  }
  const flushInvokesByConnection = new Map<number, { invokes: number[]; flushes: Operation[] }>();
  for (const [connection, flushes] of flushesByConnection) {
    flushes.sort((left, right) => left.invokeNs - right.invokeNs);
    flushInvokesByConnection.set(connection, { invokes: flushes.map((flush) => flush.invokeNs), flushes });
  }
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
    const flushes = flushInvokesByConnection.get(operation.connection);
    const first = flushes ? firstAtOrAfter(flushes.invokes, operation.completeNs) : -1;
    const vouched = flushes !== undefined && first >= 0 && first < flushes.flushes.length && flushes.flushes[first]!.outcome === 'ok';
    durable.set(operation.value, vouched ? operation.completeNs : Infinity);
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
