import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * `npm run bench:ab` (ab-bench.ts): a command run alternately on another
 * commit and on this tree. A stand-in command prints a figure that tells the
 * sides apart and grows with each run of its side (a counter file per side),
 * so the test sees the warm-up runs, the ABBA order, each side's mean and
 * standard error, the paired difference, and the worktree removed; bad
 * arguments exit 2.
 */
function abBench(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ status: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'impl/bench/ab-bench.ts', ...args], { encoding: 'utf8', env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ status: error ? (typeof error.code === 'number' ? error.code : -1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

/** Prints `figure F units`: on the other commit's side (a worktree under blockshift-ab-) 10 + 2k, here 20 + 4k, for its k-th run. */
const standIn = `
const fs = require('node:fs'), path = require('node:path');
const other = process.cwd().includes('blockshift-ab-');
const file = path.join(process.env.AB_TEST_DIR, other ? 'a' : 'b');
const runs = fs.existsSync(file) ? Number(fs.readFileSync(file, 'utf8')) : 0;
fs.writeFileSync(file, String(runs + 1));
console.log('figure ' + (other ? 10 + 2 * runs : 20 + 4 * runs) + ' units');`;

describe('bench:ab', () => {
  it('warms each side up, runs the pairs in ABBA order, and summarises each side and the paired difference', async () => {
    const counters = mkdtempSync(join(tmpdir(), 'ab-bench-test-'));
    try {
      const result = await abBench(['--ref', 'HEAD', '--pairs', '2', '--figure', 'figure ([0-9.]+) units', '--', process.execPath, '-e', standIn], { AB_TEST_DIR: counters });
      expect(result.status, result.output).toBe(0);
      const runs = result.output.split('\n').filter((line) => /^(warm-up|pair )/.test(line)).map((line) => line.replace(/\([0-9a-f]{7}\)/, '(commit)').replace(/\s+/g, ' '));
      expect(runs).toEqual([
        'warm-up HEAD (commit) 10.0', 'warm-up this tree 20.0',
        'pair 1 HEAD (commit) 12.0', 'pair 1 this tree 24.0',
        'pair 2 this tree 28.0', 'pair 2 HEAD (commit) 14.0',
      ]);
      // Sides 12, 14 and 24, 28: means 13 and 26, standard errors 1 and 2; paired differences 12 and 14.
      expect(result.output).toMatch(/HEAD \([0-9a-f]{7}\)\s+mean 13\.0 ± 1\.0 \(standard error over 2 runs\)/);
      expect(result.output).toMatch(/this tree\s+mean 26\.0 ± 2\.0 \(standard error over 2 runs\)/);
      expect(result.output).toContain('difference (this tree − HEAD), paired: +13.0 ± 1.0 (100.0%)');
      const worktrees = await new Promise<string>((resolve) => execFile('git', ['worktree', 'list'], (_error, stdout) => resolve(String(stdout))));
      expect(worktrees).not.toContain('blockshift-ab-');
    } finally {
      rmSync(counters, { recursive: true, force: true });
    }
  });

  it('exits 2 on bad arguments and 1 when the command prints no figure', async () => {
    for (const args of [
      ['--ref', 'HEAD'], ['--pairs', '2', '--', 'true'], ['--ref', 'no-such-ref-anywhere', '--', 'true'], ['--ref', 'HEAD', '--pairs', '3', '--', 'true'],
      ['--ref', 'HEAD', '--figure', '(', '--', 'true'], ['--ref', 'HEAD', '--figure', 'no group', '--', 'true'], ['--ref', 'HEAD', '--ref', 'HEAD', '--', 'true'],
    ]) {
      expect((await abBench(args)).status, args.join(' ')).toBe(2);
    }
    const silent = await abBench(['--ref', 'HEAD', '--pairs', '2', '--', 'true']);
    expect(silent.status).toBe(1);
    expect(silent.output).toContain('printed no figure');
  });
});
