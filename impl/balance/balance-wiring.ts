/**
 * Starts a server's balancer when `BLOCKSHIFT_BALANCE=1`: the monitor, the
 * ring exchange over each peer's balance endpoint (admin port + 100) and the
 * allocation machine. Off by default, so a group without the switch behaves
 * exactly as before. Timing can be tuned for demos and benches through
 * `BLOCKSHIFT_BALANCE_*` variables (milliseconds unless named otherwise).
 */
import type { ServerId } from '../../machines/identifiers.js';
import { allocationConfigProblem, defaultAllocationConfig } from '../../machines/allocation/allocation-config.js';
import type { AllocationConfig } from '../../machines/allocation/allocation-config.js';
import type { Address, GroupConfig } from '../cli/group-config.js';
import type { Membership } from '../../machines/membership/membership.js';
import type { ServerRuntime } from '../runtime/server-runtime.js';
import { Balancer } from './balancer.js';
import { balancePortOffset, postMove, postReports, startBalanceServer } from './balance-server.js';

export interface RunningBalancer {
  readonly balancer: Balancer;
  /** The node adopted a membership record: balance among its members, reach new ones at their admin addresses. */
  followMembership(membership: Membership): void;
  close(): Promise<void>;
}

function numberFrom(environment: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = environment[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number, not ${text}`);
  return value;
}

/** A period or half-life: zero would make every rate throw (on the request path) or tick in a busy loop. */
function positiveNumberFrom(environment: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = numberFrom(environment, name, fallback);
  if (!(value > 0)) throw new Error(`${name} must be a positive number, not ${environment[name]}`);
  return value;
}

export function allocationConfigFrom(self: ServerId, environment: NodeJS.ProcessEnv): AllocationConfig {
  const defaults = defaultAllocationConfig(self);
  const config: AllocationConfig = {
    ...defaults,
    enabled: environment.BLOCKSHIFT_BALANCE_AUTO !== '0',
    pageCooldownMs: numberFrom(environment, 'BLOCKSHIFT_BALANCE_COOLDOWN_MS', defaults.pageCooldownMs),
    overShareSamplesMin: numberFrom(environment, 'BLOCKSHIFT_BALANCE_SAMPLES_MIN', defaults.overShareSamplesMin),
    overShareRelative: numberFrom(environment, 'BLOCKSHIFT_BALANCE_OVER_SHARE', defaults.overShareRelative),
    concurrentMovesMax: numberFrom(environment, 'BLOCKSHIFT_BALANCE_CONCURRENT_MOVES', defaults.concurrentMovesMax),
    movesPerSampleMax: numberFrom(environment, 'BLOCKSHIFT_BALANCE_MOVES_PER_SAMPLE', defaults.movesPerSampleMax),
  };
  const problem = allocationConfigProblem(config);
  if (problem) throw new Error(`balance config: ${problem}`);
  return config;
}

export async function startBalancing(group: GroupConfig, self: ServerId, runtime: ServerRuntime, log: (line: string) => void, environment = process.env): Promise<RunningBalancer | null> {
  if (environment.BLOCKSHIFT_BALANCE !== '1') return null;
  const me = group.servers.find((server) => server.id === self);
  if (!me) throw new Error(`${self} is not in the group`);
  const adminAddresses = new Map<ServerId, Address>(group.servers.map((server) => [server.id, server.admin]));
  /** Null for a member that joined without an admin address: the ring passes it by (see Balancer's sendAroundRing). */
  const balanceAddress = (id: ServerId) => {
    const admin = adminAddresses.get(id);
    return admin ? { host: admin.host, port: admin.port + balancePortOffset } : null;
  };
  const balancer = new Balancer({
    runtime, log,
    servers: group.servers.map((server) => ({ id: server.id, capacityWeight: server.capacityWeight })),
    allocation: allocationConfigFrom(self, environment),
    sampleIntervalMs: positiveNumberFrom(environment, 'BLOCKSHIFT_BALANCE_INTERVAL_MS', 1_000),
    halfLifeMs: positiveNumberFrom(environment, 'BLOCKSHIFT_BALANCE_HALF_LIFE_MS', 3_000),
    sendReports: (to, reports) => {
      const address = balanceAddress(to);
      return address ? postReports(address, reports) : Promise.resolve(false);
    },
    requestRemoteMove: (owner, move) => {
      const admin = adminAddresses.get(owner);
      return admin ? postMove(admin, move) : Promise.resolve({ ok: false, message: `no server ${owner}` });
    },
  });
  const address = { host: me.admin.host, port: me.admin.port + balancePortOffset };
  const server = await startBalanceServer(address.host, address.port, balancer);
  balancer.start();
  log(`balancer on http://${address.host}:${address.port}/load (automatic balancing ${balancer.status() && allocationConfigFrom(self, environment).enabled ? 'on' : 'off'})`);
  return {
    balancer,
    followMembership: (membership) => {
      for (const member of membership.members) if (member.admin) adminAddresses.set(member.id, member.admin);
      // A draining member keeps its place on the ring (its reports still travel), but the allocation neither moves pages onto it nor off it: its drain does that.
      balancer.setServers(membership.members.map((member) => ({ id: member.id, capacityWeight: member.capacityWeight, draining: member.draining })));
    },
    close: async () => {
      balancer.stop();
      await server.close();
    },
  };
}
