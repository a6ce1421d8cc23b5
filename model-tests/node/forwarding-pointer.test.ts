import { describe, expect, it } from 'vitest';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeEffect } from '../../machines/node/node-io.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, nodeStep } from '../../machines/node/node.js';
import type { ReplicaRecord } from '../../machines/replica/replica-record.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';

/**
 * Forwarding-pointer mode (`forwardingPointer`): a server whose copy of a page
 * was moved away keeps an invalid record pointing at the destination, and a
 * late request follows the pointer instead of taking the error-and-retry
 * loop. A pointer is only as good as it is new. Here alpha/0 moved s1 → s2
 * (s1's pointer names s2, epoch 2), then s2 → s3 (epoch 3, which s1's table
 * learnt), and s3 is moving it back to s2 (s2's copy is receiving, epoch 4).
 * A review found s1 following its old pointer to s2 on every retry, s2
 * answering stale each time, until the client got EIO ("routing retries
 * exhausted"); with more servers and moves, a chain of old pointers reached
 * the hop limit although every table knew the owner.
 */
const alpha: VolumeDefinition = { name: 'alpha', pageCount: 3, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1', 's2', 's3'] };
const page = { volume: 'alpha', page: 0 };

function started(self: string, record: ReplicaRecord, route: { owner: string; epoch: number }): NodeState {
  const config = { ...defaultNodeConfig(self, ['s1', 's2', 's3']), forwardingPointer: true };
  const durable = initialDurableRecords([alpha], self);
  const [state] = nodeStep(emptyNodeState(config, 1), {
    type: 'node.start',
    durable: {
      ...durable,
      replicas: [...durable.replicas.filter((entry) => entry.pageKey.page !== 0), { pageKey: page, record }],
      routes: [...durable.routes.filter((entry) => entry.pageKey.page !== 0), { pageKey: page, route }],
    },
  });
  return state;
}

function forwardsOf(effects: readonly NodeEffect[]): Array<{ to: string; message: PeerMessage }> {
  return effects.flatMap((effect) => (effect.type === 'peer.send' && effect.message.type === 'request.forward' ? [{ to: effect.to, message: effect.message }] : []));
}

const read = { type: 'client.request', requestId: 'r', connectionId: 'c1', operation: { kind: 'read', pageKey: page, offsetBlocks: 0, lengthBlocks: 1, fua: false } } as const;

describe('forwarding pointers', () => {
  it('follows the route, not a pointer older than the table', () => {
    // s1's pointer (epoch 2) names s2; its table already names s3 at epoch 3.
    const s1 = started('s1', { status: 'invalid', epoch: 2, owner: 's2', forwardTo: 's2' }, { owner: 's3', epoch: 3 });
    const [, effects] = nodeStep(s1, read);
    expect(forwardsOf(effects).map(({ to }) => to)).toEqual(['s3']);
  });

  it('uses a pointer up once its target answers stale: the retry goes to the owner the answer names, and the client never sees an error', () => {
    // s1 has not learnt that the page moved on: its pointer (epoch 2) is the newest it knows, so it is followed first.
    let s1 = started('s1', { status: 'invalid', epoch: 2, owner: 's2', forwardTo: 's2' }, { owner: 's1', epoch: 1 });
    let s2 = started('s2', { status: 'receiving', source: 's3', attempt: 1, epoch: 4 }, { owner: 's3', epoch: 3 });
    let effects: NodeEffect[];
    [s1, effects] = nodeStep(s1, read);
    const forwardedTo: string[] = [];
    for (let round = 0; round < 8; round += 1) {
      expect(effects.some((effect) => effect.type === 'client.reply'), `no reply to the client at round ${round}`).toBe(false);
      const [forward] = forwardsOf(effects);
      expect(forward, `a forward at round ${round}`).toBeDefined();
      forwardedTo.push(forward!.to);
      if (forward!.to !== 's2') break;
      let answers: NodeEffect[];
      [s2, answers] = nodeStep(s2, { type: 'peer.message', from: 's1', message: forward!.message });
      const answer = answers.find((effect) => effect.type === 'peer.send' && effect.message.type === 'request.answer');
      expect(answer?.type === 'peer.send' && answer.message.type === 'request.answer' && answer.message.outcome).toMatchObject({ status: 'stale', owner: 's3' });
      [s1, effects] = nodeStep(s1, { type: 'peer.message', from: 's2', message: (answer as Extract<NodeEffect, { type: 'peer.send' }>).message });
    }
    expect(forwardedTo).toEqual(['s2', 's3']);
  });
});
