import { describe, expect, it } from 'vitest';
import type { Membership } from '../../machines/membership/membership.js';
import { changedMembership } from '../../machines/membership/membership.js';
import type { PageKey } from '../../machines/identifiers.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import { initialDurableRecords, nodeStep } from '../../machines/node/node.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { claimStands } from '../../machines/node/lost-pages.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { ReplicaRecord } from '../../machines/replica/replica-record.js';
import { member, stepThrough } from './membership-fixture.js';
import type { Nodes } from './declare-lost-scenario.js';
import { alpha, group, lostPage, s4Draining, started } from './declare-lost-scenario.js';

/**
 * A server dead for good that still owns pages is forgotten with
 * `declareLost`: its pages are declared lost and served empty by the member
 * asked (machines/node/lost-pages.ts). These steps run the claim, the
 * members' reports, the declaration and the forget on pure nodes, and check
 * what must never happen: two owners of a page, a copy valid elsewhere
 * thrown away, the page's old data served, a late commit of the dead
 * server's move.
 */
const forget = (requestId: string): NodeInput => ({ type: 'admin.changeMembership', requestId, change: { kind: 'forget', ids: ['s4'], declareLost: true } });

function messages(effects: readonly NodeEffect[], type: PeerMessage['type']): Array<{ to: string; message: PeerMessage }> {
  return effects.flatMap((effect) => (effect.type === 'peer.send' && effect.message.type === type ? [{ to: effect.to, message: effect.message }] : []));
}

function reply(effects: readonly NodeEffect[]): { ok: boolean; message: string; reason: string | undefined } {
  const replies = effects.flatMap((effect) => (effect.type === 'admin.reply' ? [{ ok: effect.ok, message: effect.message, reason: effect.refusal?.reason }] : []));
  expect(replies).toHaveLength(1);
  return replies[0]!;
}

/** Steps `self` through `inputs`, completing at once every awaited commit and deletion they lead to, in order. */
function run(nodes: Nodes, self: string, ...inputs: NodeInput[]): NodeEffect[] {
  const [next, effects] = stepThrough(nodes[self]!, inputs, (effect) => effect.type === 'meta.commit' || effect.type === 'data.delete');
  nodes[self] = next;
  return effects;
}

/** A message on its way, and the server that sent it. */
interface InFlight { readonly from: string; readonly to: string; readonly message: PeerMessage }

/**
 * Delivers every message `from`'s `effects` send, and every message those
 * deliveries send, until none is left (s4 is dead: what is sent to it is
 * lost; `dropped` loses others too). Commits and deletions complete at once.
 * Returns every effect of the deliveries. Bounded.
 */
function pump(nodes: Nodes, from: string, effects: readonly NodeEffect[], dropped: (message: InFlight) => boolean = () => false): NodeEffect[] {
  const queue: InFlight[] = sends(from, effects);
  const all: NodeEffect[] = [];
  for (let delivered = 0; queue.length > 0; delivered += 1) {
    expect(delivered).toBeLessThan(10_000);
    const next = queue.shift()!;
    if (next.to === 's4' || nodes[next.to] === undefined || dropped(next)) continue;
    const done = run(nodes, next.to, { type: 'peer.message', from: next.from, message: next.message });
    all.push(...done);
    queue.push(...sends(next.to, done));
  }
  return all;
}

function sends(from: string, effects: readonly NodeEffect[]): InFlight[] {
  return effects.flatMap((effect) => (effect.type === 'peer.send' ? [{ from, to: effect.to, message: effect.message }] : []));
}

/** One ask of the administrator at `claimant`, its messages pumped; its reply, and every effect it led to. */
function ask(nodes: Nodes, claimant: string, requestId: string, dropped?: (message: InFlight) => boolean): { ok: boolean; message: string; reason: string | undefined; effects: NodeEffect[] } {
  const effects = run(nodes, claimant, forget(requestId));
  return { ...reply(effects), effects: [...effects, ...pump(nodes, claimant, effects, dropped)] };
}

/** Asks `claimant` until it says ok, at most `asksMax` times; returns each ask. */
function declareThrough(nodes: Nodes, claimant: string, asksMax = 8): Array<ReturnType<typeof ask>> {
  const asks = [];
  for (let index = 0; index < asksMax; index += 1) {
    const answered = ask(nodes, claimant, `forget-${claimant}-${index}`);
    asks.push(answered);
    if (answered.ok) break;
  }
  return asks;
}

function copyOf(node: NodeState, pageKey: PageKey): ReplicaRecord | null {
  return node.replicas.get(`${pageKey.volume}/${pageKey.page}`)?.context.record ?? null;
}

