/**
 * `npm run bench:nbd`: the same fio jobs against a blockshift server that
 * owns the pages, against one that forwards every request to the owner, and
 * against `nbdkit memory` and `qemu-nbd` (raw file) started in the same run;
 * then the p99 of 4k random writes during a move against steady state, and
 * the unthrottled page copy rate. The p99 is taken twice, with moves one
 * at a time for the whole of the fio window: while pages move away and
 * straight back (the layout of the steady job is restored after each round
 * trip, so only the moves themselves weigh on the client), and while the
 * pages move away and stay away (from then on the client's requests for them
 * are forwarded, so this window also carries the cost of forwarding, about
 * twice an owner's p99 on its own; that line also compares it with a
 * forwarding server's steady p99). A benchmark: it prints figures and ratios
 * and never fails on them. `BENCH_QUICK=1` runs only 4k randwrite and
 * randread QD16 against the blockshift owner and forwarder (no peers, no
 * moves), for quick iteration on the request path, and adds each server's
 * CPU time per request (user + system, read from /proc around each fio job):
 * on a machine shared with other work, wall-clock IOPS swing with the load,
 * while CPU time per request is what the request path itself costs (its
 * kernel share, sys, apart). It also prints read and write system calls per
 * request (syscr, syscw of /proc/PID/io): how well replies and peer frames
 * are batched into writes; and the whole machine's CPU per request (fio,
 * the softirq work of loopback TCP that no process is charged for, and
 * whatever else runs on the host, so it only means something on a quiet one).
 * `BENCH_MOVES_ONLY=1` fills the volume and runs only the p99 during moves;
 * `BENCH_THROTTLE_MBPS=n` throttles every copy to n MiB/s, and
 * `BENCH_MOVE_KIND=unit` makes the moves under load unit moves.
 * `BENCH_COPY_ONLY=1` fills the volume and times only the idle unit moves
 * (`BENCH_ROUNDS` rounds of moving every page once), for quick iteration on
 * the copy path.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localGroupConfig } from '../cli/group-config.js';
import { LocalGroup } from '../cli/local-group.js';
import { runTool } from '../nbd/test-support.js';

interface Job { readonly name: string; readonly rw: string; readonly bs: string; readonly iodepth: number }
interface Result { readonly iops: number; readonly p99Us: number; readonly mibPerSecond: number; readonly requestCount: number }

const jobs: Job[] = [
  { name: '4k randwrite QD1', rw: 'randwrite', bs: '4k', iodepth: 1 },
  { name: '4k randwrite QD16', rw: 'randwrite', bs: '4k', iodepth: 16 },
  { name: '4k randread QD16', rw: 'randread', bs: '4k', iodepth: 16 },
  { name: '1M seq read', rw: 'read', bs: '1M', iodepth: 4 },
  { name: '1M seq write', rw: 'write', bs: '1M', iodepth: 4 },
];
const runtimeSeconds = Number(process.env['BENCH_SECONDS'] ?? 5);
const sizeMiB = 64;
/** BENCH_THROTTLE_MBPS: the group's copy throttle (0, the default: unthrottled). */
const throttleMBps = Number(process.env['BENCH_THROTTLE_MBPS'] ?? 0);
/** BENCH_MOVE_KIND: the kind of the moves under load (piecewise, the default, or unit). */
const moveKind = process.env['BENCH_MOVE_KIND'] === 'unit' ? 'unit' : 'piecewise';
const quick = process.env['BENCH_QUICK'] === '1';

/** The node's default bound on moves in flight per server (machines/node/node-config.ts). */
const concurrentMovesPerServer = 4;

async function fio(uri: string, job: Job, directory: string, seconds = runtimeSeconds): Promise<Result> {
  const result = await runTool('fio', [
    `--name=${job.rw}`, '--ioengine=nbd', `--uri=${uri}`, `--rw=${job.rw}`, `--bs=${job.bs}`, `--iodepth=${job.iodepth}`,
    `--size=${sizeMiB}M`, '--time_based', `--runtime=${seconds}`, '--output-format=json', '--randrepeat=0',
  ], (seconds + 60) * 1000, directory);
  if (result.exitCode !== 0) throw new Error(`fio ${job.name} on ${uri}: ${result.stderr}`);
  const report = JSON.parse(result.stdout.slice(result.stdout.indexOf('{'))) as { jobs: Array<Record<'read' | 'write', { iops: number; bw_bytes: number; total_ios: number; clat_ns: { percentile?: Record<string, number> } }>> };
  const side = job.rw.includes('write') ? report.jobs[0]!.write : report.jobs[0]!.read;
  return { iops: side.iops, p99Us: (side.clat_ns.percentile?.['99.000000'] ?? 0) / 1000, mibPerSecond: side.bw_bytes / 2 ** 20, requestCount: side.total_ios };
}

