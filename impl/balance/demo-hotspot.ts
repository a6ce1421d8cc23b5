/**
 * `npm run demo:hotspot`: the hotspot workload with balancing on, then off,
 * printing load and moves live and a summary at the end. By default the
 * volume starts on s1 alone and each server has an emulated disk of 500
 * operations/s (see bench-balance.ts for why); BLOCKSHIFT_PLACEMENT and
 * BLOCKSHIFT_DISK_IOPS_MAX change that.
 */
import type { HotspotPlacement } from './hotspot-run.js';
import { hotspotPlacements, runHotspot, summary } from './hotspot-run.js';

const seed = Number(process.env.BLOCKSHIFT_SEED ?? Math.floor(Math.random() * 1_000_000));
const durationSeconds = Number(process.env.BLOCKSHIFT_DEMO_SECONDS ?? 40);
const placement = (process.env.BLOCKSHIFT_PLACEMENT ?? 'one-server') as HotspotPlacement;
if (!hotspotPlacements.includes(placement)) {
  process.stderr.write(`BLOCKSHIFT_PLACEMENT must be one of ${hotspotPlacements.join(', ')}, not ${placement}\n`);
  process.exit(2);
}
const diskOperationsPerSecondMax = Number(process.env.BLOCKSHIFT_DISK_IOPS_MAX ?? 500);
if (!(diskOperationsPerSecondMax >= 0)) {
  process.stderr.write(`BLOCKSHIFT_DISK_IOPS_MAX must be a number >= 0, not ${process.env.BLOCKSHIFT_DISK_IOPS_MAX}\n`);
  process.exit(2);
}
const print = (line: string) => process.stdout.write(`${line}\n`);
const where = placement === 'one-server' ? 'all on s1' : 'spread over s1, s2, s3';
print(`hotspot demo: 3 servers, volume "hot" of 48 pages of 128 KiB (${where}), fio zipf:1.2 through every server, seed ${seed} (replay: BLOCKSHIFT_SEED=${seed})`);
print(diskOperationsPerSecondMax > 0
  ? `each server has an emulated disk of ${diskOperationsPerSecondMax} operations/s (BLOCKSHIFT_DISK_IOPS_MAX; 0 = the host's own disk and CPU, shared by all three)`
  : 'no emulated disk: the three servers share this host\'s CPU and disk');
print('--- balancing on ---');
const on = await runHotspot({ balancing: true, durationSeconds, basePort: 21809, seed, pageCount: 48, placement, diskOperationsPerSecondMax, print });
print('--- balancing off ---');
const off = await runHotspot({ balancing: false, durationSeconds, basePort: 21809, seed, pageCount: 48, placement, diskOperationsPerSecondMax, print });
print('--- summary ---');
for (const line of [...summary(on), ...summary(off)]) print(line);
print(`throughput on/off: ${(off.iops > 0 ? on.iops / off.iops : 0).toFixed(2)}`);
