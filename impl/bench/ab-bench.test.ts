import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/**
 * `npm run bench:ab` (ab-bench.ts): a command run alternately on another
 * commit and on this tree. A stand-in command that prints a figure shows the
 * pairs run in ABBA order, each side's figures collected and summarised, and
 * the worktree removed; bad arguments exit 2.
 */
function abBench(args: string[]): Promise<{ status: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'impl/bench/ab-bench.ts', ...args], { encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ status: error ? (typeof error.code === 'number' ? error.code : -1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

describe('bench:ab', () => {
  it('runs the command on the commit and on this tree in ABBA order and summarises each side', async () => {
    // The figure names the tree it ran in: the worktree's directory is a temporary one, this tree's is not.
    const command = ['--', process.execPath, '-e', "console.log('figure ' + (process.cwd().includes('blockshift-ab-') ? 10 : 20) + ' units')"];
    const result = await abBench(['--ref', 'HEAD', '--pairs', '2', '--figure', 'figure ([0-9.]+) units', ...command]);
    expect(result.status, result.output).toBe(0);
    const runs = result.output.split('\n').filter((line) => line.startsWith('pair '));
    expect(runs.map((line) => line.replace(/\s+/g, ' '))).toEqual([
      expect.stringMatching(/^pair 1 HEAD \([0-9a-f]{7}\) 10\.0$/), 'pair 1 this tree 20.0',
      'pair 2 this tree 20.0', expect.stringMatching(/^pair 2 HEAD \([0-9a-f]{7}\) 10\.0$/),
    ]);
    expect(result.output).toContain('mean 10.0 ± 0.0 (standard error, 2 figures)');
    expect(result.output).toContain('difference (this tree − HEAD): +10.0 ± 0.0 (100.0%)');
    const worktrees = await new Promise<string>((resolve) => execFile('git', ['worktree', 'list'], (_error, stdout) => resolve(String(stdout))));
    expect(worktrees).not.toContain('blockshift-ab-');
  });

  it('exits 2 on bad arguments and 1 when the command prints no figure', async () => {
    for (const args of [['--ref', 'HEAD'], ['--pairs', '2', '--', 'true'], ['--ref', 'no-such-ref-anywhere', '--', 'true'], ['--ref', 'HEAD', '--pairs', '0', '--', 'true'], ['--ref', 'HEAD', '--figure', '(', '--', 'true']]) {
      expect((await abBench(args)).status, args.join(' ')).toBe(2);
    }
    const silent = await abBench(['--ref', 'HEAD', '--pairs', '1', '--', 'true']);
    expect(silent.status).toBe(1);
    expect(silent.output).toContain('printed no figure');
  });
});
