import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { getHeapStatistics } from 'node:v8';
import { checkState, checkTransition } from '../world/properties.js';
import type { NetworkMode, WorldConfig } from '../world/world-config.js';
import { referenceBound } from '../world/world-config.js';
import { applyAction, describeAction, enabledActions, initialWorld } from '../world/world.js';
import { brokenVariants } from './broken-variants.js';
import type { TraceFile } from './counterexample.js';
import { numberedSteps, sequenceDiagram } from './counterexample.js';
import { explore } from './explore.js';
import { FingerprintAudit } from '../world/fingerprint-audit.js';

/**
 * `npm run check -- --servers 3 --pages 1 --pieces 2 --writes 2 --moves 1 --crashes 1 --network unordered`
 * Exit 0: every property holds and every goal is reached. 1: a violation (or
 * a goal not reached, or the bounds not exhausted). 2: bad arguments.
 */
const usage = `usage: npm run check -- [--servers N] [--pages N] [--pieces N] [--move-pieces N] [--chunk-blocks N] [--writes N] [--reads N] [--moves N]
  [--crashes N] [--abandons N] [--network ordered|unordered|lossy|duplicating] [--faults N] [--kinds piecewise,unit]
  [--forwarding-pointer] [--power-loss [--unflushed-writes [--flushes N]]] [--crash-keeps-sent] [--unawaited-commits-lost] [--commit-failures N [--failed-commits-durable]] [--data-write-failures N] [--timers-anytime [--early-timers N]] [--no-symmetry] [--audit-fingerprint] [--states-max N] [--depth-max N] [--liveness N] [--liveness-every N] [--variant NAME] [--out DIR] [--json]
  npm run check -- --replay FILE`;

/**
 * Exhausting the reference bound holds millions of states (5.8M, about
 * 10 GB resident in a measured run), past V8's default heap of about 4 GB.
 * Unless the heap size was chosen (NODE_OPTIONS or a node flag), the check
 * runs itself again with a heap of 70% of this machine's memory (at most
 * 32 GiB); the search still stops cleanly at 80% of whatever heap it has.
 */
const heapChosen = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((flag) => flag.includes('max-old-space-size'));
if (!heapChosen && process.env.BLOCKSHIFT_CHECK_HEAP_SIZED === undefined) {
  const heapMb = Math.min(32 * 1024, Math.floor((0.7 * totalmem()) / 2 ** 20));
  if (heapMb > getHeapStatistics().heap_size_limit / 2 ** 20) {
    const child = spawnSync(process.execPath, [...process.execArgv, `--max-old-space-size=${heapMb}`, ...process.argv.slice(1)], {
      stdio: 'inherit', env: { ...process.env, BLOCKSHIFT_CHECK_HEAP_SIZED: '1' },
    });
    process.exit(child.status ?? 1);
  }
}

function fail(message: string): never {
  console.error(`check: ${message}\n${usage}`);
  process.exit(2);
}

function integer(value: string | undefined, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) fail(`--${name} must be a whole number, got ${JSON.stringify(value)}`);
  const parsed = Number(value);
  if (parsed < min || parsed > max) fail(`--${name} must be between ${min} and ${max}, got ${parsed}`);
  return parsed;
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      servers: { type: 'string' }, pages: { type: 'string' }, pieces: { type: 'string' }, 'move-pieces': { type: 'string' }, 'chunk-blocks': { type: 'string' }, writes: { type: 'string' }, reads: { type: 'string' },
      moves: { type: 'string' }, abandons: { type: 'string' }, crashes: { type: 'string' }, network: { type: 'string' }, faults: { type: 'string' }, kinds: { type: 'string' },
      'forwarding-pointer': { type: 'boolean' }, 'power-loss': { type: 'boolean' }, 'unflushed-writes': { type: 'boolean' }, flushes: { type: 'string' }, 'crash-keeps-sent': { type: 'boolean' }, 'unawaited-commits-lost': { type: 'boolean' }, 'commit-failures': { type: 'string' }, 'failed-commits-durable': { type: 'boolean' }, 'data-write-failures': { type: 'string' }, 'timers-anytime': { type: 'boolean' }, 'early-timers': { type: 'string' }, 'no-symmetry': { type: 'boolean' }, 'audit-fingerprint': { type: 'boolean' }, 'states-max': { type: 'string' }, 'depth-max': { type: 'string' },
      liveness: { type: 'string' }, 'liveness-every': { type: 'string' }, variant: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' }, replay: { type: 'string' },
    },
    strict: true,
  });
} catch (error) {
  fail((error as Error).message);
}
const { values } = parsed;

