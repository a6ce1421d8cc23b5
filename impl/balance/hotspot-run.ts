/**
 * One hotspot run: a fresh local group of 3 servers with the balancer on
 * (`BLOCKSHIFT_BALANCE=1`, automatic balancing on or off), a volume of small
 * pages, and fio on the nbd engine against every server at once with a
 * zipf(1.2) random distribution, so a few pages draw most requests. Every
 * second it records the group's load per server (from s1's ring view), the
 * max/mean ratio and the moves; at the end it reports throughput and errors.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonRequest } from '../cli/admin-client.js';
import { localGroupConfig } from '../cli/group-config.js';
import { LocalGroup } from '../cli/local-group.js';
import { runTool } from '../nbd/test-support.js';
import { balancePortOffset } from './balance-server.js';

export interface HotspotOptions {
  readonly balancing: boolean;
  readonly durationSeconds: number;
  readonly basePort: number;
  readonly seed: number;
  readonly pageCount: number;
  /** Where the volume's pages start: spread round-robin over all three servers, or all on s1 (a hot spot on one server). */
  readonly placement: HotspotPlacement;
  /** Gives each server an emulated disk of this many operations per second (impl/storage/emulated-disk.ts); 0 leaves the host's disk and CPU as the only limits. */
  readonly diskOperationsPerSecondMax: number;
  readonly print: (line: string) => void;
}

export type HotspotPlacement = 'spread' | 'one-server';
export const hotspotPlacements: readonly HotspotPlacement[] = ['spread', 'one-server'];

export interface HotspotResult {
  readonly balancing: boolean;
  /** Per second: max/mean of server load over expected share. */
  readonly ratios: readonly number[];
  readonly secondsToConverge: number | null;
  readonly iops: number;
  readonly clientErrors: number;
  readonly moves: readonly { atMs: number; text: string }[];
  readonly pagesMovedTwiceWithin60s: number;
}

interface LoadStatus {
  servers: Array<{ id: string; load: number; share: number; expectedShare: number }>;
  maxOverMean: number;
  groupLoad: number;
  events: Array<{ atMs: number; text: string }>;
}

export const convergedRatioMax = 1.1;

async function loadOf(group: LocalGroup, id: string): Promise<LoadStatus | null> {
  const { admin } = group.server(id);
  try {
    const answer = await jsonRequest({ host: admin.host, port: admin.port + balancePortOffset }, '/load', undefined, 2_000);
    return answer.status === 200 ? answer.body as LoadStatus : null;
  } catch {
    return null;
  }
}

