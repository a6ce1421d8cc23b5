/**
 * The `blockshift` command line.
 *
 *   blockshift up [--servers N] [--data DIR] [--base-port P] [--throttle-mbps R] [--under-load-mbps R] [--no-demo]
 *   blockshift status
 *   blockshift volume create --name V --pages N --servers s1,s2 [--pieces K] [--page-size-blocks B]
 *   blockshift move --volume V --page P --to S [--kind piecewise|unit] [--pieces N]
 *   blockshift move abandon --volume V --page P
 *   blockshift server add --id S [--weight W]
 *   blockshift server start --id S
 *   blockshift server drain --id S
 *   blockshift server forget --id S[,T...] [--declare-lost]
 *   blockshift stop
 *
 * `up` runs a local group (one process per server) in the foreground until
 * Ctrl-C; the other commands talk to its servers' admin endpoints, found from
 * the same embedded defaults (or `--data DIR/group.json`).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ServerStatus } from '../runtime/status-report.js';
import { adminRequest } from './admin-client.js';
import type { GroupConfig, ServerConfig } from './group-config.js';
import { capacityWeightProblem } from '../../machines/membership/membership.js';
import { groupConfigProblem, localGroupConfig, moveRateUnderLoadMBpsOf, readGroupConfig } from './group-config.js';
import { LocalGroup } from './local-group.js';
import { changeGroupConfig, drainServer, forgetServer, joinServer, nextServerConfig } from './membership-admin.js';
import { serverNodeFlags } from './server-node-flags.js';
import { repositoryRoot, resolvedDataDirectory } from './server-process.js';

class UsageError extends Error {}

/** The split granularity of the demo volumes: a move's --pieces must divide it. */
export const demoPiecesPerPage = 8;

/** The options every command that finds a group takes. */
const groupFlags = ['data', 'base-port'] as const;

/**
 * The command's options, each one it knows (`known`): an unknown one is
 * refused, not ignored (a review's `--pices 2` ran a default move).
 */
function flags(args: readonly string[], known: readonly string[]): Map<string, string> {
  const parsed = new Map<string, string>();
  for (let index = 0; index < args.length; index += 1) {
    const arg = args[index]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument ${arg}`);
    if (!known.includes(arg.slice(2)) && !(groupFlags as readonly string[]).includes(arg.slice(2))) {
      throw new UsageError(`unknown option ${arg}${known.length > 0 ? ` (this command takes --${[...known, ...groupFlags].join(', --')})` : ''}`);
    }
    const next = args[index + 1];
    if (next === undefined || next.startsWith('--')) parsed.set(arg.slice(2), 'true');
    else {
      parsed.set(arg.slice(2), next);
      index += 1;
    }
  }
  return parsed;
}

function integerFlag(options: Map<string, string>, name: string, fallback: number | null): number {
  const text = options.get(name);
  if (text === undefined) {
    if (fallback === null) throw new UsageError(`--${name} is required`);
    return fallback;
  }
  // Digits only: Number() reads "" as 0 and "1e1" as 10 (a review's `--page ""` moved page 0), and a flag given with
  // no value arrives as "true".
  const value = /^[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value)) throw new UsageError(`--${name} must be a non-negative integer${text === 'true' ? ', and was given no value' : `, not ${JSON.stringify(text)}`}`);
  return value;
}

function requiredFlag(options: Map<string, string>, name: string): string {
  const value = options.get(name);
  if (value === undefined || value === 'true') throw new UsageError(`--${name} is required`);
  return value;
}

/**
 * The group a command talks to: the saved `group.json`, else the embedded
 * defaults. Only `up` reads `--servers` as a count (a new group of N); for
 * `volume create` it is the volume's list of servers, and reading it as a
 * count made the documented command fail (a review found it).
 */
function groupOf(options: Map<string, string>, serversFlagIsCount = false): GroupConfig {
  const dataDirectory = options.get('data') ?? 'data';
  const saved = join(dataDirectory, 'group.json');
  if (existsSync(saved) && !(serversFlagIsCount && options.has('servers'))) {
    const group = readGroupConfig(saved);
    // `--base-port` names a group by its ports; a saved group at other ports is another group (a review's `stop
    // --base-port 5050`, run where ./data/group.json held the group at 5000, stopped that one instead).
    const basePort = options.has('base-port') ? integerFlag(options, 'base-port', 10809) : null;
    // A local group's NBD ports run up from its base port (localGroupConfig), whichever servers have joined or left since.
    if (basePort !== null && !group.servers.some((server) => server.nbd.port >= basePort && server.nbd.port < basePort + 1000)) {
      throw new UsageError(`--base-port ${basePort} names another group than the one saved in ${saved} (NBD ports ${group.servers.map((server) => server.nbd.port).join(', ')}): pass --data DIR with that group's data directory`);
    }
    return group;
  }
  const config = localGroupConfig(dataDirectory, serversFlagIsCount ? integerFlag(options, 'servers', 3) : 3, integerFlag(options, 'base-port', 10809));
  return {
    ...config,
    moveThrottleMBps: integerFlag(options, 'throttle-mbps', 0),
    moveRateUnderLoadMBps: integerFlag(options, 'under-load-mbps', moveRateUnderLoadMBpsOf(config)),
  };
}

