/**
 * One harness run, start to verdict:
 *
 * 1. Start three servers behind link proxies (jepsen-group.ts,
 *    link-proxy.ts) and create the `jepsen` volume: 6 pages of 1 MiB in 4
 *    pieces, round-robin over the servers, moves throttled so each stage
 *    lasts long enough to be hit by a fault.
 * 2. Run the workload and the nemesis together for `seconds`.
 * 3. Final phase: stop both, heal every link, resume every paused server,
 *    restart every server (cleanly), wait until no move is left, then read
 *    every block through every server.
 * 4. Check the history per block (linearizability, with the power-loss model
 *    when the run had power-loss crashes), classify every acknowledged
 *    write, and write `jepsen-output/<seed>/`: history.jsonl, summary.json,
 *    servers.log and, for any violating or unknown block, timeline.html.
 *
 * The seed decides every choice the harness makes: the nemesis and each
 * worker draw from streams of their own, derived from it, so the nemesis's
 * plan (what it does and when) repeats exactly, and each worker's sequence of
 * choices does too. The scheduling of processes and the network does not
 * repeat, so a seed reproduces the run's plan, not its exact interleaving.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { GroupConfig } from '../cli/group-config.js';
import type { Operation } from '../history/history-event.js';
import { operationsOf } from '../history/history-event.js';
import type { HistoryVerdict, Verdict } from '../history/linearizability-checker.js';
import { checkHistory } from '../history/linearizability-checker.js';
import type { LossReport } from '../history/loss-report.js';
import { lossReport } from '../history/loss-report.js';
import { RandomSource } from '../history/random-source.js';
import { HistoryRecorder } from './history-recorder.js';
import { JepsenGroup, sleep } from './jepsen-group.js';
import { LinkProxies } from './link-proxy.js';
import type { NemesisKind } from './nemesis.js';
import { Nemesis } from './nemesis.js';
import { timelineHtml } from './timeline.js';
import { finalReads, Workload } from './workload.js';
import { LineWaiters } from '../cli/line-waiters.js';

export interface JepsenOptions {
  readonly seed: number;
  readonly seconds: number;
  readonly nemesis: readonly NemesisKind[];
  readonly workerCount?: number;
  /** NBD on base+i, peers on base+1000+i, admin on base+2000+i, proxies on base+3000+i. */
  readonly basePort?: number;
  readonly outputDirectory?: string;
  readonly requestTimeoutMs?: number;
  readonly settleTimeoutMs?: number;
  readonly log?: (line: string) => void;
}

export interface JepsenResult {
  readonly seed: number;
  readonly verdict: Verdict;
  readonly operations: { total: number; ok: number; fail: number; info: number; reads: number; writes: number; flushes: number };
  readonly check: HistoryVerdict;
  readonly loss: LossReport;
  readonly nemesis: Record<string, number>;
  readonly movesCompletedDuringRun: number;
  readonly movesCompletedTotal: number;
  /** Every move finished and every final read succeeded. */
  readonly settled: boolean;
  readonly finalReadFailures: number;
  /** Servers that did not stop within the grace period of the final phase's clean restart and were SIGKILLed: an unrecorded crash, so the run cannot pass. */
  readonly stopsForced: readonly string[];
  /** When moves did not finish: each server's moves still running, and every server's record of those pages. */
  readonly unsettledMoves: readonly string[];
  readonly outputDirectory: string;
  readonly summary: string;
}

const volume = 'jepsen';
const pageCount = 6;
const pageSizeBlocks = 2048;
const piecesPerPage = 4;
const blocksPerPage = (pageSizeBlocks * 512) / 4096;

/** The streams of choices derived from the seed (RandomSource.derive): the nemesis's plan does not depend on how the workers were scheduled. */
const nemesisStream = 0;
const workloadStream = 1;

