import { afterEach, describe, expect, it } from 'vitest';
import type { ServerId } from '../../machines/identifiers.js';
import type { Member, Membership } from '../../machines/membership/membership.js';
import { bootstrapMembership } from '../../machines/membership/membership.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { DurableRecords, MetadataWrite } from '../../machines/node/node-io.js';
import { memoryPages } from './memory-pages.js';
import { ServerRuntime } from './server-runtime.js';

/**
 * A membership record takes effect in memory at once and is acted on once
 * durable. One failed commit of it (a transient ENOSPC or EIO) used to end
 * there: the server kept a record it never made durable nor acted on, its
 * transport never met the new member, every FLUSH it served waited for that
 * member and failed with EIO, and the administrator's retry was refused as
 * already made (a review reproduced both). The commit is now tried again
 * after a pause until it holds.
 */
const running: ServerRuntime[] = [];
afterEach(() => {
  for (const runtime of running.splice(0)) runtime.stop();
});

const member = (id: string, port: number): Member => ({ id, peer: { host: '127.0.0.1', port }, admin: null, capacityWeight: 1, draining: false });
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Three runtimes over an in-process network; like the peer transport, a server reaches only the members it was told of. */
function group() {
  const runtimes = new Map<ServerId, ServerRuntime>();
  const reachable = new Map<ServerId, Set<ServerId>>();
  const durableEpochs: Record<string, number[]> = { s1: [], s2: [], s3: [] };
  const failNextMembershipCommit = new Set<ServerId>();
  for (const id of ['s1', 's2', 's3'] as const) {
    reachable.set(id, new Set(['s1', 's2']));
    const metadata = {
      load: (): DurableRecords => ({ volumes: [], routes: [], replicas: [], moves: [], membership: id === 's3' ? bootstrapMembership([member('s1', 1), member('s2', 2), member('s3', 3)]) : null }),
      commit: async (writes: readonly MetadataWrite[]) => {
        for (const write of writes) {
          if (write.kind !== 'membership') continue;
          if (failNextMembershipCommit.delete(id)) throw new Error('ENOSPC: no space left on device');
          durableEpochs[id]!.push(write.membership.epoch);
        }
      },
    };
    const runtime = new ServerRuntime({
      config: { ...defaultNodeConfig(id, ['s1', 's2']), peerRetryDelayMs: 20, peerRetriesMax: 2, moveRestartDelayMs: 30 }, incarnation: 1, pages: memoryPages(), metadata,
      peers: { send: (to: ServerId, message: PeerMessage, data: Buffer | null) => { if (reachable.get(id)!.has(to)) setImmediate(() => runtimes.get(to)?.receive(id, message, data)); } },
      log: () => undefined,
      bootstrapMembership: bootstrapMembership([member('s1', 1), member('s2', 2)]),
      onMembership: (membership: Membership) => { for (const other of membership.members) reachable.get(id)!.add(other.id); },
    });
    runtimes.set(id, runtime);
    running.push(runtime);
    runtime.start();
  }
  return { s1: runtimes.get('s1')!, s2: runtimes.get('s2')!, reachable, durableEpochs, failNextMembershipCommit };
}

describe('a membership commit that fails', () => {
  it('on a server that adopted a peer\'s record: is tried again, so the server meets the new member and its FLUSH succeeds', async () => {
    const { s1, s2, reachable, durableEpochs, failNextMembershipCommit } = group();
    expect((await s1.createVolume({ name: 'v', pageCount: 2, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1', 's2'] })).ok).toBe(true);
    failNextMembershipCommit.add('s2');
    expect((await s1.changeMembership({ kind: 'add', member: member('s3', 3) })).ok).toBe(true);
    await pause(150);
    expect(durableEpochs['s2']).toEqual([1]);
    expect([...reachable.get('s2')!].sort()).toEqual(['s1', 's2', 's3']);
    expect((await s2.flush('client', 'v')).outcome.status).toBe('ok');
  });

  it('on the server the administrator asked: is tried again, and the administrator is answered once it holds', async () => {
    const { s1, reachable, durableEpochs, failNextMembershipCommit } = group();
    expect((await s1.createVolume({ name: 'v', pageCount: 2, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1', 's2'] })).ok).toBe(true);
    failNextMembershipCommit.add('s1');
    const answer = await s1.changeMembership({ kind: 'add', member: member('s3', 3) });
    expect(answer).toMatchObject({ ok: true, message: expect.stringMatching(/^membership epoch 1/) });
    expect(durableEpochs['s1']).toEqual([1]);
    expect([...reachable.get('s1')!].sort()).toEqual(['s1', 's2', 's3']);
    expect((await s1.flush('client', 'v')).outcome.status).toBe('ok');
  });
});