function routeOf(node: NodeState, pageKey: PageKey): { owner: string; epoch: number } | undefined {
  return node.routes.get(`${pageKey.volume}/${pageKey.page}`);
}

describe('declaring lost the pages of a server dead for good', () => {
  it('claims, asks every member, deletes its own data, commits, then serves the page empty and forgets the server', () => {
    const nodes: Nodes = { s1: started('s1'), s2: started('s2'), s3: started('s3') };
    const asks = declareThrough(nodes, 's1');
    // The claim and its round, the declaration, then the forget itself: each refused ask says why, for the CLI.
    expect(asks.map((each) => each.reason)).toEqual(['declaringLost', 'declaringLost', 'waitingFor', undefined]);
    expect(asks[0]!.message).toContain('s1 claims the declaring of s4\'s pages lost');
    expect(asks[1]!.message).toContain('declaring 1 page lost (alpha/3): s1 serves it empty');
    // The deletion is awaited before the record that makes the copy valid is committed.
    const declaring = asks[1]!.effects;
    const deletion = declaring.findIndex((effect) => effect.type === 'data.delete' && effect.reason === 'declaredLost');
    const record = declaring.findIndex((effect) => effect.type === 'meta.commit' && effect.writes.some((write) => write.kind === 'replica' && write.record.status === 'valid'));
    expect(deletion).toBeGreaterThanOrEqual(0);
    expect(record).toBeGreaterThan(deletion);
    // Two above the route's epoch (1): s1 owns the page, and every live member routes it there.
    expect(copyOf(nodes['s1']!, lostPage)).toEqual({ status: 'valid', epoch: 3 });
    for (const id of ['s1', 's2', 's3']) expect(routeOf(nodes[id]!, lostPage)).toEqual({ owner: 's1', epoch: 3 });
    for (const id of ['s1', 's2', 's3']) expect(nodes[id]!.membership.members.map((entry) => entry.id)).toEqual(['s1', 's2', 's3']);
    // s1 serves reads of the page itself now (from its own, empty, copy).
    const [, read] = stepThrough(nodes['s1']!, [{ type: 'client.request', requestId: 'r', connectionId: 'c', operation: { kind: 'read', pageKey: lostPage, offsetBlocks: 0, lengthBlocks: 1 } } as NodeInput]);
    expect(read.some((effect) => effect.type === 'data.read')).toBe(true);
  });

  it('learns nothing before the record is durable, and a failed commit or deletion declares nothing', () => {
    const nodes: Nodes = { s1: started('s1'), s2: started('s2'), s3: started('s3') };
    declareThrough(nodes, 's1', 1);
    // The second ask decides; its deletion and commit are completed by hand.
    const [deciding, effects] = stepThrough(nodes['s1']!, [forget('decide')]);
    const deletion = effects.find((effect): effect is Extract<NodeEffect, { type: 'data.delete' }> => effect.type === 'data.delete')!;
    expect(deletion.completionId).toBeDefined();
    const [failedDelete, afterFailedDelete] = stepThrough(deciding, [{ type: 'io.done', completionId: deletion.completionId!, ok: false }]);
    expect(afterFailedDelete.filter((effect) => effect.type === 'meta.commit')).toEqual([]);
    expect(routeOf(failedDelete, lostPage)).toEqual({ owner: 's4', epoch: 1 });
    const [deleted, committing] = stepThrough(deciding, [{ type: 'io.done', completionId: deletion.completionId!, ok: true }]);
    const commit = committing.find((effect): effect is Extract<NodeEffect, { type: 'meta.commit' }> => effect.type === 'meta.commit')!;
    expect(commit.writes).toEqual([{ kind: 'replica', pageKey: lostPage, record: { status: 'valid', epoch: 3 } }, { kind: 'route', pageKey: lostPage, route: { owner: 's1', epoch: 3 } }]);
    // Not yet durable: the page still routes to s4, and nothing is pushed.
    expect(routeOf(deleted, lostPage)).toEqual({ owner: 's4', epoch: 1 });
    expect(copyOf(deleted, lostPage)).toBeNull();
    expect(messages(committing, 'route.update')).toEqual([]);
    const [failed] = stepThrough(deleted, [{ type: 'io.done', completionId: commit.completionId!, ok: false }]);
    expect(routeOf(failed, lostPage)).toEqual({ owner: 's4', epoch: 1 });
    expect(copyOf(failed, lostPage)).toBeNull();
    const [declared, pushed] = stepThrough(deleted, [{ type: 'io.done', completionId: commit.completionId!, ok: true }]);
    expect(routeOf(declared, lostPage)).toEqual({ owner: 's1', epoch: 3 });
    expect(messages(pushed, 'route.update').map(({ to }) => to).sort()).toEqual(['s2', 's3']);
  });

  it('puts the page above a copy another member was receiving from the dead server, which that member then lets go', () => {
    // s4 had begun moving alpha/3 to s2 (epoch 2) when it died.
    const receiving: ReplicaRecord = { status: 'receiving', source: 's4', attempt: 1, epoch: 2 };
    const nodes: Nodes = { s1: started('s1'), s2: started('s2', { replicas: [{ pageKey: lostPage, record: receiving }] }), s3: started('s3') };
    const asks = declareThrough(nodes, 's1');
    expect(asks.at(-1)!.ok).toBe(true);
    expect(routeOf(nodes['s1']!, lostPage)).toEqual({ owner: 's1', epoch: 4 });
    // s2 learnt the route past its copy's epoch and let the partial copy go (its data deleted).
    expect(copyOf(nodes['s2']!, lostPage)).toEqual({ status: 'invalid', epoch: 4, owner: 's1', forwardTo: null });
    expect(asks.flatMap((each) => each.effects).some((effect) => effect.type === 'data.delete' && effect.reason === 'abandoned')).toBe(true);
  });

  it('declares nothing a member holds valid: a committed destination takes the page over instead, keeping its data', () => {
    // s2 committed a move of alpha/3 from s4 (epoch 2) and never learnt the flip.
    const nodes: Nodes = { s1: started('s1'), s2: started('s2', { replicas: [{ pageKey: lostPage, record: { status: 'valid', epoch: 2 } }] }), s3: started('s3') };
    const asks = declareThrough(nodes, 's1');
    expect(asks.at(-1)!.ok).toBe(true);
    expect(asks.flatMap((each) => each.effects).some((effect) => effect.type === 'data.delete')).toBe(false);
    expect(copyOf(nodes['s1']!, lostPage)).toBeNull();
    expect(copyOf(nodes['s2']!, lostPage)).toEqual({ status: 'valid', epoch: 2 });
    for (const id of ['s1', 's2', 's3']) expect(routeOf(nodes[id]!, lostPage)).toEqual({ owner: 's2', epoch: 2 });
  });

  it('declares nothing while a member holds it valid at an epoch no takeover fits (the refusal stands)', () => {
    // s2's copy is valid at epoch 5 while its table names s4 at 1: not a copy of s4's move, so no takeover; never thrown away.
    const nodes: Nodes = { s1: started('s1'), s2: started('s2', { replicas: [{ pageKey: lostPage, record: { status: 'valid', epoch: 5 } }] }), s3: started('s3') };
    const asks = declareThrough(nodes, 's1', 4);
    expect(asks.some((each) => each.ok)).toBe(false);
    expect(asks.some((each) => each.message.includes('1 held valid elsewhere'))).toBe(true);
    expect(asks.flatMap((each) => each.effects).some((effect) => effect.type === 'data.delete')).toBe(false);
    expect(copyOf(nodes['s2']!, lostPage)).toEqual({ status: 'valid', epoch: 5 });
  });

  it('learns a newer route a member reports instead of declaring (its own table was stale)', () => {
    // The page moved s4 -> s3 (epoch 2) and s1 and s2 missed the push: s3 owns it.
    const nodes: Nodes = {
      s1: started('s1'),
      s2: started('s2'),
      s3: started('s3', { replicas: [{ pageKey: lostPage, record: { status: 'valid', epoch: 2 } }], routes: [{ pageKey: lostPage, route: { owner: 's3', epoch: 2 } }] }),
    };
    const asks = declareThrough(nodes, 's1');
    expect(asks.some((each) => each.message.includes('1 route learnt newer than s1'))).toBe(true);
    expect(asks.flatMap((each) => each.effects).some((effect) => effect.type === 'data.delete')).toBe(false);
    expect(routeOf(nodes['s1']!, lostPage)).toEqual({ owner: 's3', epoch: 2 });
    expect(copyOf(nodes['s3']!, lostPage)).toEqual({ status: 'valid', epoch: 2 });
  });

  it('gives a page one owner when two members claim at once and the larger declares first: the smaller sees its route', () => {
    const nodes: Nodes = { s1: started('s1'), s2: started('s2'), s3: started('s3') };
    // s2 claims and gets every answer (s1 and s3 accept its claim).
    expect(ask(nodes, 's2', 's2-claims').message).toContain('s2 claims');
    expect(nodes['s1']!.lostClaim).toMatchObject({ servers: ['s4'], claimant: 's2' });
    // s1 claims too (smaller id): its own claim replaces s2's there; its checks are still on their way.
    const s1Claims = run(nodes, 's1', forget('s1-claims'));
    expect(reply(s1Claims).message).toContain('s1 claims');
    // s2 decides first; its route pushes to s1 are slow.
    const s2Decides = ask(nodes, 's2', 's2-decides', ({ to, message }) => to === 's1' && message.type === 'route.update');
    expect(s2Decides.message).toContain('declaring 1 page lost');
    expect(routeOf(nodes['s1']!, lostPage)).toEqual({ owner: 's4', epoch: 1 });
    // s1's checks arrive: s2 (no longer declaring) and s3 accept s1's claim and report s2's route.
    pump(nodes, 's1', s1Claims);
    expect(nodes['s2']!.lostClaim).toMatchObject({ servers: ['s4'], claimant: 's1' });
    const asks = declareThrough(nodes, 's1');
    expect(asks.some((each) => each.message.includes('1 route learnt newer than s1'))).toBe(true);
    expect(asks.flatMap((each) => each.effects).some((effect) => effect.type === 'data.delete')).toBe(false);
    expect(asks.at(-1)!.ok).toBe(true);
    expect(copyOf(nodes['s1']!, lostPage)).toBeNull();
    expect(copyOf(nodes['s2']!, lostPage)).toEqual({ status: 'valid', epoch: 3 });
    for (const id of ['s1', 's2', 's3']) expect(routeOf(nodes[id]!, lostPage)).toEqual({ owner: 's2', epoch: 3 });
  });

  it('gives a page one owner when two members claim at once and the smaller reaches the larger first: the larger never declares', () => {
    const nodes: Nodes = { s1: started('s1'), s2: started('s2'), s3: started('s3') };
    ask(nodes, 's2', 's2-claims');
    // s2 holds every report; s1's claim reaches it before the administrator asks s2 again.
    ask(nodes, 's1', 's1-claims');
    expect(nodes['s2']!.lostClaim).toMatchObject({ servers: ['s4'], claimant: 's1' });
    expect(nodes['s2']!.lostCheck).toBeNull();
    const s2Again = ask(nodes, 's2', 's2-again');
    expect(s2Again).toMatchObject({ ok: false, reason: 'declaringLost', message: expect.stringContaining('s1 is declaring the pages of s4 lost; ask s1') });
    expect(s2Again.effects.some((effect) => effect.type === 'data.delete')).toBe(false);
    const asks = declareThrough(nodes, 's1');
    expect(asks.at(-1)!.ok).toBe(true);
    expect(copyOf(nodes['s2']!, lostPage)).toBeNull();
    for (const id of ['s1', 's2', 's3']) expect(routeOf(nodes[id]!, lostPage)).toEqual({ owner: 's1', epoch: 3 });
  });

  it('refuses a claimant while a smaller claim stands, a claim about other servers, and every claim while it declares', () => {
    const nodes: Nodes = { s1: started('s1'), s2: started('s2'), s3: started('s3') };
    ask(nodes, 's1', 's1-claims');
    expect(nodes['s3']!.lostClaim).toMatchObject({ servers: ['s4'], claimant: 's1' });
    const check = (servers: string[]): NodeInput => ({ type: 'peer.message', from: 's2', message: { type: 'lost.check', membership: s4Draining, servers, round: 'r', pages: [lostPage] } });
    const refusalOf = (effects: readonly NodeEffect[]) => messages(effects, 'lost.answer')[0]?.message;
    expect(refusalOf(stepThrough(nodes['s3']!, [check(['s4'])])[1])).toMatchObject({ pages: null, refusal: expect.stringContaining("accepted s1's claim") });
    // A claim about other servers waits until this one is done (s3 drains too here, so the check would count).
    const bothDraining = changedMembership(s4Draining, { kind: 'drain', id: 's3' }) as Membership;
    const [s1Both] = stepThrough(nodes['s1']!, [{ type: 'peer.message', from: 's2', message: { type: 'membership.update', membership: bothDraining } }], () => true);
    const [, otherServers] = stepThrough(s1Both, [{ type: 'peer.message', from: 's2', message: { type: 'lost.check', membership: bothDraining, servers: ['s3'], round: 'r', pages: [] } }]);
    expect(refusalOf(otherServers)).toMatchObject({ pages: null });
    // While its own declaration is under way (the deletion not done), s1 refuses every claim.
    const [declaring] = stepThrough(nodes['s1']!, [forget('s1-decides')]);
    const [, busyFromS2] = stepThrough(declaring, [check(['s4'])]);
    expect(refusalOf(busyFromS2)).toMatchObject({ pages: null, refusal: expect.stringContaining('s1 is claiming or declaring pages lost itself') });
  });

  it('refuses, once it accepted a claim, a late commit of a move from the dead server', () => {
    const receiving: ReplicaRecord = { status: 'receiving', source: 's4', attempt: 1, epoch: 2 };
    const nodes: Nodes = { s1: started('s1'), s2: started('s2', { replicas: [{ pageKey: lostPage, record: receiving }] }), s3: started('s3') };
    ask(nodes, 's1', 's1-claims');
    expect(nodes['s2']!.lostClaim).toMatchObject({ servers: ['s4'], claimant: 's1' });
    const commit = { type: 'move.commit', pageKey: lostPage, attempt: 1, epoch: 2, freshCopy: false, sourceSequence: 0 } as unknown as PeerMessage;
    const [after, effects] = stepThrough(nodes['s2']!, [{ type: 'peer.message', from: 's4', message: commit }], () => true);
    expect(copyOf(after, lostPage)).toEqual(receiving);
    expect(messages(effects, 'move.committed')).toEqual([]);
    // Without the claim, the same commit is taken (the check above is what refuses it).
    const [unclaimed, taken] = stepThrough({ ...nodes['s2']!, lostClaim: null }, [{ type: 'peer.message', from: 's4', message: commit }], () => true);
    expect(copyOf(unclaimed, lostPage)?.status === 'valid' || messages(taken, 'move.committed').length > 0 || taken.some((effect) => effect.type === 'data.sync')).toBe(true);
  });

  it('waits for every live member to report, and a member answers only once the claim it accepted is durable', () => {
    const nodes: Nodes = { s1: started('s1'), s2: started('s2'), s3: started('s3') };
    const claim = ask(nodes, 's1', 's1-claims', ({ to }) => to === 's3');
    const checkToS3 = messages(claim.effects, 'lost.check').find(({ to }) => to === 's3')!.message;
    for (let again = 0; again < 3; again += 1) {
      const waiting = ask(nodes, 's1', `again-${again}`, ({ to }) => to === 's3');
      expect(waiting).toMatchObject({ ok: false, reason: 'waitingFor', message: expect.stringContaining('waiting for s3 to accept') });
      expect(waiting.effects.some((effect) => effect.type === 'data.delete')).toBe(false);
    }
    // s3's answer goes only once its commit of the claim completes.
    const [s3Asked, asked] = stepThrough(nodes['s3']!, [{ type: 'peer.message', from: 's1', message: checkToS3 }]);
    expect(messages(asked, 'lost.answer')).toEqual([]);
    const commit = asked.find((effect): effect is Extract<NodeEffect, { type: 'meta.commit' }> => effect.type === 'meta.commit')!;
    expect(commit.writes[0]).toEqual({ kind: 'lostClaim', claim: { servers: ['s4'], claimant: 's1', epoch: s4Draining.epoch } });
    expect(messages(stepThrough(s3Asked, [{ type: 'io.done', completionId: commit.completionId!, ok: false }])[1], 'lost.answer')).toEqual([]);
    const [, answered] = stepThrough(s3Asked, [{ type: 'io.done', completionId: commit.completionId!, ok: true }]);
    expect(messages(answered, 'lost.answer')[0]!.message).toMatchObject({ pages: [{ pageKey: lostPage, route: { owner: 's4', epoch: 1 }, copy: null }], refusal: null });
  });

  it('releases again after a pause a receiving copy whose release failed to commit (the route that passed it never comes again)', () => {
    const receiving: ReplicaRecord = { status: 'receiving', source: 's4', attempt: 1, epoch: 2 };
    const s2 = started('s2', { replicas: [{ pageKey: lostPage, record: receiving }] });
    const [releasing, learnt] = stepThrough(s2, [{ type: 'peer.message', from: 's1', message: { type: 'route.update', pageKey: lostPage, owner: 's1', epoch: 4 } }]);
    const release = learnt.find((effect): effect is Extract<NodeEffect, { type: 'meta.commit' }> => effect.type === 'meta.commit' && effect.completionId !== null)!;
    const [failed, afterFailure] = stepThrough(releasing, [{ type: 'io.done', completionId: release.completionId!, ok: false }]);
    expect(copyOf(failed, lostPage)).toEqual(receiving);
    const timer = afterFailure.find((effect): effect is Extract<NodeEffect, { type: 'timer.set' }> => effect.type === 'timer.set')!;
    expect(timer.timerId).toBe('release|alpha/3|2');
    const [released, retried] = stepThrough(failed, [{ type: 'timer.fired', timerId: timer.timerId }], (effect) => effect.type === 'meta.commit');
    expect(copyOf(released, lostPage)).toEqual({ status: 'invalid', epoch: 4, owner: 's1', forwardTo: null });
    expect(retried.some((effect) => effect.type === 'data.delete' && effect.reason === 'abandoned')).toBe(true);
  });

  it('refuses to report on a page whose commit is under way here, then reports it valid: never two owners (a review\'s trace)', () => {
    // s4 moved alpha/3 to s2 (Table 2, both pieces handed over) and asked it to commit just before it died.
    const nodes: Nodes = { s1: started('s1'), s2: started('s2'), s3: started('s3') };
    const copy: PeerMessage = { type: 'piece.copy', pageKey: lostPage, attempt: 1, epoch: 2, piece: 0, offsetBlocks: 0, lengthBlocks: 8, sequence: 1, handedOverBlocks: 8, sourceSequence: 1, dataToken: 'piece-0' };
    run(nodes, 's2', { type: 'peer.message', from: 's4', message: copy });
    expect(copyOf(nodes['s2']!, lostPage)).toMatchObject({ status: 'receiving', epoch: 2 });
    const commit: PeerMessage = { type: 'move.commit', pageKey: lostPage, attempt: 1, epoch: 2, freshCopy: false, sourceSequence: 1 };
    const [committing, syncing] = stepThrough(nodes['s2']!, [{ type: 'peer.message', from: 's4', message: commit }]);
    const sync = syncing.find((effect): effect is Extract<NodeEffect, { type: 'data.sync' }> => effect.type === 'data.sync');
    expect(sync, 'the commit syncs the page first').toBeDefined();
    nodes['s2'] = committing;
    // s1 claims: s2 accepts the claim but will not report on alpha/3 while its commit is under way.
    const claim = ask(nodes, 's1', 's1-claims');
    const refusal = claim.effects.flatMap((effect) => (effect.type === 'peer.send' && effect.message.type === 'lost.answer' && effect.message.pages === null ? [effect.message.refusal] : []));
    expect(refusal).toEqual([expect.stringContaining('s2 is committing a move of alpha/3')]);
    expect(ask(nodes, 's1', 's1-again').effects.some((effect) => effect.type === 'data.delete')).toBe(false);
    // The commit completes: s2's copy is valid, reported so, and taken over on the forget's check; nothing declared.
    run(nodes, 's2', { type: 'io.done', completionId: sync!.completionId, ok: true });
    expect(copyOf(nodes['s2']!, lostPage)).toEqual({ status: 'valid', epoch: 2 });
    const asks = declareThrough(nodes, 's1');
    expect(asks.at(-1)!.ok).toBe(true);
    expect(asks.flatMap((each) => each.effects).some((effect) => effect.type === 'data.delete')).toBe(false);
    for (const id of ['s1', 's2', 's3']) expect(routeOf(nodes[id]!, lostPage)).toEqual({ owner: 's2', epoch: 2 });
  });

  it('stops serving the pieces a Table 2 move from the dead server handed over, once the claim is accepted (a review\'s trace)', () => {
    const nodes: Nodes = { s1: started('s1'), s2: started('s2'), s3: started('s3') };
    // Piece 0 (blocks 0-3) of alpha/3 handed over to s2: s2 serves it itself.
    const copy: PeerMessage = { type: 'piece.copy', pageKey: lostPage, attempt: 1, epoch: 2, piece: 0, offsetBlocks: 0, lengthBlocks: 4, sequence: 1, handedOverBlocks: 4, sourceSequence: 1, dataToken: 'piece-0' };
    run(nodes, 's2', { type: 'peer.message', from: 's4', message: copy });
    const read = (requestId: string): NodeInput => ({ type: 'client.request', requestId, connectionId: 'c', operation: { kind: 'read', pageKey: lostPage, offsetBlocks: 0, lengthBlocks: 1 } } as NodeInput);
    expect(stepThrough(nodes['s2']!, [read('before')])[1].some((effect) => effect.type === 'data.read')).toBe(true);
    ask(nodes, 's1', 's1-claims');
    expect(nodes['s2']!.lostClaim).toMatchObject({ claimant: 's1' });
    const [, after] = stepThrough(nodes['s2']!, [read('after')]);
    expect(after.some((effect) => effect.type === 'data.read')).toBe(false);
  });

  it('lets a claim lapse once its claimant is drained (it may be dead), and never binds a server added again under a forgotten id', () => {
    const nodes: Nodes = { s1: started('s1'), s2: started('s2'), s3: started('s3') };
    ask(nodes, 's1', 's1-claims');
    // s1 dies too; the administrator drains it and asks s2 to forget both, declaring their pages lost.
    const bothDraining = changedMembership(s4Draining, { kind: 'drain', id: 's1' }) as Membership;
    for (const id of ['s2', 's3']) run(nodes, id, { type: 'peer.message', from: 's1', message: { type: 'membership.update', membership: bothDraining } });
    delete nodes['s1'];
    const both: NodeInput = { type: 'admin.changeMembership', requestId: 'both', change: { kind: 'forget', ids: ['s1', 's4'], declareLost: true } };
    const [, claimed] = stepThrough(nodes['s2']!, [both]);
    expect(reply(claimed).message).toContain('s2 claims the declaring of s1, s4\'s pages lost');
    // A claim about s4 made at epoch e does not bind a server added as s4 after it (a review: its moves never committed).
    const claim = { servers: ['s4'], claimant: 's1', epoch: s4Draining.epoch };
    const readded: Membership = { epoch: s4Draining.epoch + 2, members: [member('s1'), member('s2'), member('s3'), { ...member('s4'), generation: 1, joinedAt: s4Draining.epoch + 2 }], departed: [] };
    expect(claimStands(readded, claim)).toBe(false);
    expect(claimStands(s4Draining, claim)).toBe(true);
  });

  it('ignores a malformed claim check without throwing (a review: a null record threw out of the step)', () => {
    const s2 = started('s2');
    for (const message of [
      { type: 'lost.check', membership: null, servers: ['s4'], round: 'r', pages: [lostPage] },
      { type: 'lost.check', membership: s4Draining, servers: 's4', round: 'r', pages: [lostPage] },
      { type: 'lost.check', membership: s4Draining, servers: ['s4'], round: 7, pages: [lostPage] },
      { type: 'lost.check', membership: s4Draining, servers: ['s4'], round: 'r', pages: [{ volume: 1, page: -1 }] },
      { type: 'lost.answer', membership: s4Draining, servers: ['s4'], round: 'r', pages: [{ pageKey: null, route: 5, copy: 'x' }], refusal: null, deferTo: null },
    ]) {
      expect(() => stepThrough(s2, [{ type: 'peer.message', from: 's1', message: message as unknown as PeerMessage }])).not.toThrow();
    }
  });

  it('keeps refusing the dead server\'s handed-over piece after its claimant is drained, and a draining member does not claim (a second review\'s traces)', () => {
    const s1AndS4Draining = changedMembership(s4Draining, { kind: 'drain', id: 's1' }) as Membership;
    const write = (requestId: string): NodeInput => ({ type: 'client.request', requestId, connectionId: 'c', operation: { kind: 'write', pageKey: lostPage, offsetBlocks: 0, lengthBlocks: 1, fua: false } } as NodeInput);
    const pieceCopy: PeerMessage = { type: 'piece.copy', pageKey: lostPage, attempt: 1, epoch: 2, piece: 0, offsetBlocks: 0, lengthBlocks: 4, sequence: 1, handedOverBlocks: 4, sourceSequence: 1, dataToken: 'piece-0' };
    const nodes: Nodes = { s1: started('s1'), s2: started('s2'), s3: started('s3') };
    run(nodes, 's2', { type: 'peer.message', from: 's4', message: pieceCopy });
    ask(nodes, 's1', 's1-claims');
    // s1 is drained (s2 and s3 hear it, s1 not yet): s2 still writes nothing of the piece itself, though the claim lapsed.
    for (const id of ['s2', 's3']) run(nodes, id, { type: 'peer.message', from: 's3', message: { type: 'membership.update', membership: s1AndS4Draining } });
    expect(claimStands(nodes['s2']!.membership, nodes['s2']!.lostClaim)).toBe(false);
    const [, wrote] = stepThrough(nodes['s2']!, [write('w-after-drain')], () => true);
    expect(wrote.some((effect) => effect.type === 'data.write')).toBe(false);
    // s1 decides on its round at the old record, and s2 lets go of a copy that took no write since the claim.
    expect(ask(nodes, 's1', 's1-decides', ({ message }) => message.type === 'membership.update').message).toContain('declaring 1 page lost');
    expect(copyOf(nodes['s2']!, lostPage)?.status).toBe('invalid');
    // A member that is draining itself is refused as a claimant.
    const draining = started('s1', {}, s1AndS4Draining);
    expect(reply(stepThrough(draining, [forget('draining')])[1])).toMatchObject({ ok: false, message: expect.stringContaining('s1 is draining') });
  });

  it('tells a committed destination whose table is stale the newer route, which it then takes the page over at (a second review: the forget never ended)', () => {
    // s4 owned alpha/3 at 1; moved it to s3 and abandoned that (s4 at 3, known to s3 alone); moved it to s2 (copy 4),
    // which committed; s4 died before the flip. s2's table still says (s4, 1): no takeover fits until it learns (s4, 3).
    const nodes: Nodes = {
      s1: started('s1'),
      s2: started('s2', { replicas: [{ pageKey: lostPage, record: { status: 'valid', epoch: 4 } }] }),
      s3: started('s3', { replicas: [{ pageKey: lostPage, record: { status: 'invalid', epoch: 3, owner: 's4', forwardTo: null } }], routes: [{ pageKey: lostPage, route: { owner: 's4', epoch: 3 } }] }),
    };
    const asks = declareThrough(nodes, 's1', 12);
    expect(asks.at(-1)!.ok).toBe(true);
    expect(asks.flatMap((each) => each.effects).some((effect) => effect.type === 'data.delete')).toBe(false);
    expect(copyOf(nodes['s2']!, lostPage)).toEqual({ status: 'valid', epoch: 4 });
    for (const id of ['s1', 's2', 's3']) expect(routeOf(nodes[id]!, lostPage)).toEqual({ owner: 's2', epoch: 4 });
  });

  it('ignores a reported page key its text does not name back (a second review: an empty volume name stalled every round)', () => {
    const nodes: Nodes = { s1: started('s1'), s2: started('s2'), s3: started('s3') };
    const claim = run(nodes, 's1', forget('claim'));
    const check = messages(claim, 'lost.check')[0]!.message as Extract<PeerMessage, { type: 'lost.check' }>;
    const answer: PeerMessage = { type: 'lost.answer', membership: s4Draining, servers: ['s4'], round: check.round, pages: [{ pageKey: lostPage, route: { owner: 's4', epoch: 1 }, copy: null }, { pageKey: { volume: '', page: 3 }, route: { owner: 's4', epoch: 9 }, copy: null }], refusal: null, deferTo: null };
    run(nodes, 's1', { type: 'peer.message', from: 's2', message: answer });
    expect([...nodes['s1']!.routes.keys()]).not.toContain('/3');
    expect(nodes['s1']!.lostCheck?.reports['s2']).toBeUndefined();
  });

  it('lets no release of an abandoned move\'s copy overwrite the record of the page it is declaring (a third review: invalid after a restart)', () => {
    // s4 had moved alpha/3 to s1 and abandoned the move (s4 at 3); s1's release of its receiving copy failed to commit.
    const nodes: Nodes = { s1: started('s1', { replicas: [{ pageKey: lostPage, record: { status: 'receiving', source: 's4', attempt: 1, epoch: 2 } }] }), s2: started('s2'), s3: started('s3') };
    const [releasing, learnt] = stepThrough(nodes['s1']!, [{ type: 'peer.message', from: 's3', message: { type: 'route.update', pageKey: lostPage, owner: 's4', epoch: 3 } }]);
    const release = learnt.find((effect): effect is Extract<NodeEffect, { type: 'meta.commit' }> => effect.type === 'meta.commit' && effect.completionId !== null)!;
    const [failed, afterFailure] = stepThrough(releasing, [{ type: 'io.done', completionId: release.completionId!, ok: false }]);
    const timer = afterFailure.find((effect): effect is Extract<NodeEffect, { type: 'timer.set' }> => effect.type === 'timer.set')!;
    nodes['s1'] = failed;
    ask(nodes, 's1', 'claim');
    // The deciding ask; its deletion completes and the declared record's commit is issued, not yet durable.
    const [deciding, decided] = stepThrough(nodes['s1']!, [forget('decide')]);
    const deletion = decided.find((effect): effect is Extract<NodeEffect, { type: 'data.delete' }> => effect.type === 'data.delete' && effect.reason === 'declaredLost')!;
    const [deleted] = stepThrough(deciding, [{ type: 'io.done', completionId: deletion.completionId!, ok: true }]);
    // Neither the retry timer nor a route heard again releases the copy meanwhile: no replica write after the declaration's.
    const [, racing] = stepThrough(deleted, [{ type: 'timer.fired', timerId: timer.timerId }, { type: 'peer.message', from: 's3', message: { type: 'route.update', pageKey: lostPage, owner: 's4', epoch: 3 } }]);
    expect(racing.filter((effect) => effect.type === 'meta.commit' && effect.writes.some((write) => write.kind === 'replica'))).toEqual([]);
  });

  it('keeps an accepted claim across a restart', () => {
    const nodes: Nodes = { s1: started('s1'), s2: started('s2'), s3: started('s3') };
    const effects = ask(nodes, 's1', 's1-claims').effects;
    expect(effects.some((effect) => effect.type === 'meta.commit' && effect.writes.some((write) => write.kind === 'lostClaim' && write.claim.claimant === 's1'))).toBe(true);
    const restarted = nodeStep(emptyNodeState(defaultNodeConfig('s3', group), 2), { type: 'node.start', durable: { ...initialDurableRecords([alpha], 's3'), membership: s4Draining, lostClaim: { servers: ['s4'], claimant: 's1', epoch: s4Draining.epoch } } })[0];
    const [, answered] = stepThrough(restarted, [{ type: 'peer.message', from: 's2', message: { type: 'lost.check', membership: s4Draining, servers: ['s4'], round: 'r', pages: [lostPage] } }]);
    expect(messages(answered, 'lost.answer')[0]!.message).toMatchObject({ pages: null });
  });
});