export async function runJepsen(options: JepsenOptions): Promise<JepsenResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const basePort = options.basePort ?? 40_809;
  const requestTimeoutMs = options.requestTimeoutMs ?? 3_000;
  const random = new RandomSource(options.seed);
  const powerLoss = options.nemesis.includes('power-loss');
  const outputDirectory = resolve(options.outputDirectory ?? 'jepsen-output', String(options.seed));
  mkdirSync(outputDirectory, { recursive: true });
  const dataDirectory = mkdtempSync(join(tmpdir(), 'blockshift-jepsen-'));
  log(`jepsen: seed ${options.seed}, ${options.seconds} s, nemesis ${options.nemesis.join(',') || 'none'}, data in ${dataDirectory}`);

  const serverIds = ['s1', 's2', 's3'];
  const config: GroupConfig = {
    groupName: 'blockshift-jepsen', forwardingPointer: false, traceTransitions: false, moveThrottleMBps: 2, moveProgressTimeoutMs: 1_500,
    servers: serverIds.map((id, index) => ({
      id,
      nbd: { host: '127.0.0.1', port: basePort + index },
      peer: { host: '127.0.0.1', port: basePort + 1000 + index },
      admin: { host: '127.0.0.1', port: basePort + 2000 + index },
      dataDirectory: join(dataDirectory, id),
      capacityWeight: 1,
    })),
  };
  const proxyAddresses = Object.fromEntries(serverIds.map((id, index) => [id, { host: '127.0.0.1', port: basePort + 3000 + index }]));
  const proxies = new LinkProxies(config.servers.map((server) => ({ to: server.id, listen: proxyAddresses[server.id]!, upstream: server.peer })));
  const waiters = new LineWaiters();
  let movesFinished = 0;
  const group = new JepsenGroup({
    config, proxyAddresses, directory: join(dataDirectory, 'config'), environment: powerLoss ? { BLOCKSHIFT_POWER_LOSS: '1' } : {},
    onLine: (line) => {
      if (/ checkpoint jepsen\/\d+ move finished/.test(line)) movesFinished += 1;
      waiters.offer(line);
    },
  });
  const waitForLine = (pattern: RegExp, timeoutMs: number) => waiters.waitFor(pattern, timeoutMs);

  const recorder = new HistoryRecorder();
  const blocks: number[] = [];
  for (let page = 0; page < pageCount; page += 1) {
    for (let piece = 0; piece < piecesPerPage; piece += 1) {
      const pieceBlocks = blocksPerPage / piecesPerPage;
      blocks.push(page * blocksPerPage + piece * pieceBlocks + ((page * 7 + piece * 13) % pieceBlocks));
    }
  }
  let movesCompletedDuringRun = 0;
  let settled = false;
  let finalReadFailures = 0;
  const stopsForced: string[] = [];
  let unsettledMoves: string[] = [];
  const nemesis = new Nemesis({ group, proxies, recorder, random: random.derive(nemesisStream), kinds: options.nemesis, volume, pageCount, waitForLine, log });
  try {
    await proxies.start();
    await Promise.all(serverIds.map((id) => group.start(id)));
    await group.admin('s1', '/volumes', { name: volume, pageCount, servers: serverIds, pageSizeBlocks, piecesPerPage });
    // Setup, not the property under test: generous, since CI runs this beside the explorer's tests on two cores
    // (10 s once ran out there, and nothing about the run said why).
    await until(async () => (await Promise.all(serverIds.map((id) => group.status(id)))).every((status) => status.volumes.some((entry) => entry.name === volume)), 30_000);

    const workload = new Workload({ group, recorder, random: random.derive(workloadStream), exportName: volume, blocks, workerCount: options.workerCount ?? 6, requestTimeoutMs });
    workload.start();
    nemesis.start();
    await sleep(options.seconds * 1_000);
    await nemesis.stop();
    await workload.stop();
    movesCompletedDuringRun = movesFinished;
    log(`jepsen: workload stopped after ${recorder.events.length} events; healing`);

    proxies.healAll();
    for (const id of serverIds) group.resume(id);
    for (const id of serverIds) {
      if (await group.stop(id) === 'killed') {
        stopsForced.push(id);
        log(`jepsen: ${id} did not stop within its grace period and was killed: an unrecorded crash`);
      }
      await group.start(id);
    }
    settled = await until(async () => (await Promise.all(serverIds.map((id) => group.status(id)))).every((status) => status.moves.length === 0), options.settleTimeoutMs ?? 90_000)
      .then(() => true, () => false);
    if (!settled) {
      unsettledMoves = await describeUnsettledMoves(group, serverIds);
      log(`jepsen: moves did not finish within the settle time-out:\n  ${unsettledMoves.join('\n  ')}`);
    }
    for (const [index, id] of serverIds.entries()) {
      finalReadFailures += await finalReads(group, recorder, id, 1_000 + index, volume, blocks, 10_000);
    }
    if (finalReadFailures > 0) settled = false;
  } finally {
    await nemesis.stop().catch(() => undefined);
    proxies.healAll();
    await group.stopAll().catch(() => undefined);
    await proxies.close();
  }

  const operations = operationsOf(recorder.events);
  const check = checkHistory(operations);
  const loss = lossReport(operations);
  const counted = countOperations(operations);
  const result = {
    seed: options.seed, verdict: check.verdict, operations: counted, check, loss, nemesis: { ...nemesis.counts },
    movesCompletedDuringRun, movesCompletedTotal: movesFinished, settled, finalReadFailures, stopsForced, unsettledMoves, outputDirectory,
  };
  const summary = summaryText(result, options);
  writeFileSync(join(outputDirectory, 'history.jsonl'), recorder.events.map((event) => JSON.stringify(event)).join('\n') + '\n');
  writeFileSync(join(outputDirectory, 'servers.log'), group.log.join('\n') + '\n');
  writeFileSync(join(outputDirectory, 'nemesis.json'), JSON.stringify(nemesis.events, null, 1));
  writeFileSync(join(outputDirectory, 'summary.json'), JSON.stringify({
    ...result, check: { verdict: check.verdict, invalidBlocks: check.invalidBlocks, unknownBlocks: check.unknownBlocks, blockCount: check.blocks.length },
    options: { ...options, log: undefined },
  }, null, 2));
  writeFileSync(join(outputDirectory, 'summary.txt'), summary + '\n');
  const flagged = [...check.invalidBlocks, ...check.unknownBlocks];
  if (flagged.length > 0) writeFileSync(join(outputDirectory, 'timeline.html'), timelineHtml(options.seed, flagged.slice(0, 5), operations, nemesis.events));
  if (check.verdict === 'valid' && loss.lost.length === 0) rmSync(dataDirectory, { recursive: true, force: true });
  else log(`jepsen: server data kept in ${dataDirectory}`);
  log(summary);
  return { ...result, summary };
}

