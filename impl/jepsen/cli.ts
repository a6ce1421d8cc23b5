/**
 * `npm run jepsen -- --seconds 60 --nemesis kill,pause,partition,move,power-loss --seed S`
 *
 * Other options: --workers N (default 6), --base-port P (default 40809; uses
 * P..P+3002), --output DIR (default jepsen-output). Prints the seed first and
 * a summary last. Exit status: 0 valid, 1 violation, unknown result or lost
 * write, 2 bad arguments.
 */
import { freshSeed } from '../history/random-source.js';
import type { NemesisKind } from './nemesis.js';
import { nemesisKinds } from './nemesis.js';
import type { JepsenResult } from './run-jepsen.js';
import { runJepsen } from './run-jepsen.js';

const usage = 'usage: npm run jepsen -- [--seconds N] [--nemesis kill,pause,partition,move,power-loss|none] [--seed S] [--workers N] [--base-port P] [--output DIR]';

function parse(argv: readonly string[]): { seconds: number; nemesis: NemesisKind[]; seed: number; workers: number; basePort: number; output: string } | string {
  const values: Record<string, string> = {};
  for (let index = 0; index < argv.length; index += 2) {
    const name = argv[index]!;
    const value = argv[index + 1];
    if (!name.startsWith('--') || value === undefined) return `bad argument ${name}`;
    if (!['--seconds', '--nemesis', '--seed', '--workers', '--base-port', '--output'].includes(name)) return `unknown option ${name}`;
    values[name.slice(2)] = value;
  }
  const integer = (name: string, fallback: number, low: number, high: number): number | string => {
    const text = values[name];
    if (text === undefined) return fallback;
    const value = Number(text);
    return Number.isInteger(value) && value >= low && value <= high ? value : `--${name} must be an integer in ${low}..${high}`;
  };
  const seconds = integer('seconds', 60, 1, 86_400);
  const seed = integer('seed', freshSeed(), 0, 2 ** 32 - 1);
  const workers = integer('workers', 6, 1, 64);
  const basePort = integer('base-port', 40_809, 1024, 62_000);
  for (const value of [seconds, seed, workers, basePort]) if (typeof value === 'string') return value;
  const nemesisText = values.nemesis ?? 'kill,pause,partition,move';
  const nemesis = nemesisText === 'none' ? [] : nemesisText.split(',');
  const unknown = nemesis.filter((kind) => !(nemesisKinds as readonly string[]).includes(kind));
  if (unknown.length > 0) return `unknown nemesis ${unknown.join(',')}; choose from ${nemesisKinds.join(',')}`;
  return { seconds: seconds as number, nemesis: nemesis as NemesisKind[], seed: seed as number, workers: workers as number, basePort: basePort as number, output: values.output ?? 'jepsen-output' };
}

/**
 * A run passes only if it could have failed: the group settled, every restart the nemesis made came up, every
 * server stopped cleanly when asked (a forced stop is a crash no history records), every final read answered (failed
 * final reads leave every write "neverRead", so no loss could be seen), some operations succeeded, the checker found
 * the history valid and no write was lost. The CI test asks the same.
 */
function passed(result: JepsenResult): boolean {
  return result.verdict === 'valid' && result.loss.lost.length === 0 && result.settled && result.finalReadFailures === 0 && result.stopsForced.length === 0 && result.nemesis['restart-failed'] === 0 && result.operations.ok > 0;
}

const parsed = parse(process.argv.slice(2));
if (typeof parsed === 'string') {
  process.stderr.write(`${parsed}\n${usage}\n`);
  process.exit(2);
}
console.log(`jepsen seed ${parsed.seed}`);
runJepsen({ seed: parsed.seed, seconds: parsed.seconds, nemesis: parsed.nemesis, workerCount: parsed.workers, basePort: parsed.basePort, outputDirectory: parsed.output })
  .then((result) => process.exit(passed(result) ? 0 : 1))
  .catch((error: unknown) => {
    console.error(`jepsen: ${(error as Error).stack ?? error}`);
    process.exit(1);
  });
