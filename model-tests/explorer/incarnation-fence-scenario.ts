import { assert } from '../../machines/identifiers.js';
import { fingerprintWords } from '../world/fingerprint.js';
import type { WorldConfig } from '../world/world-config.js';
import type { Action, World } from '../world/world.js';
import { applyAction, enabledActions, initialWorld } from '../world/world.js';

/**
 * The scenario that found the missing incarnation fence
 * (machines/node/incarnation-fence.ts), shared by its exhaustive test
 * (incarnation-fence-scenario.test.ts) and its generated sequence diagram
 * (diagrams/incarnation-fence-sequence.ts).
 *
 * Three servers in forwarding-pointer mode, the page on s1. s2's client
 * writes through s2, which forwards to s1; s1 moves the page to s3 and, its
 * copy now invalid, forwards the write there (FIG. 7); s1 crashes with that
 * forward still on its way (a crashed process's socket still delivers what
 * it had sent: `crashKeepsSent`), s2's forward times out, and s1 restarts:
 * the first 17 steps of the explorer's trace. From there, s2 asks the
 * restarted s1 to cancel its try.
 */
export const fenceScenarioConfig: WorldConfig = {
  servers: 3, pages: 1, pieces: 1, writes: 1, reads: 1, moves: 1, crashes: 1, networkFaults: 0, network: 'ordered', moveKinds: ['unit'],
  forwardingPointer: true, messagesMax: 12, timersOnlyWhenQuiet: false, variant: null, crashKeepsSent: true, earlyTimersMax: 2,
};

export const fenceScenarioPrefix: readonly Action[] = [
  { type: 'client.write', server: 1, block: 0 },
  { type: 'move.start', page: 0, to: 2, kind: 'unit' },
  { type: 'persist', server: 0 }, { type: 'deliver', index: 1 }, { type: 'persist', server: 2 }, { type: 'deliver', index: 1 },
  { type: 'persist', server: 0 }, { type: 'deliver', index: 1 }, { type: 'persist', server: 2 }, { type: 'deliver', index: 1 },
  { type: 'persist', server: 0 },
  { type: 'deliver', index: 0 }, { type: 'deliver', index: 0 }, { type: 'deliver', index: 0 },
  { type: 'crash', server: 0 },
  { type: 'timer', server: 1, timerId: 'request|c:w1|request:c:w1:r0' },
  { type: 'restart', server: 0 },
];

/** The world after `actions` from the scenario's initial world; throws if one is not enabled on the way. */
export function fenceScenarioWorld(actions: readonly Action[] = fenceScenarioPrefix): World {
  let world = initialWorld(fenceScenarioConfig);
  for (const action of actions) {
    const enabled = enabledActions(world).some((candidate) => JSON.stringify(candidate) === JSON.stringify(action));
    assert(enabled, `scenario step enabled: ${JSON.stringify(action)}`);
    world = applyAction(world, action);
  }
  return world;
}

/** Whether s1's first incarnation's forward of the write is still on its way to s3. */
export function earlierForwardInFlight(world: World): boolean {
  return world.network.some(({ from, fromIncarnation, to, message }) => from === 's1' && fromIncarnation === 0 && to === 's3' && message.type === 'request.forward');
}

/**
 * The outcome the fence makes safe, in the fewest steps after the prefix: the
 * write failed (ETIMEDOUT, behind the fence both members confirmed), a read
 * through s3 answered, and the old forward delivered to s3 after its floor
 * was raised (so dropped). Breadth-first over distinct worlds, bounded.
 */
export function fenceScenarioStory(statesMax = 200_000): Action[] {
  const start = fenceScenarioWorld();
  const seen = new Set<string>([fingerprintText(start)]);
  let frontier: Array<{ world: World; path: Action[] }> = [{ world: start, path: [] }];
  while (frontier.length > 0) {
    const next: Array<{ world: World; path: Action[] }> = [];
    for (const { world, path } of frontier) {
      for (const action of enabledActions(world)) {
        const successor = applyAction(world, action);
        const successorPath = [...path, action];
        if (droppedBehindFence(world, successor, action) && isStoryEnd(successor)) return successorPath;
        const key = fingerprintText(successor);
        if (seen.has(key)) continue;
        seen.add(key);
        assert(seen.size <= statesMax, `the fence story is found within ${statesMax} worlds`);
        next.push({ world: successor, path: successorPath });
      }
    }
    frontier = next;
  }
  throw new Error('no world after the prefix tells the fence story');
}

function fingerprintText(world: World): string {
  return Array.from(fingerprintWords(world, false, true)).join(',');
}

function droppedBehindFence(before: World, after: World, action: Action): boolean {
  if (action.type !== 'deliver') return false;
  const envelope = before.network[action.index];
  return envelope !== undefined && envelope.from === 's1' && envelope.fromIncarnation === 0 && envelope.message.type === 'request.forward'
    && (after.servers[2]?.node.incarnationFence.floors.s1 ?? 0) > 0;
}

function isStoryEnd(world: World): boolean {
  const write = world.clients.find((client) => client.kind === 'write');
  const read = world.clients.find((client) => client.kind === 'read');
  return write?.status === 'error' && read?.status === 'ok' && read.result === 0;
}
