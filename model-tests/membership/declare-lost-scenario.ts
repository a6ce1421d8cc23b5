import type { PageKey } from '../../machines/identifiers.js';
import type { Membership } from '../../machines/membership/membership.js';
import { bootstrapMembership, changedMembership } from '../../machines/membership/membership.js';
import type { DurableRecords } from '../../machines/node/node-io.js';
import { initialDurableRecords, nodeStep } from '../../machines/node/node.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import type { ReplicaRecord } from '../../machines/replica/replica-record.js';
import type { ExchangeStep } from './dead-source-takeover-scenario.js';
import { exchange, membershipChange } from './dead-source-takeover-scenario.js';
import { member } from './membership-fixture.js';

/**
 * The group the declared-lost tests and diagram share
 * (machines/node/lost-pages.ts): volume alpha's four pages start on s1-s4,
 * and s4, owner of alpha/3, died for good and is draining. Nodes start from
 * the volume's initial records, with `extra` records in place of those of
 * the same page.
 */
export const alpha: VolumeDefinition = { name: 'alpha', pageCount: 4, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1', 's2', 's3', 's4'] };
export const lostPage: PageKey = { volume: 'alpha', page: 3 };
export const group: readonly string[] = ['s1', 's2', 's3', 's4'];
export const s4Draining = changedMembership(bootstrapMembership(group.map((id) => member(id))), { kind: 'drain', id: 's4' }) as Membership;

export type Nodes = Record<string, NodeState>;

export function started(self: string, extra: Partial<Pick<DurableRecords, 'replicas' | 'routes'>> = {}, membership: Membership = s4Draining): NodeState {
  const durable = initialDurableRecords([alpha], self);
  const records: DurableRecords = {
    ...durable, membership,
    replicas: [...durable.replicas.filter(({ pageKey }) => !(extra.replicas ?? []).some((other) => other.pageKey.page === pageKey.page)), ...(extra.replicas ?? [])],
    routes: [...durable.routes.filter(({ pageKey }) => !(extra.routes ?? []).some((other) => other.pageKey.page === pageKey.page)), ...(extra.routes ?? [])],
  };
  return nodeStep(emptyNodeState(defaultNodeConfig(self, [...group]), 1), { type: 'node.start', durable: records })[0];
}

/** s4 had begun moving alpha/3 to s2 when it died: s2's copy receives at epoch 2. */
export const receivingAtS2: ReplicaRecord = { status: 'receiving', source: 's4', attempt: 1, epoch: 2 };

/**
 * The story the diagram draws: the administrator asks s2, then s1, to
 * forget s4 declaring its pages lost. s2 claims first and every member
 * accepts; s1's claim (the smaller id) then wins everywhere, s2 giving up its
 * round; s2, asked again, names s1; s1 declares alpha/3 (deleting what it
 * held, then committing), s2 lets go of the copy it was receiving, and the
 * forget goes through. Every arrow is a step of the node code the TCP
 * runtime runs; messages to s4 are lost.
 */
export function declareThroughRivalClaimants(asksMax = 6): ExchangeStep[] {
  const nodes: Nodes = { s1: started('s1'), s2: started('s2', { replicas: [{ pageKey: lostPage, record: receivingAtS2 }] }), s3: started('s3') };
  const forget = (requestId: string) => membershipChange(requestId, { kind: 'forget', ids: ['s4'], declareLost: true });
  const steps = [...exchange(nodes, 's2', [forget('s2-claims')]), ...exchange(nodes, 's1', [forget('s1-claims')]), ...exchange(nodes, 's2', [forget('s2-again')])];
  for (let ask = 0; ask < asksMax; ask += 1) {
    const requestId = `s1-${ask}`;
    const asked = exchange(nodes, 's1', [forget(requestId)]);
    steps.push(...asked);
    if (asked.some((step) => step.effects.some((effect) => effect.type === 'admin.reply' && effect.requestId === requestId && effect.ok))) return steps;
  }
  throw new Error(`s4 not forgotten within ${asksMax} asks`);
}