if (values.replay) {
  let trace: TraceFile;
  try {
    trace = JSON.parse(readFileSync(values.replay, 'utf8')) as TraceFile;
  } catch (error) {
    fail(`cannot read trace ${values.replay}: ${(error as Error).message}`);
  }
  let world = initialWorld(trace.config);
  for (const [index, action] of trace.actions.entries()) {
    const enabled = enabledActions(world).some((candidate) => JSON.stringify(candidate) === JSON.stringify(action));
    if (!enabled) {
      console.log(`step ${index + 1} is not enabled here: ${JSON.stringify(action)}`);
      process.exit(1);
    }
    console.log(`${String(index + 1).padStart(3)}. ${describeAction(world, action)}`);
    let next;
    try {
      next = applyAction(world, action);
    } catch (error) {
      console.log(`VIOLATION of "every step runs without a failed assertion": ${(error as Error).message}`);
      process.exit(1);
    }
    const violation = checkState(next) ?? checkTransition(world, next);
    world = next;
    if (violation) {
      console.log(`VIOLATION of "${violation.property}": ${violation.detail}`);
      process.exit(1);
    }
  }
  console.log('replayed without violation');
  process.exit(0);
}

const network = (values.network ?? referenceBound.network) as NetworkMode;
if (!['ordered', 'unordered', 'lossy', 'duplicating'].includes(network)) fail(`--network must be ordered, unordered, lossy or duplicating, got ${JSON.stringify(values.network)}`);
const kinds = (values.kinds ?? 'piecewise').split(',');
if (kinds.length === 0 || !kinds.every((kind) => kind === 'unit' || kind === 'piecewise')) fail(`--kinds takes unit and/or piecewise, got ${JSON.stringify(values.kinds)}`);
if (values.variant !== undefined && !brokenVariants[values.variant]) fail(`unknown --variant ${values.variant}; known: ${Object.keys(brokenVariants).join(', ')}`);
const config: WorldConfig = {
  ...referenceBound,
  servers: integer(values.servers, 'servers', referenceBound.servers, 2, 5),
  pages: integer(values.pages, 'pages', referenceBound.pages, 1, 3),
  pieces: integer(values.pieces, 'pieces', referenceBound.pieces, 1, 4),
  ...(values['move-pieces'] === undefined ? {} : { movePieces: integer(values['move-pieces'], 'move-pieces', 1, 1, 4) }),
  ...(values['chunk-blocks'] === undefined ? {} : { copyChunkBlocks: integer(values['chunk-blocks'], 'chunk-blocks', 1, 1, 4) }),
  writes: integer(values.writes, 'writes', referenceBound.writes, 0, 4),
  reads: integer(values.reads, 'reads', 0, 0, 4),
  moves: integer(values.moves, 'moves', referenceBound.moves, 0, 3),
  crashes: integer(values.crashes, 'crashes', referenceBound.crashes, 0, 3),
  ...(values.abandons === undefined ? {} : { abandons: integer(values.abandons, 'abandons', 0, 0, 2) }),
  networkFaults: integer(values.faults, 'faults', network === 'lossy' || network === 'duplicating' ? 1 : 0, 0, 3),
  network,
  moveKinds: kinds as WorldConfig['moveKinds'],
  forwardingPointer: values['forwarding-pointer'] ?? false,
  powerLoss: values['power-loss'] ?? false,
  ...(values['unflushed-writes'] ? { unflushedWrites: true } : {}),
  ...(values.flushes === undefined ? {} : { flushes: integer(values.flushes, 'flushes', 0, 0, 3) }),
  ...(values['crash-keeps-sent'] ? { crashKeepsSent: true } : {}),
  ...(values['unawaited-commits-lost'] ? { unawaitedCommitsLost: true } : {}),
  ...(values['commit-failures'] === undefined ? {} : { commitFailures: integer(values['commit-failures'], 'commit-failures', 0, 0, 3) }),
  // A commit reported failed may be durable all the same (its outcome is unknown).
  ...(values['failed-commits-durable'] ? { failedCommitsDurable: true } : {}),
  // Page-data writes a disk may fail (EIO, ENOSPC): `disk.fail` arms a server, whose next page write then fails.
  ...(values['data-write-failures'] === undefined ? {} : { dataWriteFailures: integer(values['data-write-failures'], 'data-write-failures', 0, 0, 3) }),
  // Timers fire in any state, with messages in flight and I/O pending, not only once everything else is done: a retry
  // that overtakes the answer it retries. Unbounded, retries make the state space infinite; --early-timers N lets N of
  // them race, after which timers wait for quiet again, and the search can finish.
  ...(values['timers-anytime'] || values['early-timers'] !== undefined ? { timersOnlyWhenQuiet: false } : {}),
  ...(values['early-timers'] === undefined ? {} : { earlyTimersMax: integer(values['early-timers'], 'early-timers', 0, 0, 8) }),
  variant: values.variant ?? null,
};
if ((config.flushes ?? 0) > 0 && !config.unflushedWrites) fail('--flushes needs --unflushed-writes (a write with FUA needs no FLUSH)');
if (config.unflushedWrites && !config.powerLoss) fail('--unflushed-writes needs --power-loss (without power cuts every write survives anyway)');
if (config.movePieces !== undefined && config.pieces % config.movePieces !== 0) fail(`--move-pieces must divide --pieces (${config.pieces}), got ${config.movePieces}`);
const statesMax = integer(values['states-max'], 'states-max', 20_000_000, 1, 50_000_000);
const depthMax = integer(values['depth-max'], 'depth-max', 500, 1, 10_000);
const livenessSamples = integer(values.liveness, 'liveness', 200, 0, 1_000_000);
// One sample every this many new states; 1 checks liveness from every state (up to --liveness of them), which a small
// bound affords: a livelock reachable only from a few states is missed by a sample.
const livenessEvery = integer(values['liveness-every'], 'liveness-every', 53, 1, 1_000_000);

