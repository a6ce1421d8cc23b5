/**
 * `npm run bench:ab -- --ref REF [--pairs N] [--figure REGEX] -- COMMAND...`:
 * a benchmark command run alternately on another commit and on this tree,
 * so that a change is compared with what it replaced under the same drift of
 * the host.
 *
 * Why. This 2-core host's disk and cores drift by 20% and more over minutes
 * (other tenants). Figures taken before a change and after it, minutes apart,
 * once showed a 25% gain that six interleaved pairs then put at 1%
 * (README, "27 Nov, afternoon"). Interleaving in ABBA order (A B, B A, A B,
 * ...) cancels a steady drift as well as it can be cancelled.
 *
 * How. REF is checked out in a temporary git worktree beside the repository
 * (its node_modules linked to this tree's), the command runs there and here
 * in turn, N pairs in all, each run's output is searched with REGEX (every
 * match's first group is a figure; by default the idle copy rate's MB/s line
 * of `bench:nbd`), and the figures are printed as they come, then each side's
 * mean with its standard error and the difference of the means. The worktree
 * is removed at the end, after Ctrl-C too. A benchmark tool: it prints and never fails on
 * figures; it exits 2 on bad arguments and 1 when a run fails or prints no
 * figure. Run it under the ports lock when the command uses fixed ports.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Options {
  readonly ref: string;
  readonly pairs: number;
  readonly figure: RegExp;
  readonly command: readonly string[];
}

const defaultFigure = 'page copy, idle: .* = ([0-9.]+) MB/s';
const pairsMax = 50;

function parsedOptions(argv: readonly string[]): Options | string {
  const split = argv.indexOf('--');
  if (split < 0 || split === argv.length - 1) return 'give the command to run after --';
  const flags = argv.slice(0, split);
  const command = argv.slice(split + 1);
  let ref: string | null = null;
  let pairs = 3;
  let figure = defaultFigure;
  for (let index = 0; index < flags.length; index += 2) {
    const [name, value] = [flags[index], flags[index + 1]];
    if (value === undefined) return `${name} needs a value`;
    if (name === '--ref') ref = value;
    else if (name === '--pairs') pairs = Number(value);
    else if (name === '--figure') figure = value;
    else return `unknown flag ${name}`;
  }
  if (ref === null) return '--ref is required';
  if (!Number.isInteger(pairs) || pairs < 1 || pairs > pairsMax) return `--pairs must be an integer from 1 to ${pairsMax}`;
  let pattern: RegExp;
  try {
    pattern = new RegExp(figure, 'g');
  } catch (error) {
    return `--figure is not a regular expression: ${(error as Error).message}`;
  }
  return { ref, pairs, figure: pattern, command };
}

/** The figures a run printed, or an error message. */
function run(directory: string, command: readonly string[], figure: RegExp): number[] | string {
  const result = spawnSync(command[0]!, command.slice(1), { cwd: directory, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (result.error) return `${command[0]} did not run: ${result.error.message}`;
  const output = `${result.stdout}${result.stderr}`;
  if (result.status !== 0) return `exited ${result.status}: ${output.slice(-400)}`;
  const figures = [...output.matchAll(figure)].map((match) => Number(match[1]));
  if (figures.length === 0 || figures.some((value) => !Number.isFinite(value))) return `printed no figure matching ${figure.source}`;
  return figures;
}

function summary(values: readonly number[]): { mean: number; standardError: number } {
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
  const variance = values.length > 1 ? values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (values.length - 1) : 0;
  return { mean, standardError: Math.sqrt(variance / values.length) };
}

function main(argv: readonly string[]): number {
  const options = parsedOptions(argv);
  if (typeof options === 'string') {
    console.error(`bench:ab: ${options}\nusage: npm run bench:ab -- --ref REF [--pairs N] [--figure REGEX] -- COMMAND...`);
    return 2;
  }
  const here = process.cwd();
  const resolved = spawnSync('git', ['rev-parse', '--verify', `${options.ref}^{commit}`], { cwd: here, encoding: 'utf8' });
  if (resolved.status !== 0) {
    console.error(`bench:ab: ${options.ref} is not a commit of this repository`);
    return 2;
  }
  const commit = resolved.stdout.trim();
  const worktree = join(mkdtempSync(join(tmpdir(), 'blockshift-ab-')), 'tree');
  const added = spawnSync('git', ['worktree', 'add', '--detach', worktree, commit], { cwd: here, encoding: 'utf8' });
  if (added.status !== 0) {
    console.error(`bench:ab: git worktree add failed: ${added.stderr}`);
    return 1;
  }
  // Ctrl-C reaches the command too (one process group), which ends it; this process stays to remove the worktree.
  let interrupted = false;
  process.on('SIGINT', () => { interrupted = true; });
  try {
    if (existsSync(join(here, 'node_modules'))) symlinkSync(join(here, 'node_modules'), join(worktree, 'node_modules'));
    const sides = [{ name: `${options.ref} (${commit.slice(0, 7)})`, directory: worktree, figures: [] as number[] }, { name: 'this tree', directory: here, figures: [] as number[] }];
    console.log(`bench:ab: ${options.pairs} pairs, ABBA order, of: ${options.command.join(' ')}`);
    for (let pair = 0; pair < options.pairs; pair += 1) {
      const order = pair % 2 === 0 ? [sides[0]!, sides[1]!] : [sides[1]!, sides[0]!];
      for (const side of order) {
        const figures = run(side.directory, options.command, options.figure);
        if (interrupted) {
          console.error('bench:ab: interrupted');
          return 1;
        }
        if (typeof figures === 'string') {
          console.error(`bench:ab: pair ${pair + 1}, ${side.name}: ${figures}`);
          return 1;
        }
        side.figures.push(...figures);
        console.log(`pair ${pair + 1}  ${side.name.padEnd(22)} ${figures.map((value) => value.toFixed(1)).join(' ')}`);
      }
    }
    const [before, after] = sides.map((side) => ({ side, ...summary(side.figures) }));
    for (const { side, mean, standardError } of [before!, after!]) console.log(`${side.name.padEnd(22)} mean ${mean.toFixed(1)} ± ${standardError.toFixed(1)} (standard error, ${side.figures.length} figures)`);
    const difference = after!.mean - before!.mean;
    const differenceError = Math.sqrt(before!.standardError ** 2 + after!.standardError ** 2);
    console.log(`difference (this tree − ${options.ref}): ${difference >= 0 ? '+' : ''}${difference.toFixed(1)} ± ${differenceError.toFixed(1)} (${((difference / before!.mean) * 100).toFixed(1)}%)`);
    return 0;
  } finally {
    spawnSync('git', ['worktree', 'remove', '--force', worktree], { cwd: here });
    rmSync(join(worktree, '..'), { recursive: true, force: true });
  }
}

process.exitCode = main(process.argv.slice(2));