/** A process's CPU time so far (user + system), in µs, from /proc (Linux; clock ticks of 10 ms). */
function processCpuUs(pid: number | undefined): number {
  if (pid === undefined) throw new Error('server not running');
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // Fields 14 and 15 of stat (utime, stime) are at 11 and 12 after the command name.
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
}

/** A process's system (kernel) CPU time so far, in µs: how much of `processCpuUs` the kernel spent (sockets, pwrite). */
function processSystemCpuUs(pid: number | undefined): number {
  if (pid === undefined) throw new Error('server not running');
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[12]) * 1e6) / 100;
}

/**
 * The whole machine's CPU time so far, in µs, from the first line of
 * /proc/stat: user (nice included), system, and softirq apart. A loopback TCP
 * send does the receiver's protocol work in softirq context, which the
 * kernel charges to no process, so the servers' own figures leave it out;
 * fio's share is in here too. This is what the 2 cores actually spend.
 */
function machineCpuUs(): { user: number; system: number; softirq: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const tickUs = 1e6 / 100;
  return { user: (fields[0]! + fields[1]!) * tickUs, system: fields[2]! * tickUs, softirq: fields[6]! * tickUs };
}

/** A process's read and write system calls so far (syscr, syscw of /proc/PID/io: socket and file I/O alike). */
function processSyscalls(pid: number | undefined): { reads: number; writes: number } {
  if (pid === undefined) throw new Error('server not running');
  const fields = new Map(readFileSync(`/proc/${pid}/io`, 'utf8').trim().split('\n').map((line) => line.split(': ') as [string, string]));
  return { reads: Number(fields.get('syscr')), writes: Number(fields.get('syscw')) };
}

async function waitForPort(check: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('peer server did not come up');
}

/**
 * Waits until `source` holds no move of the page (the flip durable, its copy
 * released), asked of the server itself (`/moves/wait`): polling `/status`
 * every few milliseconds, as this bench used to, cost the servers a status
 * report per poll, CPU the copies and the client then lacked on this 2-core
 * host. Each call waits at most 4 s (inside the admin client's 5 s), so a
 * long move is waited for in several calls.
 */
async function moveFinished(group: LocalGroup, source: string, page: number): Promise<void> {
  for (;;) {
    try {
      await group.admin(source, '/moves/wait', { volume: 'local', page, waitMs: 4_000 });
      return;
    } catch (error) {
      if (!(error as Error).message.includes('still moves')) throw error;
    }
  }
}

/** Which server holds each page's valid copy, by page (pages no server holds valid are left out). */
async function pageOwners(group: LocalGroup): Promise<Map<number, string>> {
  const owners = new Map<number, string>();
  const statuses = await Promise.all(['s1', 's2', 's3'].map(async (id) => [id, await group.status(id)] as const));
  for (let page = 0; page < sizeMiB / 4; page += 1) {
    const owner = statuses.find(([, status]) => status.copies[`local/${page}`]?.startsWith('valid'))?.[0];
    if (owner) owners.set(page, owner);
  }
  return owners;
}

/** Moves a page and waits until its source has finished the move (commit and flip included). */
async function moveAndWait(group: LocalGroup, source: string, page: number, to: string, kind: 'unit' | 'piecewise'): Promise<void> {
  await group.admin(source, '/moves', { volume: 'local', page, to, kind });
  await moveFinished(group, source, page);
}

/**
 * The p99 of 4k random writes at QD16 through s1 while pages move, one move
 * at a time for the whole fio window, against steady state (see the top of
 * the file). `BENCH_THROTTLE_MBPS` sets the group's copy throttle.
 */
