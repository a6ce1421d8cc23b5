import { describe, expect, it } from 'vitest';
import type { PeerMessage } from '../../machines/node/messages.js';
import { referenceBound } from '../world/world-config.js';
import type { Action, Envelope, World } from '../world/world.js';
import { applyAction, enabledActions, initialWorld } from '../world/world.js';

/**
 * A dual write with FUA that reaches the destination after a newer write to
 * the same blocks (a retry whose first try was lost, say) changes nothing
 * there, but its acknowledgement still promises that what the block holds is
 * durable: the newer write may not be synced yet, and a power cut would take
 * the block back past both. The destination syncs the page before it
 * answers. The model's clients write all with FUA or all without, so the
 * explorer cannot reach this; the test delivers such a write by hand.
 */
describe('a FUA write superseded at the destination', () => {
  it('is answered only after the page is synced', () => {
    let world = initialWorld({ ...referenceBound, servers: 2, pieces: 1, writes: 1, crashes: 0, moves: 1, moveKinds: ['unit'], network: 'ordered', powerLoss: true, unflushedWrites: true });
    const take = (wanted: (action: Action, world: World) => boolean, what: string): void => {
      const action = enabledActions(world).find((candidate) => wanted(candidate, world));
      if (!action) throw new Error(`no action: ${what}`);
      world = applyAction(world, action);
    };
    const messageOf = (action: Action, current: World): PeerMessage | undefined => (action.type === 'deliver' ? current.network[action.index]?.message : undefined);
    // The move starts and the destination joins it; the client's write through s1 is dual-written to s2 and lands.
    take((action) => action.type === 'move.start', 'start the move');
    for (let step = 0; step < 20 && !world.servers[1]!.node.replicas.get('vol/0'); step += 1) take((action) => action.type === 'persist' || action.type === 'deliver', 'reach the destination');
    // Its receiving record is made durable: until then it acknowledges no move data.
    for (let step = 0; step < 5 && world.servers[1]!.pendingMeta.length > 0; step += 1) take((action) => action.type === 'persist' && action.server === 1, 'persist the receiving record');
    expect(world.servers[1]!.pendingMeta).toEqual([]);
    take((action) => action.type === 'client.write' && action.server === 0, 'write through s1');
    let dualWrite: Envelope | undefined;
    for (let step = 0; step < 40 && !dualWrite; step += 1) {
      dualWrite = world.network.find((envelope) => envelope.message.type === 'block.write');
      if (!dualWrite) take((action) => action.type === 'persist' || action.type === 'deliver', 'send the dual write');
    }
    expect(dualWrite, 'the write is dual-written to s2').toBeDefined();
    take((action, current) => messageOf(action, current)?.type === 'block.write', 'deliver the dual write');
    const destination = () => world.servers[1]!;
    expect(destination().data['vol/0']?.[0]).toBe(1);
    expect(destination().durableData['vol/0']?.[0] ?? 0, 'the dual write (without FUA) is not durable yet').toBe(0);

    // An older write to the same block, with FUA, arrives now: its blocks all hold something newer.
    const message = dualWrite!.message as Extract<PeerMessage, { type: 'block.write' }>;
    const older: Envelope = { ...dualWrite!, message: { ...message, requestId: 'c:w0', sequence: message.sequence - 1, fua: true } };
    world = { ...world, network: [...world.network, older] };
    take((action, current) => action.type === 'deliver' && current.network[action.index] === older, 'deliver the older FUA write');
    const answer = world.network.find((envelope) => envelope.message.type === 'block.written' && envelope.message.requestId === 'c:w0');
    expect(answer?.message, 'answered').toMatchObject({ ok: true });
    expect(destination().data['vol/0']?.[0]).toBe(1);
    expect(destination().durableData['vol/0']?.[0], 'what stands in its place is durable before the answer').toBe(1);
  });
});
