/**
 * `npm run demo:hotspot`: the hotspot workload with balancing on, then off,
 * printing load and moves live and a summary at the end.
 */
import { runHotspot, summary } from './hotspot-run.js';

const seed = Number(process.env.BLOCKSHIFT_SEED ?? Math.floor(Math.random() * 1_000_000));
const durationSeconds = Number(process.env.BLOCKSHIFT_DEMO_SECONDS ?? 40);
const print = (line: string) => process.stdout.write(`${line}\n`);
print(`hotspot demo: 3 servers, volume "hot" of 48 pages of 128 KiB, fio zipf:1.2 through every server, seed ${seed} (replay: BLOCKSHIFT_SEED=${seed})`);
print('--- balancing on ---');
const on = await runHotspot({ balancing: true, durationSeconds, basePort: 21809, seed, pageCount: 48, print });
print('--- balancing off ---');
const off = await runHotspot({ balancing: false, durationSeconds, basePort: 21809, seed, pageCount: 48, print });
print('--- summary ---');
for (const line of [...summary(on), ...summary(off)]) print(line);
print(`throughput on/off: ${(off.iops > 0 ? on.iops / off.iops : 0).toFixed(2)}`);
