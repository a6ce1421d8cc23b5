/**
 * `npm run bench:ab -- --ref REF [--pairs N] [--figure REGEX] -- COMMAND...`:
 * a benchmark command run alternately on another commit and on this tree,
 * so that a change is compared with what it replaced under the same drift of
 * the host.
 *
 * Why. This 2-core host's disk and cores drift by 20% and more over minutes
 * (other tenants). Figures taken before a change and after it, minutes apart,
 * once showed a 25% gain that six interleaved pairs then put at 1%
 * (README, "27 Nov, afternoon").
 *
 * How. REF is checked out in a temporary git worktree beside the repository
 * (its node_modules linked to this tree's). First each side runs once
 * unmeasured (caches, compiled code: a first run's warm-up would otherwise
 * fall on one side). Then the command runs there and here in pairs, in ABBA
 * order (A B, B A, ...): over an even number of pairs (the default 4) a drift
 * that is steady over the run cancels. Each run's output is searched with
 * REGEX (its first group is a figure; by default the idle copy rate's MB/s of
 * `bench:nbd`), and a run's figure is the mean of its matches. The figures
 * are printed as they come, then each side's mean ± standard error over its
 * runs, and the difference as the mean of the pairs' differences ± its own
 * standard error (paired: what the two sides of a pair share, the host's
 * state, drops out). The worktree is removed at the end, on an error, on
 * Ctrl-C or SIGTERM; one left by a run that was killed outright is removed by
 * the next run. A benchmark tool: it prints and never fails on figures; it
 * exits 2 on bad arguments and 1 when a run fails, prints no figure or is
 * interrupted. Run it from the repository's top, under the ports lock when
 * the command uses fixed ports.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { decimalsFor } from './figure-decimals.js';

interface Options {
  readonly ref: string;
  readonly pairs: number;
  readonly figure: RegExp;
  readonly command: readonly string[];
}

const defaultFigure = 'page copy, idle: .* = ([0-9.]+) MB/s';
const defaultPairs = 4;
const pairsMax = 50;
/** The prefix of this tool's temporary directories, by which a worktree an earlier run left behind is known. */
const temporaryPrefix = 'blockshift-ab-';

function parsedOptions(argv: readonly string[]): Options | string {
  const split = argv.indexOf('--');
  if (split < 0 || split === argv.length - 1) return 'give the command to run after --';
  const flags = argv.slice(0, split);
  const values = new Map<string, string>();
  for (let index = 0; index < flags.length; index += 2) {
    const [name, value] = [flags[index]!, flags[index + 1]];
    if (!['--ref', '--pairs', '--figure'].includes(name)) return `unknown flag ${name}`;
    if (value === undefined) return `${name} needs a value`;
    if (values.has(name)) return `${name} is given twice`;
    values.set(name, value);
  }
  const ref = values.get('--ref');
  if (ref === undefined) return '--ref is required';
  const pairs = Number(values.get('--pairs') ?? defaultPairs);
  if (!Number.isInteger(pairs) || pairs < 2 || pairs > pairsMax || pairs % 2 !== 0) return `--pairs must be an even integer from 2 to ${pairsMax} (ABBA order cancels a steady drift over an even number of pairs)`;
  let figure: RegExp;
  try {
    figure = new RegExp(values.get('--figure') ?? defaultFigure, 'g');
  } catch (error) {
    return `--figure is not a regular expression: ${(error as Error).message}`;
  }
  if ((new RegExp(`${figure.source}|`).exec('')?.length ?? 0) < 2) return '--figure needs a capture group: the figure';
  return { ref, pairs, figure, command: argv.slice(split + 1) };
}

function summary(values: readonly number[]): { mean: number; standardError: number } {
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
  const variance = values.length > 1 ? values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (values.length - 1) : 0;
  return { mean, standardError: Math.sqrt(variance / values.length) };
}

/** Removes the worktrees (and their temporary directories) that runs of this tool left behind. */
function removeLeftWorktrees(top: string): void {
  const listed = spawnSync('git', ['worktree', 'list', '--porcelain'], { cwd: top, encoding: 'utf8' }).stdout ?? '';
  for (const line of listed.split('\n')) {
    const path = line.startsWith('worktree ') ? line.slice('worktree '.length) : '';
    if (basename(dirname(path)).startsWith(temporaryPrefix)) removeWorktree(top, path);
  }
  spawnSync('git', ['worktree', 'prune'], { cwd: top });
}

function removeWorktree(top: string, worktree: string): void {
  spawnSync('git', ['worktree', 'remove', '--force', worktree], { cwd: top });
  rmSync(dirname(worktree), { recursive: true, force: true });
}

class Runner {
  #child: ChildProcess | null = null;
  interrupted = false;

  interrupt(signal: NodeJS.Signals): void {
    this.interrupted = true;
    this.#child?.kill(signal);
  }

