/**
 * The configuration of a group and of each server in it, with the embedded
 * defaults `npm start` uses: three servers on 127.0.0.1, NBD on 10809-10811
 * (10809 is NBD's registered port), peers on 11809-11811, admin on
 * 12809-12811, data under ./data. Every field is validated; a bad config is
 * refused with a message naming the field.
 */
import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import type { ServerId } from '../../machines/identifiers.js';
import { capacityWeightProblem } from '../../machines/membership/membership.js';
import { balancePortOffset } from '../balance/balance-server.js';
import { connectionsPerAddressMaxDefault, DEFAULT_CONNECTIONS_MAX } from '../nbd/nbd-server.js';

export interface Address {
  readonly host: string;
  readonly port: number;
}

export interface ServerConfig {
  readonly id: ServerId;
  readonly nbd: Address;
  readonly peer: Address;
  readonly admin: Address;
  readonly dataDirectory: string;
  /** Relative share of the group's load this server should carry (the balancer honours it). */
  readonly capacityWeight: number;
}


export interface GroupConfig {
  readonly groupName: string;
  readonly forwardingPointer: boolean;
  readonly traceTransitions: boolean;
  /** Page copies are paced to this rate; 0 copies as fast as the network goes. */
  readonly moveThrottleMBps: number;
  /**
   * While a server's clients are active, its page copies go no faster than this (md's speed_limit_min; see
   * impl/runtime/copy-pacer.ts); 0 lets them go at `moveThrottleMBps` under load too. Absent (a config saved before
   * it existed): `defaultMoveRateUnderLoadMBps`.
   */
  readonly moveRateUnderLoadMBps?: number;
  /** A move that makes no progress for this long presumes its destination failed and restarts. */
  readonly moveProgressTimeoutMs: number;
  /**
   * Each server's bounds on NBD connections, in all and from one client address (impl/nbd/nbd-server.ts, "Per
   * address"); absent: `DEFAULT_CONNECTIONS_MAX` and `connectionsPerAddressMaxDefault`. Clients behind one NAT or
   * proxy, or many guests of one hypervisor, share one address and may need a larger per-address bound.
   */
  readonly nbdConnectionsMax?: number;
  readonly nbdConnectionsPerAddressMax?: number;
  readonly servers: readonly ServerConfig[];
}

/** The copy rate under client load unless the config says otherwise (README, "Moves yield to clients"). */
export const defaultMoveRateUnderLoadMBps = 32;

export function localGroupConfig(dataDirectory = 'data', serverCount = 3, basePort = 10809): GroupConfig {
  return {
    groupName: 'blockshift-local',
    forwardingPointer: false,
    traceTransitions: true,
    moveThrottleMBps: 0,
    moveRateUnderLoadMBps: defaultMoveRateUnderLoadMBps,
    moveProgressTimeoutMs: 10_000,
    servers: Array.from({ length: serverCount }, (_, index) => ({
      id: `s${index + 1}`,
      nbd: { host: '127.0.0.1', port: basePort + index },
      peer: { host: '127.0.0.1', port: basePort + 1000 + index },
      admin: { host: '127.0.0.1', port: basePort + 2000 + index },
      dataDirectory: `${dataDirectory}/s${index + 1}`,
      capacityWeight: 1,
    })),
  };
}

/** The copy rate under client load that `config` asks for, or the default if it predates the field. */
export function moveRateUnderLoadMBpsOf(config: GroupConfig): number {
  return config.moveRateUnderLoadMBps ?? defaultMoveRateUnderLoadMBps;
}

