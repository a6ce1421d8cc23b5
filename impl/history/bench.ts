/**
 * The checker's benchmark: 1,000,000 operations of a simulated register
 * group over 10,000 blocks (64 concurrent clients, half reads, 1% of writes
 * with unknown outcome), checked once. Prints the seed, the verdict and the
 * seconds the check took; the target is at most 1 s.
 *
 *   npm run bench:checker [-- --seed S --operations N --blocks B]
 */
import { checkHistory } from './linearizability-checker.js';
import { freshSeed } from './random-source.js';
import { simulateRegisterHistory } from './simulated-register.js';

function argument(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const text = index >= 0 ? process.argv[index + 1] : undefined;
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be a non-negative integer`);
  return value;
}

const seed = argument('seed', freshSeed());
const operationCount = argument('operations', 1_000_000);
const blockCount = argument('blocks', 10_000);
console.log(`checker benchmark: seed ${seed}, ${operationCount} operations over ${blockCount} blocks`);
const operations = simulateRegisterHistory({ seed, processCount: 64, blockCount, operationCount, infoProbability: 0.01, latencyMaxNs: 100_000 });
const startedNs = process.hrtime.bigint();
const verdict = checkHistory(operations);
const seconds = Number(process.hrtime.bigint() - startedNs) / 1e9;
const steps = verdict.blocks.reduce((sum, block) => sum + block.searchSteps, 0);
console.log(`verdict ${verdict.verdict}: ${verdict.blocks.length} blocks, ${steps} search steps`);
console.log(`checked in ${seconds.toFixed(3)} s (target <= 1 s)`);
process.exit(verdict.verdict === 'valid' ? 0 : 1);
