import { describe, expect, it } from 'vitest';
import type { Member, Membership } from '../../machines/membership/membership.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, nodeStep } from '../../machines/node/node.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';

/**
 * In forwarding-pointer mode a given-up copy points at the server it went
 * to; once that server has left the group the pointer is ignored and a
 * request follows the route instead (as it does when the table knows a newer
 * route than the pointer: see model-tests/node/forwarding-pointer.test.ts).
 */
const alpha: VolumeDefinition = { name: 'alpha', pageCount: 3, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1', 's2', 's3'] };
const member = (id: string): Member => ({ id, peer: null, admin: null, capacityWeight: 1, draining: false });

function forwardedTo(membership: Membership, tableRoute: { owner: string; epoch: number }): string[] {
  const config = { ...defaultNodeConfig('s1', ['s1', 's2', 's3']), forwardingPointer: true };
  const durable = initialDurableRecords([alpha], 's1');
  // s1 moved alpha/0 to s4 (pointer kept, epoch 2); `tableRoute` is what s1's table names.
  const [s1] = nodeStep(emptyNodeState(config, 1), {
    type: 'node.start',
    durable: {
      ...durable, membership,
      replicas: [{ pageKey: { volume: 'alpha', page: 0 }, record: { status: 'invalid', epoch: 2, owner: 's4', forwardTo: 's4' } }],
      routes: [...durable.routes.filter((entry) => entry.pageKey.page !== 0), { pageKey: { volume: 'alpha', page: 0 }, route: tableRoute }],
    },
  });
  const [, effects] = nodeStep(s1, { type: 'client.request', requestId: 'r', connectionId: 'c1', operation: { kind: 'read', pageKey: { volume: 'alpha', page: 0 }, offsetBlocks: 0, lengthBlocks: 1, fua: false } });
  return effects.flatMap((effect) => (effect.type === 'peer.send' && effect.message.type === 'request.forward' ? [effect.to] : []));
}

describe('forwarding pointers and membership', () => {
  it('a pointer to a member is followed; a pointer to a server that left is ignored for the route', () => {
    // The pointer is the newest route s1 knows (its table still names the move's source at epoch 1).
    expect(forwardedTo({ epoch: 1, members: ['s1', 's2', 's3', 's4'].map(member) }, { owner: 's1', epoch: 1 })).toEqual(['s4']);
    // s4 moved the page on to s2 and left the group; s1's table learnt the move (epoch 3).
    expect(forwardedTo({ epoch: 3, members: ['s1', 's2', 's3'].map(member) }, { owner: 's2', epoch: 3 })).toEqual(['s2']);
  });
});
