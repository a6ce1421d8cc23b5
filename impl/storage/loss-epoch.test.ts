import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { recordCleanStop, recordWritebackFailure, startLossEpoch } from './loss-epoch.js';

/**
 * The loss epoch rises exactly on a restart that may have lost unsynced
 * writes: not after a clean stop, not after a process kill on the same boot
 * (the page cache kept the writes), but after a kill on another boot (a power
 * cut or OS crash came between), when the boot is unknown, and always under
 * the power-loss test switch.
 */
describe('the loss epoch across restarts', () => {
  const directories: string[] = [];
  const fresh = () => {
    const directory = mkdtempSync(join(tmpdir(), 'blockshift-loss-epoch-'));
    directories.push(directory);
    return directory;
  };
  afterEach(() => {
    for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
  });
  const normal = (bootId: string | null) => ({ unsyncedWritesVolatile: false, bootId });

  it('starts at 0 and keeps it over a kill on the same boot and over a clean stop', () => {
    const directory = fresh();
    // A first run has no earlier run whose writes could be unsynced anywhere.
    expect(startLossEpoch(directory, normal('boot-a'))).toEqual({ lossEpoch: 0, raised: false, killedOnThisBoot: false, earlierRunsSynced: true });
    // Killed: the next start on the same boot finds the record not stopped cleanly, but the page cache survived
    // (and the caller must sync what the killed process left unsynced).
    expect(startLossEpoch(directory, normal('boot-a'))).toEqual({ lossEpoch: 0, raised: false, killedOnThisBoot: true, earlierRunsSynced: false });
    recordCleanStop(directory, 0);
    expect(startLossEpoch(directory, normal('boot-b'))).toEqual({ lossEpoch: 0, raised: false, killedOnThisBoot: false, earlierRunsSynced: false });
  });

  it('rises after a kill followed by a reboot, or when the boot is unknown', () => {
    const directory = fresh();
    startLossEpoch(directory, normal('boot-a'));
    expect(startLossEpoch(directory, normal('boot-b'))).toEqual({ lossEpoch: 1, raised: true, killedOnThisBoot: false, earlierRunsSynced: false });
    expect(startLossEpoch(directory, normal(null))).toEqual({ lossEpoch: 2, raised: true, killedOnThisBoot: false, earlierRunsSynced: false });
    // The rise is durable: a later clean cycle keeps it.
    recordCleanStop(directory, 2);
    expect(startLossEpoch(directory, normal('boot-b')).lossEpoch).toBe(2);
  });

  it('rises on every unclean restart under the power-loss test switch, which keeps unsynced writes in memory', () => {
    const directory = fresh();
    const volatile = { unsyncedWritesVolatile: true, bootId: 'boot-a' };
    expect(startLossEpoch(directory, volatile)).toMatchObject({ lossEpoch: 0, earlierRunsSynced: true });
    expect(startLossEpoch(directory, volatile)).toEqual({ lossEpoch: 1, raised: true, killedOnThisBoot: false, earlierRunsSynced: false });
    recordCleanStop(directory, 1);
    expect(startLossEpoch(directory, volatile)).toEqual({ lossEpoch: 1, raised: false, killedOnThisBoot: false, earlierRunsSynced: false });
  });

  it('rises after the page store failed, even on the same boot and after a stop that looked clean', () => {
    const directory = fresh();
    startLossEpoch(directory, normal('boot-a'));
    recordWritebackFailure(directory, 0);
    expect(startLossEpoch(directory, normal('boot-a'))).toEqual({ lossEpoch: 1, raised: true, killedOnThisBoot: false, earlierRunsSynced: false });
    expect(startLossEpoch(directory, normal('boot-a')).lossEpoch).toBe(1);
  });

  it('says every earlier run\'s writes are synced only after a clean stop that flushed every volume, and only once', () => {
    const directory = fresh();
    startLossEpoch(directory, normal('boot-a'));
    recordCleanStop(directory, 0, true);
    expect(startLossEpoch(directory, normal('boot-a'))).toEqual({ lossEpoch: 0, raised: false, killedOnThisBoot: false, earlierRunsSynced: true });
    // That run was killed: its own acknowledgements may be unsynced on any member.
    expect(startLossEpoch(directory, normal('boot-a')).earlierRunsSynced).toBe(false);
    recordCleanStop(directory, 0, false);
    expect(startLossEpoch(directory, normal('boot-a')).earlierRunsSynced).toBe(false);
    recordCleanStop(directory, 0, true);
    recordWritebackFailure(directory, 0);
    expect(startLossEpoch(directory, normal('boot-a')).earlierRunsSynced).toBe(false);
  });

  it('refuses to start on a record it cannot read or parse, naming it, instead of counting from 0 again', () => {
    const directory = fresh();
    startLossEpoch(directory, normal('boot-a'));
    recordWritebackFailure(directory, 0);
    const record = join(directory, 'loss-epoch.json');
    // A symbolic link to itself: reading it fails with ELOOP, not ENOENT (an unreadable disk block gives EIO the same way).
    rmSync(record);
    symlinkSync(record, record);
    expect(() => startLossEpoch(directory, normal('boot-a'))).toThrow(/cannot read the loss epoch record .*loss-epoch\.json: ELOOP/);
    rmSync(record);
    writeFileSync(record, '');
    expect(() => startLossEpoch(directory, normal('boot-a'))).toThrow(/loss-epoch\.json holds no loss epoch record/);
  });
});