async function p99DuringMoves(group: LocalGroup, directory: string): Promise<void> {
  // p99 of 4k random writes while pages move, against steady state.
  const steady = await fio(group.nbdUri('s1', 'local'), jobs[1]!, directory);

  // Moves run one at a time for the whole of each fio window (until half a second before its end), cycling through
  // the pages as often as the window allows, so the p99 is that of a client whose pages keep moving; each line says
  // what share of the window had a move in flight.
  const pageCount = sizeMiB / 4;
  const windowMs = runtimeSeconds * 1000 - 500;

  // First, each page moves away and straight back: the layout the steady job saw is restored after every round trip,
  // so this window measures what a move costs the client (dual writes, the fence, the copy's disk and CPU) and not
  // the forwarding of pages that have already left, which the window below includes.
  const roundTrips = fio(group.nbdUri('s1', 'local'), jobs[1]!, directory);
  const roundTripsStarted = performance.now();
  let roundTripMoves = 0;
  for (let trip = 0; performance.now() - roundTripsStarted < windowMs; trip += 1) {
    const page = trip % pageCount;
    const away = trip % 2 === 0 ? 's2' : 's3';
    await moveAndWait(group, 's1', page, away, moveKind);
    await moveAndWait(group, away, page, 's1', moveKind);
    roundTripMoves += 2;
  }
  const roundTripSeconds = (performance.now() - roundTripsStarted) / 1000;
  const duringRoundTrips = await roundTrips;
  console.log(`\n4k randwrite QD16 p99: steady ${Math.round(steady.p99Us)} µs, during moves away and back ${Math.round(duringRoundTrips.p99Us)} µs, ratio ${(duringRoundTrips.p99Us / steady.p99Us).toFixed(2)} (IOPS ${Math.round(steady.iops)} steady, ${Math.round(duringRoundTrips.iops)} during; moves in flight ${percentOfWindow(roundTripSeconds)} of the window)`);
  console.log(`page copy under load, away and back: ${roundTripMoves} moves of 4 MiB in ${roundTripSeconds.toFixed(2)} s = ${((roundTripMoves * 4) / roundTripSeconds).toFixed(1)} MiB/s (one at a time, including commit and flip${throttleNote()})`);

  // Then every page moves away from s1 and stays away: once each has left, they keep moving between s2 and s3, so
  // the client's requests to s1 are forwarded (and routed again after each move) for the rest of the window.
  const forwardedSteady = await fio(group.nbdUri('s2', 'local'), jobs[1]!, directory);
  const moving = fio(group.nbdUri('s1', 'local'), jobs[1]!, directory);
  const movesStarted = performance.now();
  let movesAway = 0;
  const holders = new Map<number, string>();
  for (let move = 0; performance.now() - movesStarted < windowMs; move += 1) {
    const page = move % pageCount;
    const from = holders.get(page) ?? 's1';
    const to = from === 's1' ? (page % 2 === 0 ? 's2' : 's3') : from === 's2' ? 's3' : 's2';
    await moveAndWait(group, from, page, to, moveKind);
    holders.set(page, to);
    movesAway += 1;
  }
  const copySeconds = (performance.now() - movesStarted) / 1000;
  const during = await moving;
  console.log(`4k randwrite QD16 p99: steady ${Math.round(steady.p99Us)} µs, during moves away ${Math.round(during.p99Us)} µs, ratio ${(during.p99Us / steady.p99Us).toFixed(2)} (IOPS ${Math.round(during.iops)} during; moves in flight ${percentOfWindow(copySeconds)} of the window)`);
  console.log(`  moved pages are forwarded from then on: against a forwarding server's steady p99 (${Math.round(forwardedSteady.p99Us)} µs, the layout this window ends in) the ratio is ${(during.p99Us / forwardedSteady.p99Us).toFixed(2)}`);
  console.log(`page copy under load: ${movesAway} moves of 4 MiB in ${copySeconds.toFixed(2)} s = ${((movesAway * 4) / copySeconds).toFixed(1)} MiB/s (one at a time, including commit and flip${throttleNote()})`);
}

/** Says so when the copies were throttled (BENCH_THROTTLE_MBPS). */
function throttleNote(): string {
  return throttleMBps > 0 ? `, throttled to ${throttleMBps} MiB/s` : '';
}

/**
 * The share of a fio window that `seconds` of moves covered, roughly: the moves start as fio starts, before its
 * connection is up, and the last one may end after fio's window.
 */
function percentOfWindow(seconds: number): string {
  return `${Math.min(100, Math.round((seconds / runtimeSeconds) * 100))}%`;
}

/**
 * Copy rate with no client load (unthrottled unless BENCH_THROTTLE_MBPS says otherwise): every page moves once more,
 * one unit move at a time, and the line is printed. The owners are looked up before the clock starts (three /status
 * requests per page used to run inside the timed loop, some 10-15 ms per page on this host, more than a third of a
 * move's own time), so the figure is the moves' own: the admin request, the copy, the commit and the flip.
 */
