import { pageKeyText } from '../../machines/identifiers.js';
import type { World } from '../world/world.js';
import { applyAction, enabledActions, volumeName } from '../world/world.js';
import { isSettled } from './explore.js';

/**
 * Liveness from one state: faults stop (every crashed server restarts, the
 * network delivers in order, nothing new is asked), and a fair schedule must
 * reach a state where every request is answered, every move is complete and
 * every routing table names the page's one valid owner.
 */
export function checkLiveness(start: World, stepsMax: number): string | null {
  let world = start;
  for (let steps = 0; steps < stepsMax; steps += 1) {
    if (world.violation) return `while healing: ${world.violation}`;
    const actions = enabledActions(world);
    const next =
      actions.find((action) => action.type === 'restart') ??
      actions.find((action) => action.type === 'persist') ??
      actions.find((action) => action.type === 'deliver') ??
      actions.find((action) => action.type === 'timer');
    if (!next) break;
    world = applyAction(world, next);
  }
  if (!isSettled(world)) return `not settled after ${stepsMax} fair steps: ${describeUnsettled(world)}`;
  for (let page = 0; page < world.config.pages; page += 1) {
    const key = pageKeyText({ volume: volumeName, page });
    const owner = world.servers.find((server) => server.meta.replicas[key]?.status === 'valid');
    const disagreeing = world.servers.filter((server) => server.node.routes[key]?.owner !== owner?.id);
    if (!owner || disagreeing.length > 0) return `routing tables disagree on ${key}: owner ${owner?.id}, stale on ${disagreeing.map((server) => server.id).join(', ')}`;
  }
  return null;
}

function describeUnsettled(world: World): string {
  const pending = world.clients.filter((client) => client.status === 'pending').map((client) => client.id);
  const moves = world.servers.flatMap((server) => Object.values(server.node.moves).map((move) => `${server.id}:${JSON.stringify(move.snapshot.value)}`));
  return `pending ${JSON.stringify(pending)}, moves ${JSON.stringify(moves)}, messages ${world.network.length}`;
}