export async function runHotspot(options: HotspotOptions): Promise<HotspotResult> {
  const directory = mkdtempSync(join(tmpdir(), 'blockshift-hotspot-'));
  const config = { ...localGroupConfig(join(directory, 'data'), 3, options.basePort), traceTransitions: false };
  const output = (id: string, line: string) => { if (/balance: move/.test(line)) options.print(`  [${id}] ${line.replace(/^\[\w+\] /, '')}`); };
  const group = new LocalGroup(config, directory, {
    output,
    environment: {
      BLOCKSHIFT_BALANCE: '1', BLOCKSHIFT_BALANCE_AUTO: options.balancing ? '1' : '0',
      BLOCKSHIFT_DISK_IOPS_MAX: String(options.diskOperationsPerSecondMax),
      BLOCKSHIFT_BALANCE_INTERVAL_MS: '1000', BLOCKSHIFT_BALANCE_HALF_LIFE_MS: '3000', BLOCKSHIFT_BALANCE_COOLDOWN_MS: '60000',
      // Any BLOCKSHIFT_BALANCE_* knob set for the run overrides these (impl/balance/balance-wiring.ts lists them).
      ...balanceKnobsFrom(process.env),
    },
  });
  const ratios: number[] = [];
  const moves = new Map<string, { atMs: number; text: string }>();
  try {
    await group.startAll();
    const volumeServers = options.placement === 'spread' ? ['s1', 's2', 's3'] : ['s1'];
    await group.admin('s1', '/volumes', { name: 'hot', pageCount: options.pageCount, servers: volumeServers, pageSizeBlocks: 256, piecesPerPage: 2 });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const fioRuns = config.servers.map((server, index) => runTool('fio', [
      '--name=hotspot', '--ioengine=nbd', `--uri=${group.nbdUri(server.id, 'hot')}`, '--rw=randrw', '--rwmixread=70', '--bs=4k',
      '--random_distribution=zipf:1.2', '--iodepth=8', '--time_based', `--runtime=${options.durationSeconds}`, `--randseed=${options.seed + index}`,
      '--output-format=json',
    ], (options.durationSeconds + 60) * 1000));
    const startMs = Date.now();
    while (Date.now() - startMs < options.durationSeconds * 1000) {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const status = await loadOf(group, 's1');
      if (!status) continue;
      for (const server of config.servers) {
        const view = server.id === 's1' ? status : await loadOf(group, server.id);
        for (const event of view?.events ?? []) if (/→.*\((overShare|swap)/.test(event.text)) moves.set(`${event.atMs} ${event.text}`, event);
      }
      ratios.push(status.maxOverMean);
      const second = Math.round((Date.now() - startMs) / 1000);
      options.print(`  t=${String(second).padStart(3)}s load ${status.servers.map((server) => `${server.id} ${server.load.toFixed(0).padStart(5)} (${(server.share * 100).toFixed(0)}%)`).join('  ')}  max/mean ${status.maxOverMean.toFixed(2)}`);
    }
    const results = await Promise.all(fioRuns);
    let iops = 0;
    let clientErrors = 0;
    for (const result of results) {
      try {
        const parsed = JSON.parse(result.stdout.slice(result.stdout.indexOf('{'))) as { jobs: Array<{ error: number; read: { iops: number }; write: { iops: number } }> };
        for (const job of parsed.jobs) {
          iops += job.read.iops + job.write.iops;
          if (job.error !== 0) clientErrors += 1;
        }
      } catch {
        clientErrors += 1;
        options.print(`  fio failed: ${result.stderr.slice(0, 300)}`);
      }
    }
    const sortedMoves = [...moves.values()].sort((a, b) => a.atMs - b.atMs);
    return {
      balancing: options.balancing, ratios, secondsToConverge: convergence(ratios), iops, clientErrors, moves: sortedMoves,
      pagesMovedTwiceWithin60s: movedTwice(sortedMoves, 60_000),
    };
  } finally {
    await group.stopAll();
    rmSync(directory, { recursive: true, force: true });
  }
}

function balanceKnobsFrom(environment: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(environment).filter((entry): entry is [string, string] => entry[0].startsWith('BLOCKSHIFT_BALANCE_') && entry[1] !== undefined));
}

/** The first second from which the ratio stays within the target to the end; null if it never settles. */
function convergence(ratios: readonly number[]): number | null {
  for (let second = 0; second < ratios.length; second += 1) {
    if (ratios.slice(second).every((ratio) => ratio <= convergedRatioMax)) return second + 1;
  }
  return null;
}

function movedTwice(moves: readonly { atMs: number; text: string }[], windowMs: number): number {
  const last = new Map<string, number>();
  let twice = 0;
  for (const move of moves) {
    const page = /move (\S+)/.exec(move.text)?.[1] ?? '';
    const previous = last.get(page);
    if (previous !== undefined && move.atMs - previous < windowMs) twice += 1;
    last.set(page, move.atMs);
  }
  return twice;
}

export function summary(result: HotspotResult): string[] {
  const mean = result.ratios.length ? result.ratios.reduce((sum, ratio) => sum + ratio, 0) / result.ratios.length : 0;
  const last = result.ratios.slice(-5);
  return [
    `balancing ${result.balancing ? 'on ' : 'off'}: max/mean first ${result.ratios[0]?.toFixed(2) ?? '-'}, average ${mean.toFixed(2)}, last 5 s ${last.map((ratio) => ratio.toFixed(2)).join(' ')}, ` +
      `converged (<= ${convergedRatioMax}) ${result.secondsToConverge === null ? 'never' : `after ${result.secondsToConverge} s`}, ` +
      `${result.iops.toFixed(0)} IOPS, ${result.moves.length} moves, ${result.pagesMovedTwiceWithin60s} pages moved twice within 60 s, ${result.clientErrors} client-visible errors`,
  ];
}
