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
 *   lostUnflushed the same, but the write was never required durable and the
 *                 run had power-loss crashes: NBD allows that loss
 *   lostBeforeFlush the same, but a power-loss crash came while the write
 *                 was in flight (after it began, before its acknowledgement),
 *                 and a FLUSH made it required durable only later. The
 *                 checker's crash model allows that loss (it judges
 *                 durability at each crash, see durability.ts), so it is not
 *                 counted as lost; the group in fact fails such a FLUSH too
 *                 (machines/node/loss-watch.ts), so it is reported apart.
 *   neverRead     no final read of its block
 *
 * A write is counted once, by the worst verdict over the final reads of its
 * block (they should agree; if they do not, the checker says so).
 */
import type { Operation } from './history-event.js';
import { initialValue } from './history-event.js';
import { requiredDurableTimes } from './durability.js';

export type WriteFate = 'stable' | 'superseded' | 'lost' | 'lostBeforeFlush' | 'lostUnflushed' | 'neverRead';

export interface LossReport {
  readonly counts: Readonly<Record<WriteFate, number>>;
  /** Acknowledged writes that linearizability cannot explain losing (required durable ones, or any without power loss). */
  readonly lost: ReadonlyArray<{ readonly writeId: number; readonly block: number; readonly finalValue: number }>;
}

const severity: Record<WriteFate, number> = { stable: 0, superseded: 1, neverRead: 2, lostUnflushed: 3, lostBeforeFlush: 4, lost: 5 };

export function lossReport(operations: readonly Operation[]): LossReport {
  const crashCompleteNs = operations.filter((operation) => operation.f === 'crash' && operation.outcome !== 'fail')
    .map((crash) => (Number.isFinite(crash.completeNs) ? crash.completeNs : crash.invokeNs));
  const powerLoss = crashCompleteNs.length > 0;
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
  const counts: Record<WriteFate, number> = { stable: 0, superseded: 0, lost: 0, lostBeforeFlush: 0, lostUnflushed: 0, neverRead: 0 };
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
    const durableNs = durable.get(write.value) ?? Infinity;
    if (fate === 'lost' && powerLoss && durableNs === Infinity) fate = 'lostUnflushed';
    // The checker's rule (register-models.ts): a crash may roll back a write not yet required durable when it completed.
    else if (fate === 'lost' && crashCompleteNs.some((crashNs) => crashNs >= write.invokeNs && durableNs > crashNs)) fate = 'lostBeforeFlush';
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
