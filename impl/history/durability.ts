/**
 * When each acknowledged write became *required* durable, by NBD's contract:
 * a write sent with FUA is durable once acknowledged; any other write once a
 * FLUSH sent on the same connection after the write's acknowledgement has
 * completed. A write that never met either condition may be lost by a power
 * loss, and the checker's crash model lets it be.
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
  // For each connection: flushes by invocation time, and the earliest completion among each suffix.
  const suffixMinimum = new Map<number, { invokes: number[]; completeMinimum: number[] }>();
  for (const [connection, flushes] of flushesByConnection) {
    flushes.sort((left, right) => left.invokeNs - right.invokeNs);
    const completeMinimum = new Array<number>(flushes.length);
    let minimum = Infinity;
    for (let index = flushes.length - 1; index >= 0; index -= 1) {
      minimum = Math.min(minimum, flushes[index]!.completeNs);
      completeMinimum[index] = minimum;
    }
    suffixMinimum.set(connection, { invokes: flushes.map((flush) => flush.invokeNs), completeMinimum });
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
    const flushes = suffixMinimum.get(operation.connection);
    const first = flushes ? firstAtOrAfter(flushes.invokes, operation.completeNs) : -1;
    durable.set(operation.value, flushes && first >= 0 ? flushes.completeMinimum[first]! : Infinity);
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