let lastReport = performance.now();
// Debug: compare every merged state with the one kept (world/fingerprint-audit.ts); it keeps every state, so it needs more heap.
const audit = values['audit-fingerprint'] ? new FingerprintAudit(values['no-symmetry'] !== true, false) : undefined;
const result = explore(config, {
  statesMax, depthMax, livenessSamples, livenessEvery, livenessStepsMax: 2_000, symmetry: values['no-symmetry'] !== true, heapFractionMax: 0.8, fingerprintAudit: audit,
  onProgress: (states, depth) => {
    if (!values.json && performance.now() - lastReport > 5_000) {
      lastReport = performance.now();
      console.error(`  ... depth ${depth}, ${states} states`);
    }
  },
});
const goalsMissed = Object.entries(result.goals).filter(([, reached]) => !reached).map(([goal]) => goal);
const statesPerSecond = Math.round(result.states / Math.max(result.seconds, 1e-9));
const outDir = values.out ?? 'explorer-output';
let traceFile: string | null = null;
const failingTrace = result.violation?.trace ?? result.livenessFailure ?? null;
if (failingTrace) {
  mkdirSync(outDir, { recursive: true });
  const actions = failingTrace.map((step) => step.action);
  const file: TraceFile = { config, actions, property: result.violation?.property ?? 'liveness', detail: result.violation?.detail ?? result.livenessFailure?.reason };
  traceFile = join(outDir, 'counterexample.json');
  writeFileSync(traceFile, `${JSON.stringify(file, null, 2)}\n`);
  writeFileSync(join(outDir, 'counterexample.mmd'), sequenceDiagram(config, initialWorld(config), actions, file.property ?? ''));
}

if (values.json) {
  console.log(JSON.stringify({ ...result, statesPerSecond, goalsMissed, traceFile }, null, 2));
} else {
  console.log(`explored ${result.states} distinct states, ${result.transitions} transitions, depth ${result.depth}, ` +
    `${result.seconds.toFixed(2)} s (${statesPerSecond} states/s)${result.complete ? ', bounds exhausted' : result.memoryCapped ? '' : ', NOT exhausted (raise --states-max/--depth-max)'}`);
  if (result.memoryCapped) {
    const limitMb = Math.round(getHeapStatistics().heap_size_limit / 2 ** 20);
    console.log(`NOT exhausted: the heap neared its limit of ${limitMb} MiB; rerun with a larger one, e.g. NODE_OPTIONS=--max-old-space-size=${2 * limitMb} npm run check -- ...`);
  }
  console.log(`bounds: ${JSON.stringify({ ...config, variant: undefined })}`);
  console.log(`reductions: symmetry over interchangeable servers ${values['no-symmetry'] ? 'off' : 'on'}; ${config.timersOnlyWhenQuiet
    ? 'time-outs fire only when the group is quiet (no message in flight, every server up, no commit pending; --timers-anytime lifts it)'
    : `time-outs may race other events${config.earlyTimersMax === undefined ? ' without bound' : ` ${config.earlyTimersMax} time(s)`}, while fewer than ${config.messagesMax} messages are in flight`}`);
  for (const [goal, reached] of Object.entries(result.goals)) console.log(`  sometimes ${reached ? 'reached' : 'NOT REACHED'}: ${goal}`);
  console.log(`  liveness: ${result.livenessFailure ? `FAILED: ${result.livenessFailure.reason}` : `holds from ${result.livenessChecked} states drawn evenly from the ${result.livenessEligible} eligible (one new state in ${livenessEvery})`}`);
  if (result.violation) {
    console.log(`VIOLATION of "${result.violation.property}": ${result.violation.detail}`);
    console.log(numberedSteps(result.violation.trace));
  }
  if (result.livenessFailure) console.log(numberedSteps(result.livenessFailure));
  if (audit) console.log(audit.report(12));
  if (traceFile) console.log(`trace written to ${traceFile} (replay: npm run check -- --replay ${traceFile}) and ${join(outDir, 'counterexample.mmd')}`);
}
process.exit(result.violation || result.livenessFailure || goalsMissed.length > 0 || !result.complete || (audit?.unexplained ?? 0) > 0 ? 1 : 0);