/** A copy rate in MiB/s: finite and not negative (0: no limit). */
function isRate(value: unknown): boolean {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

/** The most NBD connections a config may let one server hold (each may hold 64 MiB of payload until answered). */
export const nbdConnectionsMaxLimit = 65_536;

/** A server's NBD connection bounds as its config sets them, or the defaults. */
export function nbdConnectionBoundsOf(config: GroupConfig): { connectionsMax: number; connectionsPerAddressMax: number } {
  return {
    connectionsMax: config.nbdConnectionsMax ?? DEFAULT_CONNECTIONS_MAX,
    connectionsPerAddressMax: config.nbdConnectionsPerAddressMax ?? connectionsPerAddressMaxDefault,
  };
}

function nbdConnectionBoundsProblem(config: GroupConfig): string | null {
  for (const name of ['nbdConnectionsMax', 'nbdConnectionsPerAddressMax'] as const) {
    const value = config[name];
    if (value !== undefined && !(Number.isInteger(value) && value >= 1 && value <= nbdConnectionsMaxLimit)) return `${name} must be an integer from 1 to ${nbdConnectionsMaxLimit}`;
  }
  const { connectionsMax, connectionsPerAddressMax } = nbdConnectionBoundsOf(config);
  if (connectionsPerAddressMax > connectionsMax) return `nbdConnectionsPerAddressMax (${connectionsPerAddressMax}) must not exceed nbdConnectionsMax (${connectionsMax})`;
  return null;
}

/** Node's timers hold at most this many milliseconds (a longer delay fires at once). */
const timerDelayMsMax = 2 ** 31 - 1;

/**
 * What is wrong with a group config (read from a file a person may have
 * edited), or null. A review found values accepted that misbehaved later: a
 * `forwardingPointer` of "false" (a truthy string), weights of Infinity, a
 * time-out past Node's timer limit, servers sharing one data directory (and
 * so one metadata store), a balance port clashing with another port, and a
 * `null` config or server entry, which threw instead of saying so.
 */
export function groupConfigProblem(config: GroupConfig): string | null {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) return 'the group config must be a JSON object';
  if (typeof config.groupName !== 'string' || config.groupName.length === 0) return 'groupName must be a non-empty string';
  if (!Array.isArray(config.servers) || config.servers.length === 0) return 'servers must be a non-empty list';
  for (const flag of ['forwardingPointer', 'traceTransitions'] as const) {
    if (config[flag] !== undefined && typeof config[flag] !== 'boolean') return `${flag} must be true or false`;
  }
  if (!Number.isInteger(config.moveProgressTimeoutMs) || config.moveProgressTimeoutMs < 10 || config.moveProgressTimeoutMs > timerDelayMsMax) {
    return `moveProgressTimeoutMs must be an integer from 10 to ${timerDelayMsMax}`;
  }
  if (!isRate(config.moveThrottleMBps)) return 'moveThrottleMBps must be a number >= 0';
  if (config.moveRateUnderLoadMBps !== undefined && !isRate(config.moveRateUnderLoadMBps)) return 'moveRateUnderLoadMBps must be a number >= 0';
  const connectionBoundsProblem = nbdConnectionBoundsProblem(config);
  if (connectionBoundsProblem) return connectionBoundsProblem;
  const ids = new Set<string>();
  const ports = new Set<string>();
  const dataDirectories = new Set<string>();
  for (const [index, server] of config.servers.entries()) {
    const where = `servers[${index}]`;
    if (typeof server !== 'object' || server === null) return `${where} must be an object`;
    if (typeof server.id !== 'string' || !/^[A-Za-z0-9_-]{1,32}$/.test(server.id)) return `${where}.id must be 1-32 letters, digits, '_' or '-'`;
    if (ids.has(server.id)) return `${where}.id ${server.id} repeats`;
    ids.add(server.id);
    for (const name of ['nbd', 'peer', 'admin'] as const) {
      const address = server[name];
      if (!address || typeof address.host !== 'string' || address.host.length === 0 || !Number.isInteger(address.port) || address.port < 1 || address.port > 65535) {
        return `${where}.${name} must be {host, port} with a host and a port in 1-65535`;
      }
      const text = `${address.host}:${address.port}`;
      if (ports.has(text)) return `${where}.${name} ${text} is used twice`;
      ports.add(text);
    }
    // The balancer listens beside the admin API (impl/balance/balance-server.ts) when balancing is on.
    const balancePort = server.admin.port + balancePortOffset;
    const balanceText = `${server.admin.host}:${balancePort}`;
    if (balancePort > 65535) return `${where}.admin port ${server.admin.port} leaves no room for its balance port (+${balancePortOffset})`;
    if (ports.has(balanceText)) return `${where}.admin's balance port ${balanceText} is used twice`;
    ports.add(balanceText);
    if (typeof server.dataDirectory !== 'string' || server.dataDirectory.length === 0) return `${where}.dataDirectory must be a path`;
    // Compared as absolute, normalised paths: '/x/s1', '/x/s1/' and '/x/s1/.' are one directory. (Symbolic links are
    // resolved when a server claims its directory at start, impl/storage/data-directory.ts.)
    const directory = resolvePath(server.dataDirectory);
    if (dataDirectories.has(directory)) return `${where}.dataDirectory ${server.dataDirectory} is another server's too`;
    dataDirectories.add(directory);
    const weightProblem = capacityWeightProblem(server.capacityWeight);
    if (weightProblem) return `${where}.${weightProblem}`;
  }
  return null;
}

/**
 * Reads a saved group config and validates it, so every command that talks
 * to a group (not only `up` and the server process) refuses a hand-edited or
 * truncated `group.json` with a message naming the file and the problem,
 * instead of failing later on a field that is missing.
 */
export function readGroupConfig(path: string): GroupConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read the group config ${path}: ${(error as Error).message}`);
  }
  let config: GroupConfig;
  try {
    config = JSON.parse(text) as GroupConfig;
  } catch (error) {
    throw new Error(`the group config ${path} is not JSON: ${(error as Error).message}`);
  }
  const problem = groupConfigProblem(config);
  if (problem) throw new Error(`bad group config ${path}: ${problem}`);
  return config;
}
