/**
 * A server's loss epoch (machines/node/loss-watch.ts): how many of its
 * restarts may have lost writes it had applied but not synced. FLUSH fails
 * when a holder of a write it covers answers with a higher epoch than it had
 * when it applied the write, so the epoch must rise on every such restart,
 * and only then (a needless rise fails FLUSHes that lost nothing).
 *
 * Which restarts lose data: a power cut or an operating-system crash drops
 * the page cache; a process killed with SIGKILL does not (its completed
 * pwrites are in the kernel's cache and reach the disk later, and the next
 * start syncs them before serving: PageStore.syncEveryFile); a failed
 * fdatasync may have dropped dirty pages (the page store fails, and says so
 * here at once). The record says whether the previous run stopped cleanly
 * (after syncing everything), whether its page store failed, and which boot
 * of the machine it ran in (Linux's boot_id). The epoch rises when the page
 * store failed, or when the previous run did not stop cleanly and the
 * machine has rebooted since, or the boot is unknown, or the test switch that
 * keeps unsynced writes in process memory (BLOCKSHIFT_POWER_LOSS=1) is on.
 * A clean stop also records whether every write any run of this server
 * acknowledged is known durable wherever it landed (`acknowledgedWritesSynced`,
 * impl/runtime/stop-barrier.ts): the next run may then excuse a silent member
 * from its first FLUSH barrier (machines/node/flush-barrier.ts).
 * The record is written to a temporary file, fsynced and renamed into place
 * (and the directory fsynced) before the node starts, after a clean stop,
 * and when the store fails.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { replaceFileDurablySync } from './directory-sync.js';

interface LossEpochRecord {
  readonly lossEpoch: number;
  readonly bootId: string | null;
  readonly stoppedCleanly: boolean;
  /** The page store failed during the run (absent in records written before it was kept: false). */
  readonly writebackFailed?: boolean;
  /**
   * The run stopped cleanly after a FLUSH of every volume succeeded with every earlier run's writes synced
   * (impl/runtime/stop-barrier.ts): nothing any run acknowledged is unsynced anywhere in the group (absent: false).
   */
  readonly acknowledgedWritesSynced?: boolean;
}

const bootIdPath = '/proc/sys/kernel/random/boot_id';

/** This boot of the machine, or null where the kernel does not say. */
export function currentBootId(): string | null {
  try {
    return readFileSync(bootIdPath, 'utf8').trim() || null;
  } catch {
    return null;
  }
}

function recordPath(dataDirectory: string): string {
  return join(dataDirectory, 'loss-epoch.json');
}

function readRecord(dataDirectory: string): LossEpochRecord | null {
  let text: string;
  try {
    text = readFileSync(recordPath(dataDirectory), 'utf8');
  } catch (error) {
    // Only a record that does not exist means a first start. Any other error (EIO, EACCES) counted from 0 again: the
    // epoch went backwards, and a FLUSH covering a write lost to a power cut could succeed (a review found it).
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`cannot read the loss epoch record ${recordPath(dataDirectory)}: ${(error as Error).message}`);
  }
  let record: Partial<LossEpochRecord>;
  try {
    record = JSON.parse(text) as Partial<LossEpochRecord>;
  } catch (error) {
    throw new Error(`${recordPath(dataDirectory)} holds no loss epoch record (${(error as Error).message}): ${JSON.stringify(text.slice(0, 200))}`);
  }
  if (!Number.isSafeInteger(record.lossEpoch) || (record.lossEpoch as number) < 0 || typeof record.stoppedCleanly !== 'boolean' || (record.bootId !== null && typeof record.bootId !== 'string') ||
    (record.writebackFailed !== undefined && typeof record.writebackFailed !== 'boolean') || (record.acknowledgedWritesSynced !== undefined && typeof record.acknowledgedWritesSynced !== 'boolean')) {
    throw new Error(`${recordPath(dataDirectory)} holds no loss epoch record: ${text.slice(0, 200)}`);
  }
  return record as LossEpochRecord;
}

function writeRecord(dataDirectory: string, record: LossEpochRecord): void {
  replaceFileDurablySync(recordPath(dataDirectory), `${JSON.stringify(record)}\n`);
}

/**
 * Called once at start, before the node: the loss epoch to start with, made
 * durable (with "not stopped cleanly") before it is returned. A directory
 * without a record starts at 0: it has never held an acknowledged write.
 * `killedOnThisBoot`: the previous run ended without a clean stop and without
 * losing the page cache, so its unsynced writes must be synced before the
 * node serves (the caller does). `earlierRunsSynced`: this is the first run,
 * or the previous one stopped cleanly with every write it and its
 * predecessors acknowledged durable wherever it landed (see
 * `recordCleanStop`); the node may then excuse
 * a silent member from its first FLUSH barrier (machines/node/flush-barrier.ts).
 */
export function startLossEpoch(dataDirectory: string, options: { unsyncedWritesVolatile: boolean; bootId?: string | null }): { lossEpoch: number; raised: boolean; killedOnThisBoot: boolean; earlierRunsSynced: boolean } {
  const bootId = options.bootId === undefined ? currentBootId() : options.bootId;
  const previous = readRecord(dataDirectory);
  const unclean = previous !== null && !previous.stoppedCleanly;
  const mayHaveLost = previous !== null && (previous.writebackFailed === true || (unclean && (options.unsyncedWritesVolatile || bootId === null || previous.bootId !== bootId)));
  const lossEpoch = previous === null ? 0 : previous.lossEpoch + (mayHaveLost ? 1 : 0);
  writeRecord(dataDirectory, { lossEpoch, bootId, stoppedCleanly: false });
  // A first run ever has no earlier run whose writes could be unsynced anywhere.
  const earlierRunsSynced = previous === null || (previous.stoppedCleanly && previous.writebackFailed !== true && previous.acknowledgedWritesSynced === true);
  return { lossEpoch, raised: mayHaveLost, killedOnThisBoot: unclean && !mayHaveLost, earlierRunsSynced };
}

/** Called when the page store fails: the next start raises the epoch whatever else happened. */
export function recordWritebackFailure(dataDirectory: string, lossEpoch: number): void {
  writeRecord(dataDirectory, { lossEpoch, bootId: currentBootId(), stoppedCleanly: false, writebackFailed: true });
}

/**
 * Called after a clean stop has synced every page and closed the metadata store: the next start loses nothing.
 * `acknowledgedWritesSynced`: the stop's FLUSH of every volume succeeded with every earlier run's writes synced
 * (impl/runtime/stop-barrier.ts), so no member holds unsynced a write any run of this server acknowledged.
 */
export function recordCleanStop(dataDirectory: string, lossEpoch: number, acknowledgedWritesSynced = false): void {
  writeRecord(dataDirectory, { lossEpoch, bootId: currentBootId(), stoppedCleanly: true, ...(acknowledgedWritesSynced ? { acknowledgedWritesSynced } : {}) });
}
