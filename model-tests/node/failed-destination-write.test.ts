import { describe, expect, it } from 'vitest';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, isTimerLive, nodeStep } from '../../machines/node/node.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';

/**
 * A destination's block versions must count only data that is on its disk
 * (block-versions.ts, "Confirmed and claimed"): a version set when data
 * arrived, before its write was done, made the destination skip, and
 * acknowledge as written, an older write whose data then never landed when
 * the newer write failed. Table 2 trace: a write A (before the piece's
 * hand-over began) and a write B (after) to the same block of the piece in
 * transit both fail at the destination's disk; A's retry was skipped there
 * and answered written, so A was acknowledged to its client and the
 * hand-over went ahead (it waits for A, not for B); B was cancelled and
 * failed, and the destination served the piece without A. The later cases
 * (a second review) pin what taking such marks back missed: an older part
 * arriving while the newer write was still under way, and writes of one
 * sequence, one failing after another succeeded.
 */
const pageKey = { volume: 'v', page: 0 };
const volume: VolumeDefinition = { name: 'v', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1'] };
type Id = 's1' | 's2';

class Pair {
  nodes: Record<Id, NodeState>;
  inbox: Array<{ from: Id; to: Id; message: PeerMessage }> = [];
  timers: Record<Id, string[]> = { s1: [], s2: [] };
  replies: Array<{ requestId: string; ok: boolean; dataToken: string | null }> = [];
  /** The token whose bytes each block of page 0 holds on s2's disk (writes that succeeded). */
  disk: Array<string | null> = Array<string | null>(8).fill(null);
  /** Data writes on s2 whose source token matches fail. */
  failing: RegExp | null = null;
  /** While set, s2's data writes wait here to be completed by the test (`complete`). */
  held: Array<Extract<NodeEffect, { type: 'data.write' }>> | null = null;

  constructor() {
    const start = (id: Id) => nodeStep(emptyNodeState({ ...defaultNodeConfig(id, ['s1', 's2']), traceTransitions: false }, 1), { type: 'node.start', durable: initialDurableRecords([volume], id) })[0];
    this.nodes = { s1: start('s1'), s2: start('s2') };
  }

  /** Steps `id`; every I/O its effects start completes at once, successfully unless it is a failing write at s2. */
  step(id: Id, first: NodeInput): void {
    const queue: NodeInput[] = [first];
    for (let input = queue.shift(); input; input = queue.shift()) {
      const [next, effects] = nodeStep(this.nodes[id], input);
      this.nodes[id] = next;
      for (const effect of effects) {
        if (effect.type === 'peer.send') this.inbox.push({ from: id, to: effect.to as Id, message: effect.message });
        else if (effect.type === 'timer.set') this.timers[id].push(effect.timerId);
        else if (effect.type === 'client.reply') this.replies.push({ requestId: effect.requestId, ok: effect.outcome.status === 'ok', dataToken: effect.dataToken });
        else if ('completionId' in effect && typeof effect.completionId === 'string') {
          let ok = true;
          if (effect.type === 'data.write' && id === 's2' && this.held) {
            this.held.push(effect);
            continue;
          }
          if (effect.type === 'data.write' && id === 's2') {
            ok = !(this.failing?.test(effect.fromToken) ?? false);
            if (ok && effect.pageKey.page === 0) for (let block = 0; block < effect.lengthBlocks; block += 1) this.disk[effect.offsetBlocks + block] = effect.fromToken;
          }
          queue.push({ type: 'io.done', completionId: effect.completionId, ok });
        }
      }
    }
  }

  /** Completes s2's first held write from `token`. */
  complete(token: string, ok: boolean): void {
    const index = this.held!.findIndex((effect) => effect.fromToken === token);
    expect(index).toBeGreaterThanOrEqual(0);
    const [write] = this.held!.splice(index, 1);
    if (ok) for (let block = 0; block < write!.lengthBlocks; block += 1) this.disk[write!.offsetBlocks + block] = token;
    this.step('s2', { type: 'io.done', completionId: write!.completionId, ok });
  }

  /** Delivers the first message in flight that matches. */
  deliver(match: (message: PeerMessage, to: Id) => boolean): PeerMessage {
    const index = this.inbox.findIndex((envelope) => match(envelope.message, envelope.to));
    expect(index, 'a matching message is in flight').toBeGreaterThanOrEqual(0);
    const [envelope] = this.inbox.splice(index, 1);
    this.step(envelope!.to, { type: 'peer.message', from: envelope!.from, message: envelope!.message });
    return envelope!.message;
  }

  /** Delivers every message in flight of one of `types`, and what they cause, until none is left. */
  settle(types: ReadonlyArray<PeerMessage['type']>): void {
    for (let round = 0; round < 50 && this.inbox.some((envelope) => types.includes(envelope.message.type)); round += 1) this.deliver((message) => types.includes(message.type));
  }

  /** Fires the live timers of `id` whose name starts with `prefix`. */
  fire(id: Id, prefix: string): number {
    const live = this.timers[id].filter((timerId) => timerId.startsWith(prefix) && isTimerLive(this.nodes[id], timerId));
    this.timers[id] = this.timers[id].filter((timerId) => !live.includes(timerId));
    for (const timerId of live) this.step(id, { type: 'timer.fired', timerId });
    return live.length;
  }
}

const writeBlock1 = (requestId: string): NodeInput => ({ type: 'client.request', requestId, connectionId: 'c', operation: { kind: 'write', pageKey, offsetBlocks: 1, lengthBlocks: 1, fua: false } });
const partOf = (requestId: string) => (message: PeerMessage) => message.type === 'block.write' && message.requestId.endsWith(requestId);

describe('a move data write that fails at the destination', () => {
  it('leaves no block version behind that lets an older write be skipped and acknowledged (Table 2)', () => {
    const pair = new Pair();
    pair.step('s1', { type: 'admin.move', requestId: 'm', pageKey, to: 's2', kind: 'piecewise' });
    // Piece 0's copy is read at s1; then client write A to block 1 (piece 0, in transit) goes to both sides.
    pair.step('s1', writeBlock1('A'));
    pair.failing = /client:A$|client:B$/;
    pair.deliver((message) => message.type === 'piece.copy');
    const partA = pair.deliver(partOf('A')) as Extract<PeerMessage, { type: 'block.write' }>; // fails on s2's disk: answered not ok, left outstanding at s1
    pair.settle(['piece.stored', 'block.written']);
    // Piece 0 is copied: its hand-over waits for A, but not for B, begun after it.
    expect(pair.inbox.some((envelope) => envelope.message.type === 'piece.handover')).toBe(false);
    pair.step('s1', writeBlock1('B'));
    pair.deliver(partOf('B')); // fails on s2's disk too
    pair.settle(['block.written']);
    // A's retry (its timer fires first), the disk working again for it.
    pair.failing = /client:B$/;
    expect(pair.fire('s1', `serve|${partA.requestId}|`)).toBe(1);
    pair.deliver(partOf('A'));
    pair.settle(['block.written']);
    // A is acknowledged to its client: s2 must hold it, as it is about to serve piece 0 (without the fix, A's retry was
    // skipped there for B's mark and answered written, and block 1 still held piece 0's copy).
    expect(pair.replies.find((reply) => reply.requestId === 'A')?.ok).toBe(true);
    expect(pair.disk[1], 'block 1 on the destination once A is acknowledged').toBe('s1>client:A');
    // The rest of the trace: the hand-over goes ahead, B is cancelled, the destination serves piece 0.
    pair.settle(['piece.handover', 'piece.handedOver', 'piece.copy', 'piece.stored']);
    for (let round = 0; round < 5 && !pair.replies.some((reply) => reply.requestId === 'B'); round += 1) {
      pair.fire('s1', 'serve|');
      pair.settle(['block.cancel', 'block.written', 'block.write']);
    }
    expect(pair.replies.find((reply) => reply.requestId === 'B')?.ok).toBe(false);
    pair.step('s2', { type: 'client.request', requestId: 'R', connectionId: 'c2', operation: { kind: 'read', pageKey, offsetBlocks: 1, lengthBlocks: 1, fua: false } });
    expect(pair.inbox.some((envelope) => envelope.message.type === 'request.forward')).toBe(false);
    expect(pair.replies.find((reply) => reply.requestId === 'R')?.ok).toBe(true);
    expect(pair.disk[1]).toBe('s1>client:A');
  });

  it('at the destination: an older part arriving after a newer part failed there is written, not acknowledged unwritten', () => {
    const pair = new Pair();
    const to2 = (message: PeerMessage): NodeInput => ({ type: 'peer.message', from: 's1', message });
    pair.step('s2', to2({ type: 'piece.copy', pageKey, attempt: 1, epoch: 2, piece: 0, offsetBlocks: 0, lengthBlocks: 4, sequence: 1, handedOverBlocks: 0, sourceSequence: 1, dataToken: 'copy0' }));
    const part = (requestId: string, sequence: number): NodeInput => to2({ type: 'block.write', requestId, pageKey, attempt: 1, epoch: 2, offsetBlocks: 1, lengthBlocks: 1, sequence, fua: false, dataToken: `client:${requestId}`, senderIncarnation: 0 });
    pair.failing = /client:[AB]$/;
    pair.step('s2', part('A', 2));
    pair.step('s2', part('B', 3));
    pair.failing = null;
    pair.inbox = [];
    pair.step('s2', part('A', 2));
    const answers = pair.inbox.flatMap((envelope) => (envelope.message.type === 'block.written' ? [envelope.message] : []));
    expect(answers).toEqual([expect.objectContaining({ requestId: 'A', ok: true })]);
    expect(pair.disk[1]).toBe('s1>client:A');
  });

  const toS2 = (message: PeerMessage): NodeInput => ({ type: 'peer.message', from: 's1', message });
  const partAt = (requestId: string, sequence: number): NodeInput => toS2({ type: 'block.write', requestId, pageKey, attempt: 1, epoch: 2, offsetBlocks: 1, lengthBlocks: 1, sequence, fua: false, dataToken: requestId, senderIncarnation: 0 });
  const receiving = (): Pair => {
    const pair = new Pair();
    pair.step('s2', toS2({ type: 'piece.copy', pageKey, attempt: 1, epoch: 2, piece: 0, offsetBlocks: 0, lengthBlocks: 4, sequence: 1, handedOverBlocks: 0, sourceSequence: 1, dataToken: 'copy0' }));
    pair.held = [];
    pair.inbox = [];
    return pair;
  };
  const writesOfBlock1 = (pair: Pair) => pair.held!.filter((effect) => effect.offsetBlocks <= 1 && effect.offsetBlocks + effect.lengthBlocks > 1).length;

  it('leaves no version from two overlapping writes that both fail, the later one taken while the earlier was under way', () => {
    const pair = receiving();
    pair.step('s2', partAt('A', 3));
    pair.step('s2', partAt('B', 4));
    pair.complete('s1>A', false);
    pair.complete('s1>B', false);
    // The retry of an older write U (its first try lost): neither A nor B stands on the disk, so U is written.
    pair.step('s2', partAt('U', 2));
    expect(writesOfBlock1(pair)).toBe(1);
  });

  it('confirms the version of a retry of the same part that succeeds after the first try failed', () => {
    const pair = receiving();
    pair.step('s2', partAt('A', 3));
    pair.step('s2', partAt('A', 3));
    pair.complete('s1>A', false);
    pair.complete('s1>A', true);
    // An older write's part arriving late is skipped: A, newer, is on the disk.
    pair.step('s2', partAt('U', 2));
    expect(writesOfBlock1(pair)).toBe(0);
  });
});

describe('an older part that finds a newer write on its way to the disk, which then fails', () => {
  it('A\'s retry arrives while B (newer) is still on its way to the disk; B then fails: A must still be on the destination', () => {
    const pair = new Pair();
    pair.step('s1', { type: 'admin.move', requestId: 'm', pageKey, to: 's2', kind: 'piecewise' });
    pair.step('s1', writeBlock1('A'));
    pair.failing = /client:A$/;
    pair.deliver((message) => message.type === 'piece.copy');
    const partA = pair.deliver(partOf('A')) as Extract<PeerMessage, { type: 'block.write' }>; // fails on s2's disk
    pair.settle(['piece.stored', 'block.written']);
    expect(pair.inbox.some((envelope) => envelope.message.type === 'piece.handover')).toBe(false);
    // B (newer) reaches s2 and its write is still under way there when A's retry arrives.
    pair.held = [];
    pair.step('s1', writeBlock1('B'));
    pair.deliver(partOf('B'));
    pair.failing = null;
    expect(pair.fire('s1', `serve|${partA.requestId}|`)).toBe(1);
    // B, newer, is on its way to s2's disk and A is not there: A is answered not done (skipped and answered written,
    // as it once was, A would be lost when B fails).
    pair.deliver(partOf('A'));
    pair.settle(['block.written']);
    expect(pair.replies.find((reply) => reply.requestId === 'A')).toBeUndefined();
    // B's write then fails on s2's disk; A's next retry is written there, and A is acknowledged.
    pair.complete('s1>client:B', false);
    pair.held = null;
    pair.settle(['block.written']);
    expect(pair.fire('s1', `serve|${partA.requestId}|`)).toBe(1);
    pair.deliver(partOf('A'));
    pair.settle(['block.written']);
    expect(pair.replies.find((reply) => reply.requestId === 'A')?.ok).toBe(true);
    pair.settle(['piece.handover', 'piece.handedOver', 'piece.copy', 'piece.stored']);
    for (let round = 0; round < 5 && !pair.replies.some((reply) => reply.requestId === 'B'); round += 1) {
      pair.fire('s1', 'serve|');
      pair.settle(['block.cancel', 'block.written', 'block.write']);
    }
    pair.step('s2', { type: 'client.request', requestId: 'R', connectionId: 'c2', operation: { kind: 'read', pageKey, offsetBlocks: 1, lengthBlocks: 1, fua: false } });
    expect(pair.replies.find((reply) => reply.requestId === 'B')?.ok).toBe(false);
    expect(pair.inbox.some((envelope) => envelope.message.type === 'request.forward')).toBe(false);
    expect(pair.replies.find((reply) => reply.requestId === 'R')?.ok).toBe(true);
    // s2 serves piece 0: block 1 must hold A, acknowledged (it holds piece 0's copy, older than A).
    expect(pair.disk[1]).toBe('s1>client:A');
  });
});

describe('a failed try of a part whose retry, of the same sequence, already succeeded', () => {
  it('FUA: try 2 of A (same sequence) completes ok first, then try 1\'s sync fails; a late duplicate of older U must not be written over A', () => {
    const pair = new Pair();
    pair.step('s2', { type: 'peer.message', from: 's1', message: { type: 'piece.copy', pageKey, attempt: 1, epoch: 2, piece: 0, offsetBlocks: 0, lengthBlocks: 4, sequence: 1, handedOverBlocks: 0, sourceSequence: 1, dataToken: 'copy0' } });
    const part = (requestId: string, sequence: number, fua: boolean): NodeInput => ({ type: 'peer.message', from: 's1', message: { type: 'block.write', requestId, pageKey, attempt: 1, epoch: 2, offsetBlocks: 1, lengthBlocks: 1, sequence, fua, dataToken: requestId, senderIncarnation: 0 } });
    // U (sequence 2) lands and is answered written.
    pair.step('s2', part('U', 2, false));
    expect(pair.disk[1]).toBe('s1>U');
    pair.held = [];
    pair.inbox = [];
    // A (sequence 3, FUA): try 1's write is on its way (its sync slow); the source's retry, try 2, arrives.
    pair.step('s2', part('A', 3, true));
    pair.step('s2', part('A', 3, true));
    expect(pair.held.length).toBe(2);
    // Try 2 (written after try 1, synced) completes first: A is answered written.
    const [try1, try2] = pair.held as [Extract<NodeEffect, { type: 'data.write' }>, Extract<NodeEffect, { type: 'data.write' }>];
    pair.held = [];
    pair.disk[1] = 's1>A';
    pair.step('s2', { type: 'io.done', completionId: try2.completionId, ok: true });
    expect(pair.inbox.some((envelope) => envelope.message.type === 'block.written' && envelope.message.ok)).toBe(true);
    // Try 1's sync then fails (its bytes are on the disk; try 2's sync covered them anyway).
    pair.step('s2', { type: 'io.done', completionId: try1.completionId, ok: false });
    // A late duplicate of U's part (a network duplicate, or a retry whose first try had landed): older than A.
    pair.held = null;
    pair.step('s2', part('U', 2, false));
    expect(pair.disk[1], 'block 1 holds A, acknowledged, not the older U').toBe('s1>A');
  });
});

describe('the destination\'s own writes share one sequence (directWriteSequence): a failed FUA one and a later one that succeeded', () => {
  it('W1 (FUA) and W2 at s2, serving handed-over piece 0; W2 completes first (it does not wait for W1\'s sync), W1 fails; a late part of older A is then written over W2', () => {
    const pair = new Pair();
    pair.step('s1', { type: 'admin.move', requestId: 'm', pageKey, to: 's2', kind: 'piecewise' });
    pair.step('s1', writeBlock1('A'));
    pair.deliver((message) => message.type === 'piece.copy');
    const partA = pair.deliver(partOf('A')) as Extract<PeerMessage, { type: 'block.write' }>;
    pair.settle(['piece.stored', 'block.written', 'piece.handover', 'piece.handedOver', 'piece.copy']);
    expect(pair.replies.find((reply) => reply.requestId === 'A')?.ok).toBe(true);
    // s2 serves piece 0 itself now.
    pair.held = [];
    const write = (requestId: string, fua: boolean): NodeInput => ({ type: 'client.request', requestId, connectionId: 'c2', operation: { kind: 'write', pageKey, offsetBlocks: 1, lengthBlocks: 1, fua } });
    pair.step('s2', write('W1', true));
    pair.step('s2', write('W2', false));
    expect(pair.inbox.some((envelope) => envelope.message.type === 'request.forward')).toBe(false);
    expect(pair.held.length).toBe(2);
    const [w1, w2] = pair.held as [Extract<NodeEffect, { type: 'data.write' }>, Extract<NodeEffect, { type: 'data.write' }>];
    expect(w1.durable).toBe(true);
    pair.held = [];
    // Both are written in issue order; W2, not durable, is answered at once, W1 waits for its sync, which fails.
    pair.disk[1] = w2.fromToken;
    pair.step('s2', { type: 'io.done', completionId: w2.completionId, ok: true });
    expect(pair.replies.find((reply) => reply.requestId === 'W2')?.ok).toBe(true);
    pair.step('s2', { type: 'io.done', completionId: w1.completionId, ok: false });
    expect(pair.replies.find((reply) => reply.requestId === 'W1')?.ok).toBe(false);
    // A duplicate of A's part (acknowledged long ago) arrives late: it must be skipped, A being older than W2.
    pair.held = null;
    pair.step('s2', { type: 'peer.message', from: 's1', message: partA });
    expect(pair.disk[1], 'block 1 keeps W2, acknowledged after A').toBe(w2.fromToken);
  });
});
