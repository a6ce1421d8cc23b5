import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freshSeed } from '../history/random-source.js';
import type { JepsenResult } from './run-jepsen.js';
import { runJepsen } from './run-jepsen.js';

/**
 * Short harness runs against a real three-server group: kill -9, SIGSTOP,
 * partitions and moves (with kills timed to stages) for about 45 s, then a
 * power-loss run for about 25 s. Each must be linearizable per block, lose no
 * required-durable write, and have actually exercised the system: enough
 * operations, every enabled fault at least once, a move completed during the
 * run, and a group that settles afterwards. The seed is printed; replay with
 * BLOCKSHIFT_SEED=<seed>.
 */
const seed = Number(process.env.BLOCKSHIFT_SEED ?? freshSeed());
console.log(`jepsen-short: seed ${seed} (replay with BLOCKSHIFT_SEED=${seed})`);
const outputDirectory = join(tmpdir(), 'blockshift-jepsen-test-output');
// Short enough that a run whose moves do not finish still ends, and reports what they were stuck on, well within the
// test's time-out (run seconds + settle + three final reads of up to 10 s + restarts), long enough for a loaded CI host.
const settleTimeoutMs = 60_000;

function expectSound(result: JepsenResult, kinds: readonly string[]): void {
  expect(result.check.invalidBlocks, result.summary).toEqual([]);
  expect(result.check.unknownBlocks, result.summary).toEqual([]);
  expect(result.loss.lost, result.summary).toEqual([]);
  expect(result.verdict, result.summary).toBe('valid');
  expect(result.settled, result.summary).toBe(true);
  // A failed final read leaves its block's writes unread, so no loss there could be seen.
  expect(result.finalReadFailures, result.summary).toBe(0);
  expect(result.stopsForced, result.summary).toEqual([]);
  expect(result.nemesis['restart-failed'], result.summary).toBe(0);
  expect(result.operations.ok, result.summary).toBeGreaterThan(1_000);
  for (const kind of kinds) expect(result.nemesis[kind] ?? 0, `${kind}: ${result.summary}`).toBeGreaterThan(0);
  expect(result.movesCompletedDuringRun, result.summary).toBeGreaterThan(0);
}

describe('fault-injection harness (short)', () => {
  it('kill, pause, partition and move: linearizable, nothing lost', async () => {
    const kinds = ['kill', 'pause', 'partition', 'move'] as const;
    const result = await runJepsen({ seed, seconds: 45, nemesis: kinds, basePort: 3_809, outputDirectory, settleTimeoutMs, log: () => undefined });
    console.log(result.summary);
    expectSound(result, kinds);
  }, 170_000);

  it('power loss and move: linearizable under the power-loss model, no required-durable write lost', async () => {
    const kinds = ['power-loss', 'move'] as const;
    const result = await runJepsen({ seed: (seed + 1) >>> 0, seconds: 25, nemesis: kinds, basePort: 3_909, outputDirectory, settleTimeoutMs, log: () => undefined });
    console.log(result.summary);
    expectSound(result, kinds);
  }, 170_000);
});