function countOperations(operations: readonly Operation[]): JepsenResult['operations'] {
  const counts = { total: 0, ok: 0, fail: 0, info: 0, reads: 0, writes: 0, flushes: 0 };
  for (const operation of operations) {
    if (operation.f === 'crash') continue;
    counts.total += 1;
    counts[operation.outcome] += 1;
    if (operation.f === 'read') counts.reads += 1;
    else if (operation.f === 'write') counts.writes += 1;
    else counts.flushes += 1;
  }
  return counts;
}

function summaryText(result: Omit<JepsenResult, 'summary'>, options: JepsenOptions): string {
  const lines = [
    `== blockshift jepsen: seed ${result.seed} ==`,
    `replay:     npm run jepsen -- --seconds ${options.seconds} --nemesis ${options.nemesis.join(',') || 'none'} --seed ${result.seed}`,
    `operations: ${result.operations.total} (${result.operations.reads} reads, ${result.operations.writes} writes, ${result.operations.flushes} flushes): ${result.operations.ok} ok, ${result.operations.fail} fail, ${result.operations.info} info`,
    `nemesis:    ${Object.entries(result.nemesis).map(([kind, count]) => `${kind} ${count}`).join(', ')}`,
    `moves:      ${result.movesCompletedDuringRun} completed during the run, ${result.movesCompletedTotal} in all; settled ${result.settled}${result.finalReadFailures ? `, ${result.finalReadFailures} final reads failed` : ''}${result.stopsForced.length > 0 ? `; killed at the final stop: ${result.stopsForced.join(', ')}` : ''}`,
    `writes:     ${Object.entries(result.loss.counts).map(([fate, count]) => `${fate} ${count}`).join(', ')}`,
    `checker:    ${result.verdict} over ${result.check.blocks.length} blocks (${result.check.invalidBlocks.length} violating, ${result.check.unknownBlocks.length} unknown)`,
  ];
  for (const line of result.unsettledMoves) lines.push(`  unsettled: ${line}`);
  for (const block of [...result.check.invalidBlocks, ...result.check.unknownBlocks]) lines.push(`  block ${block.block}: ${block.verdict}: ${block.reason ?? ''}`);
  for (const loss of result.loss.lost.slice(0, 20)) lines.push(`  lost write ${loss.writeId} of block ${loss.block} (final value ${loss.finalValue})`);
  if (result.check.invalidBlocks.length + result.check.unknownBlocks.length > 0) lines.push(`timeline:   ${join(result.outputDirectory, 'timeline.html')}`);
  lines.push(`output:     ${result.outputDirectory}`);
  return lines.join('\n');
}

/**
 * What a run that did not settle was stuck on, for its summary (CI keeps no server logs): every move a server still
 * runs, with its state, stage and attempt, and what every server's route and copy record say about that page.
 */
async function describeUnsettledMoves(group: JepsenGroup, serverIds: readonly string[]): Promise<string[]> {
  const statuses = await Promise.all(serverIds.map((id) => group.status(id).catch(() => null)));
  const lines: string[] = [];
  for (const status of statuses) {
    for (const move of status?.moves ?? []) {
      const records = statuses.map((other, index) => other === null
        ? `${serverIds[index]} unreachable`
        : `${other.server} route ${other.routes[move.page]?.owner ?? '-'}@${other.routes[move.page]?.epoch ?? '-'} copy ${other.copies[move.page] ?? 'none'}`);
      lines.push(`${status!.server} moving ${move.page} to ${move.destination} (${move.kind}, ${move.state}, durable stage ${move.durableStage}, attempt ${move.attempt}, piece ${move.piece}/${move.pieceCount}); ${records.join('; ')}`);
    }
  }
  return lines.length > 0 ? lines : statuses.map((status, index) => `${serverIds[index]}: ${status === null ? 'unreachable' : 'no move'}`);
}

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`condition not reached within ${timeoutMs} ms`);
    await sleep(100);
  }
}
