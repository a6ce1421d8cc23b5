/**
 * `npm run bench:balance`: the hotspot run, balancing on and off, reduced to
 * the target figures: max/mean <= 1.10 within 30 s, throughput on/off, no
 * page moved twice within 60 s, no client-visible errors.
 */
import { runHotspot, summary } from './hotspot-run.js';

const seed = Number(process.env.BLOCKSHIFT_SEED ?? Math.floor(Math.random() * 1_000_000));
const durationSeconds = Number(process.env.BLOCKSHIFT_BENCH_SECONDS ?? 45);
const quiet = () => {};
process.stdout.write(`bench:balance seed ${seed} (replay: BLOCKSHIFT_SEED=${seed}), ${durationSeconds} s per run\n`);
const on = await runHotspot({ balancing: true, durationSeconds, basePort: 22809, seed, pageCount: 48, print: quiet });
const off = await runHotspot({ balancing: false, durationSeconds, basePort: 22809, seed, pageCount: 48, print: quiet });
for (const line of [...summary(on), ...summary(off)]) process.stdout.write(`${line}\n`);
const converged = on.secondsToConverge !== null && on.secondsToConverge <= 30;
const rows: Array<[string, string, boolean]> = [
  ['max/mean <= 1.10 within 30 s', on.secondsToConverge === null ? 'never converged' : `converged after ${on.secondsToConverge} s`, converged],
  ['throughput on/off', `${(off.iops > 0 ? on.iops / off.iops : 0).toFixed(2)} (${on.iops.toFixed(0)} / ${off.iops.toFixed(0)} IOPS)`, on.iops >= off.iops],
  ['no page moved twice within 60 s', `${on.pagesMovedTwiceWithin60s} pages`, on.pagesMovedTwiceWithin60s === 0],
  ['client-visible errors', `${on.clientErrors + off.clientErrors}`, on.clientErrors + off.clientErrors === 0],
];
for (const [target, measured, met] of rows) process.stdout.write(`${met ? 'MET   ' : 'MISSED'} ${target}: ${measured}\n`);
