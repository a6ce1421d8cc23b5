/**
 * What became of each acknowledged write, judged by the reads of the final
 * phase (after every fault was healed and every server restarted).
 *
 *   stable        a final read returned it
 *   superseded    a final read returned a write that was not finished before
 *                 it began (so it may legitimately have overwritten it)
 *   lost          a final read returned an older value: a write that finished
 *                 before it began, or the initial zeroes. Linearizability
 *                 cannot explain that (the checker reports the block too).
 *   lostUnflushed the same, but the write was never required durable and a
 *                 power-loss crash came after it began: NBD allows that loss.
 *                 A write required durable at any time (FUA, or a FLUSH
 *                 answered ok) is lost if it is gone, even if the power cut
 *                 came while it was in flight: the acknowledgement or the
 *                 FLUSH after the cut still promised it (register-models.ts).
 *   neverRead     no final read of its block
 *
 * A write is counted once, by the worst verdict over the final reads of its
 * block (they should agree; if they do not, the checker says so).
 */
import type { Operation } from './history-event.js';
import { initialValue } from './history-event.js';
import { requiredDurableTimes } from './durability.js';

export type WriteFate = 'stable' | 'superseded' | 'lost' | 'lostUnflushed' | 'neverRead';

export interface LossReport {
  readonly counts: Readonly<Record<WriteFate, number>>;
  /** Acknowledged writes that linearizability cannot explain losing (required durable ones, or any without power loss). */
  readonly lost: ReadonlyArray<{ readonly writeId: number; readonly block: number; readonly finalValue: number }>;
}

const severity: Record<WriteFate, number> = { stable: 0, superseded: 1, neverRead: 2, lostUnflushed: 3, lost: 4 };

export function lossReport(operations: readonly Operation[]): LossReport {
  const crashCompleteNs = operations.filter((operation) => operation.f === 'crash' && operation.outcome !== 'fail')
    .map((crash) => (Number.isFinite(crash.completeNs) ? crash.completeNs : crash.invokeNs));
  const durable = requiredDurableTimes(operations);
  const writesByValue = new Map<number, Operation>();
  const finalReads = new Map<number, Operation[]>();
  for (const operation of operations) {
    if (operation.f === 'write') writesByValue.set(operation.value, operation);
    if (operation.f === 'read' && operation.final && operation.outcome === 'ok') {
      const list = finalReads.get(operation.block) ?? [];
      list.push(operation);
      finalReads.set(operation.block, list);
    }
  }
  const counts: Record<WriteFate, number> = { stable: 0, superseded: 0, lost: 0, lostUnflushed: 0, neverRead: 0 };
  const lost: Array<{ writeId: number; block: number; finalValue: number }> = [];
  for (const write of operations) {
    if (write.f !== 'write' || write.outcome !== 'ok') continue;
    let fate: WriteFate = 'neverRead';
    let worstValue = initialValue;
    for (const read of finalReads.get(write.block) ?? []) {
      const verdict = fateBy(write, read.value);
      if (fate === 'neverRead' || severity[verdict] > severity[fate]) {
        fate = verdict;
        worstValue = read.value;
      }
    }
    // The checker's rule (register-models.ts): only a crash after the write began can have rolled it back, and only if
    // it was never required durable.
    const neverDurable = (durable.get(write.value) ?? Infinity) === Infinity;
    if (fate === 'lost' && neverDurable && crashCompleteNs.some((crashNs) => crashNs >= write.invokeNs)) fate = 'lostUnflushed';
    counts[fate] += 1;
    if (fate === 'lost') lost.push({ writeId: write.value, block: write.block, finalValue: worstValue });
  }
  return { counts, lost };

  function fateBy(write: Operation, finalValue: number): WriteFate {
    if (finalValue === write.value) return 'stable';
    if (finalValue === initialValue) return 'lost';
    const finalWrite = writesByValue.get(finalValue);
    // A value no write stored is the checker's business; here it proves nothing about this write.
    if (!finalWrite || finalWrite.block !== write.block) return 'neverRead';
    return finalWrite.completeNs < write.invokeNs ? 'lost' : 'superseded';
  }
}