/** A CLI call waits this long for an answer (volume creation and shutdown answer once their commits are durable). */
const cliRequestTimeoutMs = 30_000;

function admin<T>(server: ServerConfig, path: string, body?: unknown): Promise<T> {
  return adminRequest<T>(server.id, server.admin, path, body, cliRequestTimeoutMs);
}

async function statuses(group: GroupConfig): Promise<Array<ServerStatus | { server: string; down: string }>> {
  return Promise.all(group.servers.map((server) => admin<ServerStatus>(server, '/status').catch((error: unknown) => ({ server: server.id, down: (error as Error).message }))));
}

/** The flags that name this group (`--data`, `--base-port`) as given, for the commands a message suggests. */
function whereFlags(options: Map<string, string>): string {
  return ['data', 'base-port'].filter((name) => options.has(name)).map((name) => ` --${name} ${options.get(name)}`).join('');
}

async function up(options: Map<string, string>): Promise<void> {
  let group = groupOf(options, true);
  // On a group that exists, the rate flags change its saved settings (they were ignored in silence: a review found it).
  const saved = join(options.get('data') ?? 'data', 'group.json');
  if (existsSync(saved) && (options.has('throttle-mbps') || options.has('under-load-mbps'))) {
    group = await changeGroupConfig(saved, (current) => ({
      ...current,
      ...(options.has('throttle-mbps') ? { moveThrottleMBps: integerFlag(options, 'throttle-mbps', 0) } : {}),
      ...(options.has('under-load-mbps') ? { moveRateUnderLoadMBps: integerFlag(options, 'under-load-mbps', 0) } : {}),
    }));
    console.log(`saved in ${saved}: copy throttle ${group.moveThrottleMBps} MB/s, rate under load ${moveRateUnderLoadMBpsOf(group)} MB/s`);
  }
  const problem = groupConfigProblem(group);
  if (problem) throw new UsageError(problem);
  const localGroup = new LocalGroup(group, options.get('data') ?? 'data', { output: 'inherit' });
  let stopping = false;
  const stopAll = () => {
    if (stopping) return;
    stopping = true;
    console.log('stopping the group');
    // Servers added since with `server add` run detached, outside this process group: Ctrl-C never reaches them, so
    // they are asked to stop too (a review found one still running, holding its data directory, after Ctrl-C).
    const added = existsSync(saved) ? readGroupConfig(saved).servers.filter((server) => localGroup.pid(server.id) === undefined) : [];
    void Promise.all([
      localGroup.stopAll(),
      ...added.map((server) => admin(server, '/shutdown', {}).then(() => console.log(`${server.id} (added with server add) stopped`), () => undefined)),
    ]);
  };
  process.on('SIGINT', stopAll);
  process.on('SIGTERM', stopAll);
  // A server of the group that runs already (started by an earlier `up` or by `server start`) is left running and
  // counted in; only the others start here. Starting them all made the running ones fail on their ports, and `up`
  // failed while still holding the server it had started (a review found it).
  const running = await runningServers(group);
  for (const id of running) console.log(`${id} is running already`);
  await Promise.all(group.servers.filter((server) => !running.includes(server.id)).map((server) => localGroup.start(server.id)));
  const first = group.servers[0]!;
  if (!options.has('no-demo')) {
    const known = await localGroup.status(first.id);
    const ids = group.servers.map((server) => server.id);
    // FIG. 9: one volume over every server, one over two of them. 8 granules of 512 KiB per 4 MiB page let
    // `move --pieces N` pick N from 1, 2, 4, 8. Finer granules would widen the range but split every large request
    // into more parts (a 1 MiB I/O is 2 parts here) and make the default move (N = granules) pay two durable
    // checkpoints per piece: bench:copy measured 16-piece moves at about half the rate of 4-piece ones.
    const demo = [
      { name: 'alpha', pageCount: 6, servers: ids, piecesPerPage: demoPiecesPerPage },
      { name: 'beta', pageCount: 4, servers: ids.slice(0, Math.min(2, ids.length)), piecesPerPage: demoPiecesPerPage },
    ];
    for (const volume of demo) {
      if (known.volumes.some((existing) => existing.name === volume.name)) continue;
      const result = await localGroup.admin<{ message: string }>(first.id, '/volumes', volume);
      console.log(result.message);
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  console.log('\nblockshift group is up. NBD exports on every server:');
  for (const server of group.servers) console.log(`  ${server.id}: nbd://${server.nbd.host}:${server.nbd.port}/<volume>   (admin http://${server.admin.host}:${server.admin.port}/status)`);
  // The hints name this group (its --data when not the default) and a volume and servers it has (a review found a
  // fixed `--to s2` after s2 had left, and `alpha` under --no-demo).
  const where = whereFlags(options);
  const volumes = (await localGroup.status(first.id)).volumes;
  const example = volumes.find((volume) => volume.name === 'alpha') ?? volumes[0];
  const target = group.servers.find((server) => server.id !== first.id);
  console.log(`\nattach:  nbdinfo --list nbd://${first.nbd.host}:${first.nbd.port}${example ? `   |   qemu-img info nbd://${first.nbd.host}:${first.nbd.port}/${example.name}` : '   (no volume yet: npx blockshift volume create --name V --pages N --servers ...)'}`);
  console.log(`${example && target ? `move:    npx blockshift move${where} --volume ${example.name} --page 0 --to ${target.id}   |   ` : ''}status: npx blockshift status${where}   |   ${running.length === group.servers.length ? `stop: npx blockshift stop${where}` : 'Ctrl-C stops'}\n`);
  // With every server running already there is nothing of this command's own to wait for.
  if (running.length < group.servers.length) await localGroup.waitForExit();
}

/**
 * Whether `server` runs already: its admin address answers as that server,
 * from its data directory (an id alone would take another group's s1 on
 * these ports for ours). False when nothing answers; throws, naming what
 * answers, when something else does.
 */
async function runsAlready(server: ServerConfig): Promise<boolean> {
  const status = await admin<ServerStatus>(server, '/status').catch(() => null);
  if (status === null) return false;
  const directory = resolvedDataDirectory(server.dataDirectory);
  if (status.server === server.id && status.dataDirectory === directory) return true;
  throw new Error(`${server.admin.host}:${server.admin.port}, ${server.id}'s admin address, is answered by ${status.server ?? 'something'}${status.dataDirectory ? ` of ${status.dataDirectory}` : ''}, not by ${server.id} of ${directory}: another group (or program) uses these ports`);
}

/** The servers of the group that run already (see `runsAlready`). */
async function runningServers(group: GroupConfig): Promise<string[]> {
  const running = await Promise.all(group.servers.map((server) => runsAlready(server)));
  return group.servers.filter((_, index) => running[index]).map((server) => server.id);
}

async function status(options: Map<string, string>): Promise<void> {
  const group = groupOf(options);
  const all = await statuses(group);
  for (const entry of all) {
    if ('down' in entry) { console.log(`${entry.server}: DOWN (${entry.down})`); continue; }
    const drain = entry.drain ? `, draining: ${entry.drain.pagesHeld} pages held, ${entry.drain.movesRunning} moves running${entry.drain.leaveWaitingFor?.length ? `, leave waits for ${entry.drain.leaveWaitingFor.join(', ')}` : ''}` : '';
    console.log(`${entry.server}: ${entry.requestsInFlight} requests in flight${drain}`);
  }
  const live = all.filter((entry): entry is ServerStatus => !('down' in entry));
  // Nothing answered: say so and fail, so that a script (or `status && …`) can tell a stopped group from a running one.
  if (live.length === 0) throw new Error(`no server of the group answered: it is not running (start it with npx blockshift up${whereFlags(options)})`);
  const newest = live.reduce<ServerStatus | null>((best, entry) => (!best || entry.membership.epoch > best.membership.epoch ? entry : best), null);
  if (newest) {
    const behind = live.filter((entry) => entry.membership.epoch < newest.membership.epoch).map((entry) => entry.server);
    console.log(`members (epoch ${newest.membership.epoch}${behind.length > 0 ? `; not yet learnt by ${behind.join(', ')}` : ''}):`);
    for (const member of newest.membership.members) {
      const owned = Object.values(newest.routes).filter((route) => route.owner === member.id).length;
      console.log(`  ${member.id}: weight ${member.capacityWeight}${member.draining ? ', DRAINING' : ''}, ${owned} pages, peer ${member.peer ? `${member.peer.host}:${member.peer.port}` : '?'}`);
    }
  }
  const volumes = new Map(live.flatMap((entry) => entry.volumes.map((volume) => [volume.name, volume] as const)));
  for (const volume of volumes.values()) {
    const sizeMiB = (volume.pageCount * volume.pageSizeBlocks * volume.blockSizeBytes) / 2 ** 20;
    // The servers its pages were first spread over: the layout at creation, which moves, drains and forgets do not change.
    console.log(`volume ${volume.name}: ${sizeMiB} MiB, ${volume.pageCount} pages of ${volume.pageSizeBlocks} blocks (${volume.piecesPerPage} pieces), first laid out over ${volume.servers.join(', ')}`);
    const down = all.filter((entry) => 'down' in entry).map((entry) => entry.server);
    for (let page = 0; page < volume.pageCount; page += 1) {
      const key = `${volume.name}/${page}`;
      const tables = live.map((entry) => `${entry.server}→${entry.routes[key]?.owner ?? '?'}@${entry.routes[key]?.epoch ?? '?'}`).join(' ');
      console.log(`  page ${page}: owner ${pageOwnerText(key, live, down)}   tables ${tables}`);
    }
  }
  for (const entry of live) {
    for (const move of entry.moves) {
      console.log(move.abandoned
        ? `move ${move.page} ${entry.server}→${move.destination} (${move.kind}): abandoned, ${entry.server} serves the page alone; waiting for ${move.destination} to let go of its partial copy (attempt ${move.attempt})`
        : `move ${move.page} ${entry.server}→${move.destination} (${move.kind}): ${move.state}, durable stage ${move.durableStage}, working on stage ${move.stageInProgress}, attempt ${move.attempt}, piece ${move.piece + 1}/${move.pieceCount}`);
    }
  }
}

/**
 * Who owns a page, for `status`: the live servers that report a valid copy (with their epochs when there are two, as
 * between a destination's commit and its source's flip). When none does (its owner is down, or a
 * move is between its copy and its flip), the owner the newest routing table among the live servers names, marked
 * `down` if it does not answer, with the live servers that receive it (a move's destination).
 */
export function pageOwnerText(key: string, live: readonly ServerStatus[], down: readonly string[]): string {
  const holders = live.filter((entry) => entry.copies[key]?.startsWith('valid'));
  // Two valid copies: a destination that has committed, and its source until its flip is durable; the epochs tell them apart.
  if (holders.length > 1) return holders.map((entry) => `${entry.server} (${/epoch \d+/.exec(entry.copies[key]!)?.[0] ?? entry.copies[key]})`).join(', ');
  if (holders.length === 1) return holders[0]!.server;
  const route = live.map((entry) => entry.routes[key]).reduce<ServerStatus['routes'][string] | undefined>((best, candidate) => (candidate && (!best || candidate.epoch > best.epoch) ? candidate : best), undefined);
  const receiving = live.filter((entry) => entry.copies[key]?.startsWith('receiving')).map((entry) => `${entry.server} receiving`).join(', ');
  if (!route) return receiving ? `? (${receiving})` : '?';
  const owner = down.includes(route.owner) ? 'down' : 'routing tables; no valid copy reported';
  return `${route.owner} (${receiving ? `${owner}; ${receiving}` : owner})`;
}

async function volumeCreate(options: Map<string, string>): Promise<void> {
  const group = groupOf(options);
  const servers = requiredFlag(options, 'servers').split(',');
  const result = await admin<{ message: string }>(group.servers[0]!, '/volumes', {
    name: requiredFlag(options, 'name'), pageCount: integerFlag(options, 'pages', null), servers,
    piecesPerPage: integerFlag(options, 'pieces', 4), pageSizeBlocks: integerFlag(options, 'page-size-blocks', 8192),
  });
  console.log(result.message);
}

async function move(options: Map<string, string>): Promise<void> {
  const group = groupOf(options);
  const volume = requiredFlag(options, 'volume');
  const page = integerFlag(options, 'page', null);
  const to = requiredFlag(options, 'to');
  const kind = options.get('kind') ?? 'piecewise';
  if (kind !== 'piecewise' && kind !== 'unit') throw new UsageError('--kind must be piecewise or unit');
  const pieces = options.has('pieces') ? integerFlag(options, 'pieces', null) : undefined;
  if (pieces !== undefined && pieces < 1) throw new UsageError('--pieces must be a positive integer');
  if (kind === 'unit' && pieces !== undefined && pieces !== 1) throw new UsageError('--pieces applies to a piecewise move (a unit move is one piece)');
  const key = `${volume}/${page}`;
  const live = (await statuses(group)).filter((entry): entry is ServerStatus => !('down' in entry));
  const owner = live.find((entry) => entry.copies[key]?.startsWith('valid'));
  if (!owner) throw new Error(`no live server holds a valid copy of ${key}`);
  const source = group.servers.find((server) => server.id === owner.server)!;
  const epochBefore = owner.routes[key]?.epoch ?? null;
  const result = await admin<{ message: string }>(source, '/moves', { volume, page, to, kind, ...(pieces === undefined ? {} : { pieces }) });
  console.log(result.message);
  const startedMs = Date.now();
  let last = '';
  let pageBytes = 0;
  for (;;) {
    const now = await admin<Pick<ServerStatus, 'moves'>>(source, '/moves').catch((error: unknown) => {
      // The source died under the move: its durable checkpoint resumes the move when it restarts (a review's scripts
      // read the bare socket error as a failed move, and the move then completed).
      if (!isNotListening(error)) throw error;
      throw new Error(`${source.id}, the source of the move of ${key}, stopped answering: the move resumes from its last durable checkpoint when ${source.id} starts again (npx blockshift server start --id ${source.id}${whereFlags(options)}); npx blockshift status${whereFlags(options)} shows it`);
    });
    const running = now.moves.find((candidate) => candidate.page === key);
    if (!running) break;
    if (running.abandoned) throw new Error(`the move of ${key} to ${to} was abandoned: ${source.id} serves it alone again`);
    pageBytes = running.pageBytes;
    const line = `  ${progressLine(running)}`;
    if (line !== last) console.log(`${line}, ${mibPerSecond(running.bytesCopied, Date.now() - startedMs)}`);
    last = line;
    // Polled often enough that a move of a few tens of milliseconds is timed to within a poll; a line prints only on change.
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  const elapsedMs = Date.now() - startedMs;
  // No move of the page left on the source says only that it ended: one given up, or lost to a restart of the source
  // before its first checkpoint was durable, leaves the source holding the page (a review found this reported done).
  const after = await admin<ServerStatus>(source, '/status');
  // An abandoned move leaves the source's copy valid, and its route, two epochs on (its record may be gone before a poll
  // saw it). A move there and back again within one poll would read the same; the balancer's cool-down rules that out.
  const epochAfter = after.routes[key]?.epoch ?? null;
  if (after.copies[key]?.startsWith('valid') && epochBefore !== null && epochAfter !== null && epochAfter >= epochBefore + 2) {
    throw new Error(`the move of ${key} to ${to} was abandoned: ${source.id} serves it alone again (epoch ${epochAfter})`);
  }
  if (after.copies[key]?.startsWith('valid')) {
    throw new Error(`the move of ${key} to ${to} ended without moving it: ${source.id} still holds its valid copy (the move was given up or lost to a restart); run it again`);
  }
  console.log(`move of ${key} to ${to} complete in ${(elapsedMs / 1000).toFixed(2)} s (${mibPerSecond(pageBytes, elapsedMs)} including commit and flip)`);
}

/**
 * Gives up a page's move at its source, typically because its destination is gone for good (the move would restart
 * toward it for ever, failing writes to the piece in transit). Refused once the destination holds any of the page
 * alone (a finished piece of Table 2) or may own it (Table 1's commit was asked): such a move can only finish.
 */
async function moveAbandon(options: Map<string, string>): Promise<void> {
  const group = groupOf(options);
  const volume = requiredFlag(options, 'volume');
  const page = integerFlag(options, 'page', null);
  const key = `${volume}/${page}`;
  const all = await statuses(group);
  const live = all.filter((entry): entry is ServerStatus => !('down' in entry));
  const running = live.find((entry) => entry.moves.some((candidate) => candidate.page === key && !candidate.abandoned));
  if (!running) throw new Error(whyNoMoveToAbandon(all, volume, page ?? 0));
  const source = group.servers.find((server) => server.id === running.server)!;
  const result = await admin<{ message: string }>(source, '/moves/abandon', { volume, page });
  console.log(result.message);
}

/** Why `move abandon` finds no move of the page to give up, in the words that tell the administrator what to do. */
function whyNoMoveToAbandon(all: ReadonlyArray<ServerStatus | { server: string; down: string }>, volume: string, page: number): string {
  const live = all.filter((entry): entry is ServerStatus => !('down' in entry));
  const down = all.filter((entry) => 'down' in entry).map((entry) => entry.server);
  if (live.length === 0) return 'no server of the group answered: it is not running';
  const definition = live.flatMap((entry) => entry.volumes).find((candidate) => candidate.name === volume);
  if (!definition) {
    const names = [...new Set(live.flatMap((entry) => entry.volumes.map((candidate) => candidate.name)))].sort();
    return `no volume ${volume} (the group has ${names.length > 0 ? names.join(', ') : 'none'})`;
  }
  if (page >= definition.pageCount) return `volume ${volume} has ${definition.pageCount} pages (0-${definition.pageCount - 1}): there is no page ${page}`;
  const key = `${volume}/${page}`;
  const abandoned = live.find((entry) => entry.moves.some((candidate) => candidate.page === key && candidate.abandoned));
  if (abandoned) {
    const move = abandoned.moves.find((candidate) => candidate.page === key)!;
    return `the move of ${key} to ${move.destination} was abandoned already: ${abandoned.server} serves the page alone and waits for ${move.destination} to let go of its partial copy`;
  }
  const unseen = down.length > 0 ? `; ${down.join(', ')} ${down.length === 1 ? 'is' : 'are'} down, and a move run by a server that is down can be abandoned only once it is back` : '';
  return `no move of ${key} runs${unseen}`;
}

/** One line of a running move's progress: which piece of how many, what has been copied, the stage under way. */
export function progressLine(move: ServerStatus['moves'][number]): string {
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(2);
  const what = move.piecesCopied === move.pieceCount ? 'all pieces copied, committing and flipping' : `piece ${move.piece + 1} of ${move.pieceCount}`;
  return `${what}: ${mib(move.bytesCopied)} of ${mib(move.pageBytes)} MiB copied (working on stage ${move.stageInProgress}, attempt ${move.attempt}, ${move.state})`;
}

function mibPerSecond(bytes: number, elapsedMs: number): string {
  return `${(bytes / 2 ** 20 / Math.max(elapsedMs, 1) * 1000).toFixed(1)} MiB/s`;
}

const configPathOf = (options: Map<string, string>) => join(options.get('data') ?? 'data', 'group.json');

async function serverAdd(options: Map<string, string>): Promise<void> {
  const id = requiredFlag(options, 'id');
  const weightText = options.get('weight') ?? '1';
  const weight = Number(weightText);
  if (capacityWeightProblem(weight)) throw new UsageError(`--weight: ${capacityWeightProblem(weight)}, not ${weightText}`);
  const configPath = configPathOf(options);
  if (!existsSync(configPath)) throw new Error(`${configPath} not found: start the group with "blockshift up" first`);
  // The file is re-read and written under its lock (changeGroupConfig): a drain or another add may be changing it.
  const grown = await changeGroupConfig(configPath, (group) => {
    const changed = { ...group, servers: [...group.servers, nextServerConfig(group, id, weight)] };
    const problem = groupConfigProblem(changed);
    if (problem) throw new UsageError(problem);
    return changed;
  });
  const added = grown.servers.find((candidate) => candidate.id === id)!;
  try {
    await startAndJoin(grown, added, configPath);
  } catch (error) {
    // A server that never came up or never joined leaves no trace in the file (a review's retry was refused as a
    // duplicate for good). Its data directory is kept.
    await changeGroupConfig(configPath, (group) => ({ ...group, servers: group.servers.filter((candidate) => candidate.id !== id) }));
    throw new Error(`${(error as Error).message}; ${id} removed from ${configPath} again`);
  }
  console.log(`move pages to it: npx blockshift move${whereFlags(options)} --volume V --page P --to ${id}   (or drain another server, or run with BLOCKSHIFT_BALANCE=1)`);
}

/** Starts the new server's process, waits until it answers as itself, and asks the group to add it. */
async function startAndJoin(group: GroupConfig, server: ServerConfig, configPath: string): Promise<void> {
  await startDetached(server, configPath);
  await joinServer(group, server, admin, (line) => console.log(line));
}

/**
 * Starts one server of the group as a process that outlives this command (detached, its output in its data
 * directory) and waits until it answers as itself.
 */
async function startDetached(server: ServerConfig, configPath: string): Promise<void> {
  // Where the server will look for it: it runs in the repository's root, whatever this command's working directory.
  const dataDirectory = resolvedDataDirectory(server.dataDirectory);
  mkdirSync(dataDirectory, { recursive: true });
  const logPath = join(dataDirectory, 'server.log');
  const output = openSync(logPath, 'a');
  const root = repositoryRoot;
  const child = spawn(process.execPath, [...serverNodeFlags, '--import', 'tsx', join(root, 'impl/cli/server-main.ts'), resolve(configPath), server.id], { cwd: root, detached: true, stdio: ['ignore', output, output] });
  let exited: number | null = null;
  child.once('exit', (code) => { exited = code ?? -1; });
  child.unref();
  console.log(`started ${server.id} (pid ${child.pid}, output in ${logPath}): nbd ${server.nbd.host}:${server.nbd.port}, peer ${server.peer.host}:${server.peer.port}, admin ${server.admin.host}:${server.admin.port}`);
  const deadline = Date.now() + 30_000;
  // Only an answer from the new server itself counts: another process on its admin port answers as someone else.
  while (!(await admin<ServerStatus>(server, '/status').then((status) => status.server === server.id, () => false))) {
    if (exited !== null) throw new Error(`${server.id} exited (status ${exited}) before it came up; see ${logPath}`);
    if (Date.now() > deadline) {
      child.kill('SIGTERM');
      throw new Error(`${server.id} did not come up; see ${logPath}`);
    }
    await new Promise((done) => setTimeout(done, 100));
  }
}

/**
 * Brings back one server of the group that is down (killed, crashed, or stopped), detached as `server add` runs its
 * servers; the others keep running. A member that answers already is left alone.
 */
async function serverStart(options: Map<string, string>): Promise<void> {
  const group = groupOf(options);
  const id = requiredFlag(options, 'id');
  const server = group.servers.find((candidate) => candidate.id === id);
  // Not a usage error: the id is well formed, the group has no such member (one that left by a drain or was forgotten
  // is dropped from the configuration; following the README in order led there, with the whole usage printed).
  if (!server) throw new Error(`no server ${id} in the group configuration ${configPathOf(options)}: a server that left (drained) or was forgotten comes back with npx blockshift server add --id ${id}${whereFlags(options)}`);
  if (await runsAlready(server)) {
    console.log(`${id} is running already`);
    return;
  }
  await startDetached(server, configPathOf(options));
}

async function serverDrain(options: Map<string, string>): Promise<void> {
  const group = groupOf(options);
  const id = requiredFlag(options, 'id');
  const server = group.servers.find((candidate) => candidate.id === id);
  if (!server) throw new UsageError(`no server ${id} in the group configuration`);
  await drainServer(server, admin, (line) => console.log(line));
  const result = await admin<{ message: string }>(server, '/shutdown', {});
  console.log(result.message);
  await changeGroupConfig(configPathOf(options), (current) => ({ ...current, servers: current.servers.filter((candidate) => candidate.id !== id) }));
  console.log(`${id} removed from ${configPathOf(options)} (its data directory ${server.dataDirectory} is kept)`);
}

/**
 * Removes members that are down for good and hold nothing (their pages moved
 * away before they died, or they never had any), through the first other
 * server that answers, then drops them from the configuration file. `--id`
 * takes one id or several, comma-separated (servers lost together, which
 * would otherwise each wait for the other's confirmation). Refused while
 * anything names one of them (a page it owns, a move toward it); a member
 * that is down and not named blocks it, as it blocks a leave. With
 * `--declare-lost`, the pages whose only copy was on them are declared lost
 * instead and served empty by that server (machines/node/lost-pages.ts): the
 * administrator's explicit choice to lose what they held.
 */
async function serverForget(options: Map<string, string>): Promise<void> {
  const group = groupOf(options);
  const ids = [...new Set(requiredFlag(options, 'id').split(','))];
  const servers = ids.map((id) => {
    const server = group.servers.find((candidate) => candidate.id === id);
    if (!server) throw new UsageError(`no server ${id} in the group configuration`);
    return server;
  });
  for (const server of servers) {
    if (await admin<ServerStatus>(server, '/status').then(() => true, () => false)) {
      throw new Error(`${server.id} answers at ${server.admin.host}:${server.admin.port}: forget only a server that is down for good (drain a running one: server drain --id ${server.id})`);
    }
  }
  const rest = group.servers.filter((other) => !ids.includes(other.id));
  let via: ServerConfig | null = null;
  for (const candidate of rest) {
    if (await admin<ServerStatus>(candidate, '/status').then(() => true, () => false)) {
      via = candidate;
      break;
    }
  }
  if (!via) throw new Error(`no other server of the group answers: cannot forget ${ids.join(', ')}`);
  const declareLost = options.get('declare-lost') === 'true';
  if (options.has('declare-lost') && !declareLost) throw new UsageError('--declare-lost takes no value');
  if (declareLost) console.log(`declaring lost the pages whose only copy was on ${ids.join(', ')}: ${via.id} serves them empty, and what they held is gone`);
  await forgetServer(servers, via, rest.filter((other) => other !== via), admin, (line) => console.log(line), declareLost ? 120_000 : 30_000, declareLost);
  await changeGroupConfig(configPathOf(options), (current) => ({ ...current, servers: current.servers.filter((candidate) => !ids.includes(candidate.id)) }));
  console.log(`${ids.join(', ')} removed from ${configPathOf(options)}`);
  // Kept, under another name: a server added later under the same id starts afresh instead of from a forgotten
  // member's records (a review re-added one, which started from them).
  for (const server of servers) {
    const directory = resolvedDataDirectory(server.dataDirectory);
    if (!existsSync(directory)) continue;
    const aside = `${directory}.forgotten-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    renameSync(directory, aside);
    console.log(`${server.id}'s data directory moved to ${aside}`);
  }
}

/**
 * Asks every server to shut down. A server that is not running is already
 * where `stop` would put it: it is reported as such, and does not fail the
 * command (as stopping a stopped service succeeds); any other failure does.
 */
async function stop(options: Map<string, string>): Promise<void> {
  const group = groupOf(options);
  const failed: string[] = [];
  for (const server of group.servers) {
    const result = await admin<{ message: string }>(server, '/shutdown', {}).catch((error: unknown) => {
      const message = (error as Error).message;
      if (isNotListening(error)) return { message: `${server.id}: not running` };
      failed.push(server.id);
      return { message: `${server.id}: ${message}` };
    });
    console.log(result.message);
  }
  if (failed.length > 0) throw new Error(`could not stop ${failed.join(', ')}`);
}

/** Whether an admin request failed because nothing listens at the server's address (it is not running). */
function isNotListening(error: unknown): boolean {
  return /ECONNREFUSED/.test((error as Error).message) || (error as { code?: unknown }).code === 'ECONNREFUSED';
}

const usage = 'blockshift up [--servers N] [--data DIR] [--base-port P] [--throttle-mbps R] [--under-load-mbps R] [--no-demo] | status | ' +
  'volume create --name V --pages N --servers s1,s2 [--pieces K] [--page-size-blocks B] | move --volume V --page P --to S [--kind piecewise|unit] [--pieces N] | ' +
  'move abandon --volume V --page P | ' +
  'server add --id S [--weight W] | server start --id S | server drain --id S | server forget --id S[,T...] [--declare-lost] | stop   (every command takes --data DIR or --base-port P to find a group other than the default one)';

export async function run(argv: readonly string[]): Promise<number> {
  // `blockshift status | head` closes the pipe early: that ends the output, not with a stack trace (a review found one).
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
  const [command, ...rest] = argv;
  try {
    if (command === 'help' || command === '--help' || argv.includes('--help')) {
      console.log(`usage: ${usage}`);
      return 0;
    }
    switch (command) {
      case undefined:
      case 'up': await up(flags(rest, ['servers', 'throttle-mbps', 'under-load-mbps', 'no-demo'])); return 0;
      case 'status': await status(flags(rest, [])); return 0;
      case 'volume':
        if (rest[0] !== 'create') throw new UsageError('volume: only "volume create" exists');
        await volumeCreate(flags(rest.slice(1), ['name', 'pages', 'servers', 'pieces', 'page-size-blocks']));
        return 0;
      case 'move':
        if (rest[0] === 'abandon') await moveAbandon(flags(rest.slice(1), ['volume', 'page']));
        else await move(flags(rest, ['volume', 'page', 'to', 'kind', 'pieces']));
        return 0;
      case 'server':
        if (rest[0] === 'add') await serverAdd(flags(rest.slice(1), ['id', 'weight']));
        else if (rest[0] === 'drain') await serverDrain(flags(rest.slice(1), ['id']));
        else if (rest[0] === 'start') await serverStart(flags(rest.slice(1), ['id']));
        else if (rest[0] === 'forget') await serverForget(flags(rest.slice(1), ['id', 'declare-lost']));
        else throw new UsageError('server: "server add --id S [--weight W]", "server start --id S", "server drain --id S" or "server forget --id S[,T...] [--declare-lost]"');
        return 0;
      case 'stop': await stop(flags(rest, [])); return 0;
      default: throw new UsageError(`unknown command ${command}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`blockshift: ${error.message}\nusage: ${usage}`);
      return 2;
    }
    console.error(`blockshift: ${(error as Error).message}`);
    return 1;
  }
}