async function idleCopyRate(group: LocalGroup): Promise<void> {
  const owners = await pageOwners(group);
  const startedMs = performance.now();
  for (const [page, source] of owners) await moveAndWait(group, source, page, source === 's3' ? 's1' : 's3', 'unit');
  const seconds = (performance.now() - startedMs) / 1000;
  console.log(`page copy, idle: ${owners.size} pages of 4 MiB in ${seconds.toFixed(2)} s = ${((owners.size * 4) / seconds).toFixed(1)} MiB/s (unit moves one at a time${throttleNote()})`);
}

async function main(): Promise<void> {
  const directory = mkdtempSync(join(tmpdir(), 'blockshift-bench-'));
  const peers: ChildProcess[] = [];
  // Every port of the group (base, +1000 peers, +2000 admin, +2100 balance) lies below 32768, outside Linux's range
  // for outgoing connections: at 40809 and 30809 an outgoing connection now and then held an admin port and a server
  // exited while starting (see impl/cluster-tests/cluster-fixture.ts for the tests' port plan).
  const group = new LocalGroup({ ...localGroupConfig(join(directory, 'data'), 3, 30_409), traceTransitions: false, moveThrottleMBps: throttleMBps }, directory, { output: (id: string, line: string) => { if (process.env.BENCH_SERVER_LOG) console.error(id, line); } });
  try {
    await group.startAll();
    await group.admin('s1', '/volumes', { name: 'local', pageCount: sizeMiB / 4, servers: ['s1'], piecesPerPage: 4 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    if (process.env['BENCH_COPY_ONLY'] === '1') {
      // Only the idle copy rate, on pages fio has filled (as in the full run), for quick iteration on the copy path.
      await fio(group.nbdUri('s1', 'local'), jobs[4]!, directory, 2);
      for (let round = 0; round < Number(process.env['BENCH_ROUNDS'] ?? 2); round += 1) await idleCopyRate(group);
      return;
    }
    if (process.env['BENCH_MOVES_ONLY'] === '1') {
      // Only the p99 during moves, on pages fio has filled, for quick iteration on what a move costs a client.
      await fio(group.nbdUri('s1', 'local'), jobs[4]!, directory, 2);
      await p99DuringMoves(group, directory);
      return;
    }
    if (quick) {
      // BENCH_QUICK_ONLY=owner (or forwarded, randwrite, randread) narrows the run, e.g. to profile one path.
      const only = process.env['BENCH_QUICK_ONLY'] ?? '';
      const quickTargets = ([['owner', group.nbdUri('s1', 'local')], ['forwarded', group.nbdUri('s2', 'local')]] as Array<[string, string]>)
        .filter(([name]) => !['owner', 'forwarded'].includes(only) || name === only);
      for (const [, uri] of quickTargets) await fio(uri, jobs[4]!, directory, 2);
      const servers = ['s1', 's2'];
      for (const job of [jobs[1]!, jobs[2]!].filter((candidate) => !['randwrite', 'randread'].includes(only) || candidate.rw === only)) {
        const results: Result[] = [];
        const cpuPerRequest: string[] = [];
        for (const [name, uri] of quickTargets) {
          const before = servers.map((id) => processCpuUs(group.pid(id)));
          const systemBefore = servers.map((id) => processSystemCpuUs(group.pid(id)));
          const callsBefore = servers.map((id) => processSyscalls(group.pid(id)));
          const machineBefore = machineCpuUs();
          const result = await fio(uri, job, directory);
          results.push(result);
          const spent = servers.map((id, index) => processCpuUs(group.pid(id)) - before[index]!);
          const systemSpent = servers.map((id, index) => processSystemCpuUs(group.pid(id)) - systemBefore[index]!);
          const machineAfter = machineCpuUs();
          const perRequest = (before: number, after: number): string => ((after - before) / result.requestCount).toFixed(1);
          const machine = `machine ${perRequest(machineBefore.user, machineAfter.user)} user + ${perRequest(machineBefore.system, machineAfter.system)} sys + ${perRequest(machineBefore.softirq, machineAfter.softirq)} softirq`;
          const calls = servers.map((id, index) => {
            const after = processSyscalls(group.pid(id));
            return `${((after.reads - callsBefore[index]!.reads) / result.requestCount).toFixed(2)}r/${((after.writes - callsBefore[index]!.writes) / result.requestCount).toFixed(2)}w`;
          });
          cpuPerRequest.push(`${name}: ${servers.map((id, index) => `${id} ${(spent[index]! / result.requestCount).toFixed(1)} (sys ${(systemSpent[index]! / result.requestCount).toFixed(1)})`).join(' + ')} CPU µs, ${servers.map((id, index) => `${id} ${calls[index]}`).join(' + ')} syscalls per request; ${machine} CPU µs per request`);
        }
        const ratio = results.length === 2 ? `  fwd/owner ${(results[1]!.iops / results[0]!.iops).toFixed(2)}` : '';
        console.log(`${job.name.padEnd(20)} ${quickTargets.map(([name], index) => `${name} ${Math.round(results[index]!.iops)} (p99 ${Math.round(results[index]!.p99Us)} µs)`).join('  ')}${ratio}`);
        console.log(`${''.padEnd(20)} ${cpuPerRequest.join('; ')}`);
      }
      return;
    }
    const rawFile = join(directory, 'qemu.raw');
    writeFileSync(rawFile, Buffer.alloc(0));
    await runTool('truncate', ['-s', `${sizeMiB}M`, rawFile]);
    peers.push(spawn('nbdkit', ['-f', '-p', '30900', '--exit-with-parent', 'memory', `${sizeMiB}M`], { stdio: 'ignore' }));
    peers.push(spawn('qemu-nbd', ['-f', 'raw', '-p', '30901', '-x', 'bench', '--persistent', '--shared=16', '--cache=writeback', rawFile], { stdio: 'ignore' }));
    for (const uri of ['nbd://127.0.0.1:30900/', 'nbd://127.0.0.1:30901/bench']) await waitForPort(async () => (await runTool('nbdinfo', [uri])).exitCode === 0);

    const targets: Array<[string, string]> = [
      ['blockshift, page owner', group.nbdUri('s1', 'local')],
      ['blockshift, forwarding', group.nbdUri('s2', 'local')],
      ['nbdkit memory', 'nbd://127.0.0.1:30900/'],
      ['qemu-nbd raw file', 'nbd://127.0.0.1:30901/bench'],
    ];
    console.log(`fio ${runtimeSeconds} s per job over ${sizeMiB} MiB, nbd engine; IOPS (p99 µs)`);
    console.log(['job'.padEnd(20), ...targets.map(([name]) => name.padEnd(26)), 'owner/qemu', 'fwd/owner'].join(' '));
    // Fill the volumes first so reads read data.
    for (const [, uri] of targets) await fio(uri, jobs[4]!, directory, 2);
    for (const job of jobs) {
      const results: Result[] = [];
      for (const [, uri] of targets) results.push(await fio(uri, job, directory));
      const [owner, forwarded, , qemu] = results;
      console.log([job.name.padEnd(20), ...results.map((result) => `${Math.round(result.iops)} (${Math.round(result.p99Us)})`.padEnd(26)),
        (owner!.iops / qemu!.iops).toFixed(2).padEnd(10), (forwarded!.iops / owner!.iops).toFixed(2)].join(' '));
    }

    await p99DuringMoves(group, directory);
    await idleCopyRate(group);

    // The group's copy rate when several moves run at once (as a drain or the balancer runs them): every page moves,
    // each owner keeping up to its node's bound of moves in flight, and the clock stops when the last one completes.
    const owners = await pageOwners(group);
    const concurrentStarted = performance.now();
    let concurrentMoved = 0;
    // Per owner, `concurrentMovesPerServer` chains of moves, each starting its next page once its last move finished.
    await Promise.all(['s1', 's2', 's3'].map(async (source) => {
      const queue = [...owners].filter(([, owner]) => owner === source).map(([page]) => page);
      await Promise.all(Array.from({ length: concurrentMovesPerServer }, async () => {
        for (let page = queue.shift(); page !== undefined; page = queue.shift()) {
          await moveAndWait(group, source, page, source === 's3' ? 's1' : 's3', 'unit');
          concurrentMoved += 1;
        }
      }));
    }));
    const concurrentSeconds = (performance.now() - concurrentStarted) / 1000;
    console.log(`page copy, idle, up to ${concurrentMovesPerServer} moves per server at once: ${concurrentMoved} pages of 4 MiB in ${concurrentSeconds.toFixed(2)} s = ${((concurrentMoved * 4) / concurrentSeconds).toFixed(1)} MiB/s${throttleNote()}`);
  } finally {
    await group.stopAll();
    for (const peer of peers) peer.kill('SIGTERM');
    rmSync(directory, { recursive: true, force: true });
  }
}

await main();