  /** The mean of the figures the command printed in `directory`, or why there is none. */
  async run(directory: string, command: readonly string[], figure: RegExp): Promise<number | string> {
    const child = spawn(command[0]!, command.slice(1), { cwd: directory, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    let output = '';
    const keep = (chunk: Buffer) => { output = `${output}${chunk.toString('utf8')}`.slice(-(16 * 2 ** 20)); };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const ended = await new Promise<{ code: number | null; error: Error | null }>((resolve) => {
      child.on('error', (error) => resolve({ code: null, error }));
      child.on('close', (code) => resolve({ code, error: null }));
    });
    this.#child = null;
    if (this.interrupted) return 'interrupted';
    if (ended.error) return `${command[0]} did not run: ${ended.error.message}`;
    if (ended.code !== 0) return `exited ${ended.code}: ${output.slice(-400)}`;
    const figures = [...output.matchAll(figure)].map((match) => Number(match[1]));
    if (figures.length === 0 || figures.some((value) => !Number.isFinite(value))) return `printed no figure matching ${figure.source}`;
    return summary(figures).mean;
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const options = parsedOptions(argv);
  if (typeof options === 'string') {
    console.error(`bench:ab: ${options}\nusage: npm run bench:ab -- --ref REF [--pairs N] [--figure REGEX] -- COMMAND...`);
    return 2;
  }
  const top = spawnSync('git', ['rev-parse', '--show-toplevel'], { encoding: 'utf8' }).stdout?.trim() ?? '';
  if (top === '') {
    console.error('bench:ab: run it inside the repository');
    return 2;
  }
  const resolved = spawnSync('git', ['rev-parse', '--verify', `${options.ref}^{commit}`], { cwd: top, encoding: 'utf8' });
  if (resolved.status !== 0) {
    console.error(`bench:ab: ${options.ref} is not a commit of this repository`);
    return 2;
  }
  const commit = resolved.stdout.trim();
  removeLeftWorktrees(top);
  const worktree = join(mkdtempSync(join(tmpdir(), temporaryPrefix)), 'tree');
  const runner = new Runner();
  const onSignal = (signal: NodeJS.Signals) => runner.interrupt(signal);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const added = spawnSync('git', ['worktree', 'add', '--detach', worktree, commit], { cwd: top, encoding: 'utf8' });
    if (added.status !== 0) {
      console.error(`bench:ab: git worktree add failed: ${added.stderr}`);
      return 1;
    }
    if (existsSync(join(top, 'node_modules'))) symlinkSync(join(top, 'node_modules'), join(worktree, 'node_modules'));
    const a = { name: `${options.ref} (${commit.slice(0, 7)})`, directory: worktree, figures: [] as number[] };
    const b = { name: 'this tree', directory: top, figures: [] as number[] };
    console.log(`bench:ab: a warm-up run of each side, then ${options.pairs} pairs in ABBA order, of: ${options.command.join(' ')}`);
    // Set from the first figure: a ratio such as fwd/owner (0.5) needs more than the one decimal an IOPS or MB/s figure
    // does (a run printed every ratio as 0.5 or 0.6 and the difference as +0.0 ± 0.0).
    let decimals: number | undefined;
    for (let pair = -1; pair < options.pairs; pair += 1) {
      const order = pair % 2 === 0 || pair < 0 ? [a, b] : [b, a];
      for (const side of order) {
        const figure = await runner.run(side.directory, options.command, options.figure);
        if (typeof figure === 'string') {
          console.error(`bench:ab: ${pair < 0 ? 'warm-up' : `pair ${pair + 1}`}, ${side.name}: ${figure}`);
          return 1;
        }
        if (pair >= 0) side.figures.push(figure);
        decimals ??= decimalsFor(figure);
        console.log(`${pair < 0 ? 'warm-up' : `pair ${pair + 1}`}  ${side.name.padEnd(22)} ${figure.toFixed(decimals)}`);
      }
    }
    for (const side of [a, b]) {
      const { mean, standardError } = summary(side.figures);
      console.log(`${side.name.padEnd(22)} mean ${mean.toFixed(decimals)} ± ${standardError.toFixed(decimals)} (standard error over ${side.figures.length} runs)`);
    }
    const differences = a.figures.map((figure, index) => b.figures[index]! - figure);
    const difference = summary(differences);
    const base = summary(a.figures).mean;
    console.log(`difference (this tree − ${options.ref}), paired: ${difference.mean >= 0 ? '+' : ''}${difference.mean.toFixed(decimals)} ± ${difference.standardError.toFixed(decimals)} (${((difference.mean / base) * 100).toFixed(1)}%)`);
    return 0;
  } finally {
    removeWorktree(top, worktree);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

process.exitCode = await main(process.argv.slice(2));
