/**
 * `npm run bench:explorer`: the explorer's throughput and the time to exhaust
 * the reference bound (3 servers, 1 page of 2 pieces, 2 writes, 1 read,
 * 1 move, 1 crash, unordered network). A benchmark, not a test: it prints
 * figures and never fails on them. `--seconds N` caps the reference run
 * (default 300); a capped run reports how far it got.
 */
import { parseArgs } from 'node:util';
import { referenceBound } from '../world/world-config.js';
import type { WorldConfig } from '../world/world-config.js';
import { explore } from './explore.js';

const { values } = parseArgs({ options: { seconds: { type: 'string' } } });
const secondsMax = Number(values.seconds ?? 300);

function run(name: string, config: WorldConfig, statesMax: number): void {
  const result = explore(config, { statesMax, depthMax: 1_000, livenessSamples: 0, livenessEvery: 1, livenessStepsMax: 0, secondsMax });
  const capped = result.seconds >= secondsMax;
  const rate = Math.round(result.states / result.seconds);
  const outcome = result.violation ? `VIOLATION ${result.violation.property}` : result.complete ? 'exhausted' : capped ? 'NOT exhausted (time cap)' : 'NOT exhausted (state cap)';
  console.log(`${name}: ${result.states} states, ${result.transitions} transitions, depth ${result.depth}, ${result.seconds.toFixed(1)} s, ${rate} states/s, ${outcome}`);
}

console.log(`explorer benchmark on ${process.arch}, node ${process.version}, one thread`);
run('throughput (2 servers, 1 write, 1 crash, piecewise)', { ...referenceBound, servers: 2, writes: 1, reads: 0, crashes: 1 }, 5_000_000);
run(`reference bound (cap ${secondsMax} s)`, referenceBound, Math.max(1, Math.round(secondsMax * 20_000)));
