/**
 * `npm run bench:explorer`: the explorer's throughput and the time to exhaust
 * the reference bound (3 servers, 1 page of 2 pieces, 2 writes, 1 move,
 * 1 crash, unordered network: world-config.ts). A benchmark, not a test: it prints
 * figures and never fails on them. `--seconds N` caps the reference run
 * (default 300); a capped run reports how far it got. `--no-symmetry` runs
 * the reference bound without the symmetry reduction.
 *
 * Besides wall time it prints the process's CPU time and states per CPU
 * second: on a machine shared with other work the wall-clock rate measures
 * the neighbours as much as the explorer.
 */
import { parseArgs } from 'node:util';
import { referenceBound } from '../world/world-config.js';
import type { WorldConfig } from '../world/world-config.js';
import { serverStepMemoStats } from '../world/server-step-memo.js';
import { canonicalObjectStats } from '../world/canonical-objects.js';
import { internedPieceCount } from '../world/fingerprint.js';
import { explore } from './explore.js';

const { values } = parseArgs({ options: { seconds: { type: 'string' }, 'no-symmetry': { type: 'boolean' } } });
const secondsMax = Number(values.seconds ?? 300);
const symmetry = values['no-symmetry'] !== true;

function run(name: string, config: WorldConfig, statesMax: number): void {
  const cpuBefore = process.cpuUsage();
  const memoBefore = { ...serverStepMemoStats };
  const sharedBefore = { ...canonicalObjectStats };
  const result = explore(config, { statesMax, depthMax: 1_000, livenessSamples: 0, livenessEvery: 1, livenessStepsMax: 0, secondsMax, symmetry, heapFractionMax: 0.8 });
  const cpu = process.cpuUsage(cpuBefore);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const capped = result.seconds >= secondsMax;
  const rate = Math.round(result.states / result.seconds);
  const cpuRate = Math.round(result.states / Math.max(cpuSeconds, 1e-9));
  const hits = serverStepMemoStats.hits - memoBefore.hits;
  const misses = serverStepMemoStats.misses - memoBefore.misses;
  const made = canonicalObjectStats.servers - sharedBefore.servers;
  const shared = canonicalObjectStats.serversShared - sharedBefore.serversShared;
  const outcome = result.violation ? `VIOLATION ${result.violation.property}` : result.complete ? 'exhausted' : result.memoryCapped ? 'NOT exhausted (heap limit)' : capped ? 'NOT exhausted (time cap)' : 'NOT exhausted (state cap)';
  console.log(`${name}: ${result.states} states, ${result.transitions} transitions, depth ${result.depth}, ${result.seconds.toFixed(1)} s, ${rate} states/s; ` +
    `CPU ${cpuSeconds.toFixed(1)} s, ${cpuRate} states/CPU-s; server cascades remembered ${Math.round((100 * hits) / Math.max(1, hits + misses))}%, ` +
    `their servers an earlier equal object ${Math.round((100 * shared) / Math.max(1, made))}%; ${internedPieceCount()} texts interned; ` +
    `heap ${Math.round(process.memoryUsage().heapUsed / 1e6)} MB; ${outcome}`);
}

console.log(`explorer benchmark on ${process.arch}, node ${process.version}, one thread; symmetry over interchangeable servers ${symmetry ? 'on' : 'off'}`);
run('throughput (2 servers, 1 write, 1 crash, piecewise)', { ...referenceBound, servers: 2, writes: 1, reads: 0, crashes: 1 }, 5_000_000);
run(`reference bound (cap ${secondsMax} s)`, referenceBound, Math.max(1, Math.round(secondsMax * 20_000)));
