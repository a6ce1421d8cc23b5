import { describe, expect, it } from 'vitest';
import { applyRecorded as apply } from './play-actions.js';
import type { World } from './world.js';
import { initialWorld } from './world.js';
import type { WorldConfig } from './world-config.js';
import { referenceBound } from './world-config.js';

/**
 * What a crash does to the simulated network: every message addressed to the
 * crashed server is lost with its connections, copies a duplicating network
 * made included, so no message sent to one incarnation ever reaches the next
 * (TCP: a restarted process is reached on new connections only). The
 * incarnation fence (machines/node/incarnation-fence.ts) and the forwarded
 * writes' at-most-once memory, which a crash empties, rely on it: a try its
 * earlier run passed on can never come back to the restarted server as a
 * duplicate, to be answered stale or refused and so retried elsewhere. With
 * `crashKeepsSent`, what the crashed server had sent may still arrive (a
 * killed process's socket buffers).
 */
const config = (changes: Partial<WorldConfig>): WorldConfig => ({
  ...referenceBound, servers: 2, pages: 1, pieces: 1, writes: 1, reads: 0, moves: 0, crashes: 1, network: 'duplicating', networkFaults: 1, messagesMax: 16, ...changes,
});

/** s2's client writes block 0, whose page s1 owns: s2 forwards it, and the network duplicates the forward. */
function duplicatedForward(changes: Partial<WorldConfig>): World {
  let world = apply(initialWorld(config(changes)), { type: 'client.write', server: 1, block: 0 });
  const forward = world.network.findIndex((envelope) => envelope.to === 's1' && envelope.message.type === 'request.forward');
  expect(forward, 'the forward is in flight').toBeGreaterThanOrEqual(0);
  world = apply(world, { type: 'duplicate', index: forward });
  expect(world.network.filter((envelope) => envelope.to === 's1' && envelope.message.type === 'request.forward')).toHaveLength(2);
  return world;
}

describe('a crash and the simulated network', () => {
  it.each([false, true])('loses every message to the crashed server, duplicates included (crashKeepsSent %s)', (crashKeepsSent) => {
    const world = apply(duplicatedForward({ crashKeepsSent }), { type: 'crash', server: 0 });
    expect(world.network.filter((envelope) => envelope.to === 's1')).toEqual([]);
    const restarted = apply(world, { type: 'restart', server: 0 });
    expect(restarted.network.filter((envelope) => envelope.to === 's1' && envelope.message.type === 'request.forward')).toEqual([]);
  });

  it('keeps what the crashed server had sent only with crashKeepsSent', () => {
    for (const crashKeepsSent of [false, true]) {
      let world = duplicatedForward({ crashKeepsSent });
      // s1 takes the forward and answers s2: the answer is in flight when s1 crashes.
      world = apply(world, { type: 'deliver', index: world.network.findIndex((envelope) => envelope.to === 's1' && envelope.message.type === 'request.forward') });
      expect(world.network.some((envelope) => envelope.from === 's1')).toBe(true);
      world = apply(world, { type: 'crash', server: 0 });
      expect(world.network.some((envelope) => envelope.from === 's1'), `crashKeepsSent ${crashKeepsSent}`).toBe(crashKeepsSent);
    }
  });
});
