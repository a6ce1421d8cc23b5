/**
 * `npm run bench:balance`: the hotspot run, balancing on and off, reduced to
 * the issue's target figures — max/mean <= 1.10 within 30 s, throughput on/off
 * >= 1.5, no page moved twice within 60 s, no client-visible errors — for each
 * starting placement: every page on s1 (the hot spot is one server) and pages
 * spread round-robin (the hot pages of a zipf workload land on every server).
 * `BLOCKSHIFT_PLACEMENT=spread|one-server` runs only one of them.
 *
 * Each server gets an emulated disk of `BLOCKSHIFT_DISK_IOPS_MAX` operations
 * per second (default 500): on one host the three servers otherwise share one
 * CPU and one disk, and moving load between them cannot raise throughput.
 * `BLOCKSHIFT_DISK_IOPS_MAX=0` measures the host as it is.
 */
import type { HotspotPlacement } from './hotspot-run.js';
import { hotspotPlacements, runHotspot, summary } from './hotspot-run.js';

const seed = Number(process.env.BLOCKSHIFT_SEED ?? Math.floor(Math.random() * 1_000_000));
const durationSeconds = Number(process.env.BLOCKSHIFT_BENCH_SECONDS ?? 45);
const placementText = process.env.BLOCKSHIFT_PLACEMENT;
if (placementText !== undefined && !hotspotPlacements.includes(placementText as HotspotPlacement)) {
  process.stderr.write(`BLOCKSHIFT_PLACEMENT must be one of ${hotspotPlacements.join(', ')}, not ${placementText}\n`);
  process.exit(2);
}
const placements = placementText === undefined ? hotspotPlacements : [placementText as HotspotPlacement];
const diskOperationsPerSecondMax = Number(process.env.BLOCKSHIFT_DISK_IOPS_MAX ?? 500);
if (!(diskOperationsPerSecondMax >= 0)) {
  process.stderr.write(`BLOCKSHIFT_DISK_IOPS_MAX must be a number >= 0, not ${process.env.BLOCKSHIFT_DISK_IOPS_MAX}\n`);
  process.exit(2);
}
const convergeSecondsMax = 30;
const throughputGainMin = 1.5;
const quiet = () => {};
process.stdout.write(`bench:balance seed ${seed} (replay: BLOCKSHIFT_SEED=${seed}), ${durationSeconds} s per run, placements ${placements.join(', ')}, ` +
  `${diskOperationsPerSecondMax > 0 ? `an emulated disk of ${diskOperationsPerSecondMax} operations/s per server` : 'no emulated disk (servers share the host)'}\n`);
for (const placement of placements) {
  const on = await runHotspot({ balancing: true, durationSeconds, basePort: 22809, seed, pageCount: 48, placement, diskOperationsPerSecondMax, print: quiet });
  const off = await runHotspot({ balancing: false, durationSeconds, basePort: 22809, seed, pageCount: 48, placement, diskOperationsPerSecondMax, print: quiet });
  process.stdout.write(`--- placement ${placement} ---\n`);
  for (const line of [...summary(on), ...summary(off)]) process.stdout.write(`${line}\n`);
  const gain = off.iops > 0 ? on.iops / off.iops : 0;
  const rows: Array<[string, string, boolean]> = [
    [`max/mean <= 1.10 within ${convergeSecondsMax} s`, on.secondsToConverge === null ? 'never converged' : `converged after ${on.secondsToConverge} s`, on.secondsToConverge !== null && on.secondsToConverge <= convergeSecondsMax],
    [`throughput on/off >= ${throughputGainMin}`, `${gain.toFixed(2)} (${on.iops.toFixed(0)} / ${off.iops.toFixed(0)} IOPS)`, gain >= throughputGainMin],
    ['no page moved twice within 60 s', `${on.pagesMovedTwiceWithin60s} pages`, on.pagesMovedTwiceWithin60s === 0],
    ['client-visible errors', `${on.clientErrors + off.clientErrors}`, on.clientErrors + off.clientErrors === 0],
  ];
  for (const [target, measured, met] of rows) process.stdout.write(`${met ? 'MET   ' : 'MISSED'} ${target}: ${measured}\n`);
}
