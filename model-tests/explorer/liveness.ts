import type { ServerId } from '../../machines/identifiers.js';
import { pageKeyText } from '../../machines/identifiers.js';
import type { Route } from '../../machines/node/node-io.js';
import type { SimServer, World } from '../world/world.js';
import { applyAction, volumeName } from '../world/world.js';
import { FairSchedule } from '../world/fair-schedule.js';
import { isSettled } from './explore.js';

/**
 * Liveness from one state: faults stop (every crashed server restarts, the
 * network delivers, nothing new is asked), and a fair schedule must reach a
 * state where every request is answered, every move is complete, exactly one
 * valid copy of each page exists, and every server's routing converges on
 * that copy.
 *
 * Routing tables update lazily (the patent pushes the flip and repairs the
 * rest on use), so "converges" is read as FIG. 7 reads it: a request arriving
 * at any server, following its table and the stale answers of invalid copies,
 * reaches the owner within the hop and retry bounds. A table the push never
 * reached (its server was down, or the push was dropped) is repaired by its
 * first request, which this check replays without sending it.
 */
export function checkLiveness(start: World, stepsMax: number): string | null {
  let world: World;
  try {
    world = healFairly(start, stepsMax);
  } catch (error) {
    // A failed assertion while healing is reported from the state it started at, like any liveness failure.
    return `while healing, a failed assertion: ${(error as Error).message}`;
  }
  if (world.violation) return `while healing: ${world.violation}`;
  if (!isSettled(world)) return `not settled after ${stepsMax} fair steps: ${describeUnsettled(world)}`;
  for (let page = 0; page < world.config.pages; page += 1) {
    const key = pageKeyText({ volume: volumeName, page });
    const owners = world.servers.filter((server) => server.node.replicas.get(key)?.context.record?.status === 'valid');
    if (owners.length !== 1) return `${key} has ${owners.length} valid copies once settled: ${owners.map((server) => server.id).join(', ')}`;
    const owner = owners[0]!.id;
    const lost = world.servers.filter((server) => resolveOwner(world, key, server.id) !== owner);
    if (lost.length > 0) return `routing for ${key} does not reach its owner ${owner} from ${lost.map((server) => server.id).join(', ')}`;
  }
  return null;
}

/**
 * Faults stop and the fair schedule (world/fair-schedule.ts) runs from
 * `start` for at most `stepsMax` steps: crashed servers restart, commits
 * persist, messages are delivered, timers fire; nothing new is asked. Stops
 * early at a violation or when no such action is left.
 */
export function healFairly(start: World, stepsMax: number): World {
  let world = start;
  const schedule = new FairSchedule();
  for (let steps = 0; steps < stepsMax && world.violation === null; steps += 1) {
    const next = schedule.next(world);
    if (!next) break;
    world = applyAction(world, next);
  }
  return world;
}

/**
 * Where a request arriving at `entry` is served: each server consults the
 * freshest route it knows (its table, its invalid copy's record, or what a
 * stale answer on the way taught), as the node's lookup does. Returns null if
 * the walk names a server without a valid copy as owner, or exceeds its bound.
 */
export function resolveOwner(world: World, key: string, entry: ServerId): ServerId | null {
  const byId = new Map<ServerId, SimServer>(world.servers.map((server) => [server.id, server]));
  let learnt: Route | null = null;
  let current = entry;
  for (let hops = 0; hops <= 2 * world.servers.length; hops += 1) {
    const server = byId.get(current);
    if (!server) return null;
    const record = server.node.replicas.get(key)?.context.record ?? null;
    const candidates: Route[] = [server.node.routes.get(key), record?.status === 'invalid' ? { owner: record.owner, epoch: record.epoch } : undefined, learnt ?? undefined]
      .filter((route): route is Route => route !== undefined);
    const route = candidates.reduce((best, route) => (route.epoch > best.epoch ? route : best));
    learnt = route;
    if (route.owner === current) return record?.status === 'valid' ? current : null;
    current = route.owner;
  }
  return null;
}

function describeUnsettled(world: World): string {
  const pending = world.clients.filter((client) => client.status === 'pending').map((client) => client.id);
  const moves = world.servers.flatMap((server) => Object.values(server.node.moves).map((move) => `${server.id}:${JSON.stringify(move.snapshot.value)}`));
  return `pending ${JSON.stringify(pending)}, moves ${JSON.stringify(moves)}, messages ${world.network.length}`;
}
