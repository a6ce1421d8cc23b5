import { describe, expect, it } from 'vitest';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, isTimerLive, nodeStep } from '../../machines/node/node.js';
import { progressTimerId } from '../../machines/migration/move-setup.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { ioDone } from './effects-of-step.js';

/**
 * A piece longer than `copyChunkBytesMax` is copied in chunks: the source
 * reads and sends every chunk at once, the destination writes, syncs and
 * acknowledges each, and the source's move machine hears `piece.copied` only
 * once the acknowledged chunks cover the piece — a duplicated acknowledgement
 * or one of an earlier attempt never stands in for a missing chunk. The
 * explorer's pieces are one block each, so only these tests drive chunks
 * through the node (the cluster tests drive them through real servers).
 */
const pageKey = { volume: 'alpha', page: 0 };
// Pieces of 16 blocks of 512 B (8 KiB), copied in chunks of 4 blocks (2 KiB): four chunks per piece.
const alpha: VolumeDefinition = { name: 'alpha', pageCount: 1, pageSizeBlocks: 32, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1'] };
const chunkBytesMax = 2048;

function started(self: string): NodeState {
  const config = { ...defaultNodeConfig(self, ['s1', 's2']), copyChunkBytesMax: chunkBytesMax };
  return nodeStep(emptyNodeState(config, 1), { type: 'node.start', durable: initialDurableRecords([alpha], self) })[0];
}

function run(state: NodeState, inputs: readonly NodeInput[]): [NodeState, NodeEffect[]] {
  let current = state;
  const effects: NodeEffect[] = [];
  for (const input of inputs) {
    const [next, more] = nodeStep(current, input);
    current = next;
    effects.push(...more);
  }
  return [current, effects];
}

function ofType<T extends NodeEffect['type']>(effects: readonly NodeEffect[], type: T): Array<Extract<NodeEffect, { type: T }>> {
  return effects.filter((effect): effect is Extract<NodeEffect, { type: T }> => effect.type === type);
}

function sent<T extends PeerMessage['type']>(effects: readonly NodeEffect[], type: T): Array<Extract<PeerMessage, { type: T }>> {
  return ofType(effects, 'peer.send').flatMap((effect) => (effect.message.type === type ? [effect.message as Extract<PeerMessage, { type: T }>] : []));
}

/** The source with its piecewise move of page 0 copying piece 0 (its first checkpoint durable), and the chunks it sent. */
function sourceCopying(): [NodeState, Array<Extract<PeerMessage, { type: 'piece.copy' }>>] {
  const [moving, begun] = run(started('s1'), [{ type: 'admin.move', requestId: 'm', pageKey, to: 's2', kind: 'piecewise' }]);
  const [reading, reads] = run(moving, ioDone(ofType(begun, 'meta.commit')));
  const [copying, sends] = run(reading, ioDone(ofType(reads, 'data.read')));
  return [copying, sent(sends, 'piece.copy')];
}

function stage(state: NodeState): unknown {
  return state.moves['alpha/0']?.snapshot.value;
}

describe('a piece copied in chunks', () => {
  it('is read and sent as chunks of at most copyChunkBytesMax that tile the piece', () => {
    const [, copies] = sourceCopying();
    expect(copies.map((copy) => [copy.piece, copy.offsetBlocks, copy.lengthBlocks])).toEqual([[0, 0, 4], [0, 4, 4], [0, 8, 4], [0, 12, 4]]);
    expect(new Set(copies.map((copy) => copy.dataToken)).size).toBe(4);
  });

  it('counts as copied only once the destination has stored every chunk, durably, whatever their order', () => {
    const [source, copies] = sourceCopying();
    // The destination writes and syncs each chunk, and acknowledges it with its own range once both are done.
    let destination = started('s2');
    const acks: Array<Extract<PeerMessage, { type: 'piece.stored' }>> = [];
    let recordCommits = 0;
    for (const copy of [...copies].reverse()) {
      const [receiving, io] = run(destination, [{ type: 'peer.message', from: 's1', message: copy }]);
      expect(ofType(io, 'data.sync')).toHaveLength(1);
      expect(sent(io, 'piece.stored')).toEqual([]);
      const [stored, done] = run(receiving, ioDone([...ofType(io, 'data.write'), ...ofType(io, 'data.sync')]));
      destination = stored;
      const recordCommit = ofType(io, 'meta.commit').filter((commit) => commit.writes.some((write) => write.kind === 'replica' && write.record.status === 'receiving'));
      if (recordCommit.length > 0) {
        // The first chunk makes this server a receiver: its chunk is durable, but no acknowledgement goes out until the
        // receiving record is durable too.
        recordCommits += 1;
        expect(sent(done, 'piece.stored')).toEqual([]);
        const [durable, released] = run(destination, ioDone(recordCommit));
        destination = durable;
        acks.push(...sent(released, 'piece.stored'));
      } else {
        acks.push(...sent(done, 'piece.stored'));
      }
    }
    expect(recordCommits).toBe(1);
    expect(acks.map((ack) => [ack.offsetBlocks, ack.lengthBlocks])).toEqual([[12, 4], [8, 4], [4, 4], [0, 4]]);

    let state = source;
    const progressTimer = `move|alpha/0|${progressTimerId(source.moves['alpha/0']!.snapshot.context)}`;
    for (const ack of acks.slice(0, 3)) {
      // A duplicated acknowledgement must not count twice; a chunk stored is progress, so the progress timer starts again.
      const [next, effects] = run(state, [{ type: 'peer.message', from: 's2', message: ack }, { type: 'peer.message', from: 's2', message: ack }]);
      state = next;
      expect(stage(state)).toEqual({ moving: { startPiece: 'copying' } });
      expect(ofType(effects, 'timer.set').map((timer) => timer.timerId)).toEqual([progressTimer]);
      expect(isTimerLive(state, progressTimer)).toBe(true);
    }
    const [finishing, effects] = run(state, [{ type: 'peer.message', from: 's2', message: acks[3]! }]);
    expect(stage(finishing)).toEqual({ moving: { finishPiece: 'persisting' } });
    expect(finishing.moves['alpha/0']?.chunksStored).toBeUndefined();
    // The piece's reads move to the destination only once it confirms it still holds, durably, all it took this attempt.
    expect(ofType(effects, 'meta.commit')).toEqual([]);
    const [handover] = sent(effects, 'piece.handover');
    expect(handover).toMatchObject({ attempt: copies[0]!.attempt, piece: 0 });
    const [confirming, confirmation] = run(destination, [{ type: 'peer.message', from: 's1', message: handover! }]);
    const [, answered] = run(confirming, ioDone(ofType(confirmation, 'data.sync')));
    const [handedOver] = sent(answered, 'piece.handedOver');
    expect(handedOver).toMatchObject({ attempt: copies[0]!.attempt, piece: 0, ok: true });
    const [, persisting] = run(finishing, [{ type: 'peer.message', from: 's2', message: handedOver! }]);
    expect(ofType(persisting, 'meta.commit').map((commit) => commit.writes[0]?.kind)).toEqual(['move']);
  });

  it('ignores acknowledgements of another attempt or piece, and ranges that are not its chunks', () => {
    const [source, copies] = sourceCopying();
    const ack = (copy: Extract<PeerMessage, { type: 'piece.copy' }>, change: Partial<Extract<PeerMessage, { type: 'piece.stored' }>> = {}): NodeInput => ({
      type: 'peer.message', from: 's2',
      message: { type: 'piece.stored', pageKey, attempt: copy.attempt, epoch: copy.epoch, piece: copy.piece, offsetBlocks: copy.offsetBlocks, lengthBlocks: copy.lengthBlocks, ...change },
    });
    const strays = copies.flatMap((copy) => [ack(copy, { attempt: copy.attempt + 1 }), ack(copy, { attempt: copy.attempt - 1 }), ack(copy, { piece: 1 })]);
    strays.push(ack(copies[0]!, { lengthBlocks: 8 }), ack(copies[0]!, { offsetBlocks: 2 }), ack(copies[3]!, { offsetBlocks: 16 }));
    // Strays before and between true chunks neither complete the piece nor wipe out the chunks already counted: the
    // fourth true chunk completes it.
    const [three] = run(source, [...strays, ...copies.slice(0, 3).map((copy) => ack(copy)), ...strays]);
    expect(stage(three)).toEqual({ moving: { startPiece: 'copying' } });
    expect(stage(run(three, [ack(copies[3]!)])[0])).toEqual({ moving: { finishPiece: 'persisting' } });
  });

  it('is one chunk, acknowledged as the whole piece, when the piece fits in copyChunkBytesMax', () => {
    const config = { ...defaultNodeConfig('s1', ['s1', 's2']), copyChunkBytesMax: 8192 };
    const [s1] = nodeStep(emptyNodeState(config, 1), { type: 'node.start', durable: initialDurableRecords([alpha], 's1') });
    const [moving, begun] = run(s1, [{ type: 'admin.move', requestId: 'm', pageKey, to: 's2', kind: 'piecewise' }]);
    const [reading, reads] = run(moving, ioDone(ofType(begun, 'meta.commit')));
    expect(ofType(reads, 'data.read').map((read) => [read.offsetBlocks, read.lengthBlocks])).toEqual([[0, 16]]);
    const [copying, sends] = run(reading, ioDone(ofType(reads, 'data.read')));
    const [copy] = sent(sends, 'piece.copy');
    const [finishing] = run(copying, [{ type: 'peer.message', from: 's2', message: { type: 'piece.stored', pageKey, attempt: copy!.attempt, epoch: copy!.epoch, piece: 0, offsetBlocks: 0, lengthBlocks: 16 } }]);
    expect(stage(finishing)).toEqual({ moving: { finishPiece: 'persisting' } });
  });
});

/**
 * A piece's hand-over (Table 2) fences that piece's reads only: while the
 * source waits for the destination to confirm piece 0 and for its finish
 * checkpoint, a write to piece 1 (still at the source) is served at once, a
 * write to piece 0 goes to both sides at once (as the piece in transit's
 * writes do), and a read of piece 0 waits until the hand-over is durable, then
 * goes to the destination. The hand-over waits for the parts of writes begun
 * before it, never for those begun after: under a steady stream of writes it
 * would otherwise never be sent. The page as a whole was fenced once, holding
 * its every request for a round trip, a destination sync and a checkpoint,
 * four times per move; then the piece's writes were held too.
 */
describe('a piece being handed over', () => {
  const request = (requestId: string, kind: 'read' | 'write', offsetBlocks: number): NodeInput => ({
    type: 'client.request', requestId, connectionId: 'test', operation: { kind, pageKey, offsetBlocks, lengthBlocks: 1, fua: false },
  });
  const storedAll = (copies: ReadonlyArray<Extract<PeerMessage, { type: 'piece.copy' }>>): NodeInput[] => copies.map((copy): NodeInput => ({
    type: 'peer.message', from: 's2',
    message: { type: 'piece.stored', pageKey, attempt: copy.attempt, epoch: copy.epoch, piece: copy.piece, offsetBlocks: copy.offsetBlocks, lengthBlocks: copy.lengthBlocks },
  }));

  it('holds reads of that piece only, and lets its writes reach both sides', () => {
    const [source, copies] = sourceCopying();
    const [handingOver, handoverEffects] = run(source, storedAll(copies));
    expect(stage(handingOver)).toEqual({ moving: { finishPiece: 'persisting' } });
    const [handover] = sent(handoverEffects, 'piece.handover');
    expect(handover).toMatchObject({ piece: 0 });
    const [afterOther, otherEffects] = run(handingOver, [request('other-piece', 'write', 20)]);
    expect(ofType(otherEffects, 'data.write').map((effect) => effect.offsetBlocks), 'piece 1 is written at the source at once').toEqual([20]);
    const [afterWrite, writeEffects] = run(afterOther, [request('same-piece', 'write', 3)]);
    expect(ofType(writeEffects, 'data.write').map((effect) => effect.offsetBlocks), 'written at the source').toEqual([3]);
    expect(sent(writeEffects, 'block.write').map((message) => message.offsetBlocks), 'and at the destination').toEqual([3]);
    const [afterRead, readEffects] = run(afterWrite, [request('same-piece-read', 'read', 2)]);
    expect(ofType(readEffects, 'data.read')).toEqual([]);
    expect(sent(readEffects, 'block.read')).toEqual([]);
    expect(afterRead.parked['alpha/0']).toEqual(['c:same-piece-read']);
    // The destination confirms and the finish checkpoint becomes durable, the write's part still on its way: the held
    // read goes to the destination, and the piece's writes from now on to the destination alone.
    const [persisting, checkpoint] = run(afterRead, [{ type: 'peer.message', from: 's2', message: { type: 'piece.handedOver', pageKey, attempt: handover!.attempt, epoch: handover!.epoch, piece: 0, ok: true } }]);
    const [handedOver, released] = run(persisting, ioDone(ofType(checkpoint, 'meta.commit')));
    expect(sent(released, 'block.read').map((message) => message.offsetBlocks)).toEqual([2]);
    const [, later] = run(handedOver, [request('after', 'write', 1)]);
    expect(sent(later, 'block.write').map((message) => message.offsetBlocks)).toEqual([1]);
    expect(ofType(later, 'data.write')).toEqual([]);

    // Had the destination refused the hand-over instead, the move would be interrupted and the held read served as the
    // interrupted move routes it (piece 0 back in transit: at the source).
    const [interrupted, refusedEffects] = run(afterRead, [{ type: 'peer.message', from: 's2', message: { type: 'piece.handedOver', pageKey, attempt: handover!.attempt, epoch: handover!.epoch, piece: 0, ok: false } }]);
    expect(stage(interrupted)).toBe('interrupted');
    expect(interrupted.parked['alpha/0']).toBeUndefined();
    expect(ofType(refusedEffects, 'data.read').map((effect) => effect.offsetBlocks)).toEqual([2]);
  });

  it('does not send again a part of a write to a piece the destination serves; at the forward time-out it cancels it there, and fails with the answer', () => {
    // A review found the destination, having lost its block versions (a restart), take back its own later write with
    // such a part sent again. Failed at once at the time-out (until 27 Nov), the part could still land after the EIO.
    const [source, copies] = sourceCopying();
    const [handingOver, handoverEffects] = run(source, storedAll(copies));
    const [handover] = sent(handoverEffects, 'piece.handover');
    const [persisting, checkpoint] = run(handingOver, [{ type: 'peer.message', from: 's2', message: { type: 'piece.handedOver', pageKey, attempt: handover!.attempt, epoch: handover!.epoch, piece: 0, ok: true } }]);
    let [state] = run(persisting, ioDone(ofType(checkpoint, 'meta.commit')));
    let effects: NodeEffect[];
    [state, effects] = run(state, [request('w', 'write', 1)]);
    expect(sent(effects, 'block.write').map((message) => message.offsetBlocks)).toEqual([1]);
    const { forwardTimeoutMs, peerRetryDelayMs } = state.config;
    // The first retry timer waits out the rest of the forward time-out in one more timer, sending nothing.
    [state, effects] = run(state, [{ type: 'timer.fired', timerId: 'serve|c:w|0' }]);
    expect(sent(effects, 'block.write')).toEqual([]);
    expect(ofType(effects, 'client.reply')).toEqual([]);
    const [rest] = ofType(effects, 'timer.set');
    expect(rest?.delayMs).toBe(forwardTimeoutMs - peerRetryDelayMs);
    [state, effects] = run(state, [{ type: 'timer.fired', timerId: rest!.timerId }]);
    expect(sent(effects, 'block.write')).toEqual([]);
    expect(ofType(effects, 'client.reply')).toEqual([]);
    const [cancel] = sent(effects, 'block.cancel');
    expect(cancel).toEqual(expect.objectContaining({ requestId: 'c:w', pageKey }));
    // Unanswered, it is asked again at the next time-out; the destination's answer settles the write.
    const [again] = ofType(effects, 'timer.set');
    expect(again?.delayMs).toBe(forwardTimeoutMs);
    [state, effects] = run(state, [{ type: 'timer.fired', timerId: again!.timerId }]);
    expect(sent(effects, 'block.cancel')).toHaveLength(1);
    expect(ofType(effects, 'client.reply')).toEqual([]);
    [, effects] = run(state, [{ type: 'peer.message', from: 's2', message: { type: 'block.written', requestId: 'c:w', ok: false, lossEpoch: 0, cancelled: true } }]);
    expect(ofType(effects, 'client.reply').map((reply) => reply.outcome)).toEqual([expect.objectContaining({ status: 'error', errno: 5 })]);
  });

  it('waits for the parts of writes begun before it, not for those begun after', () => {
    const [source, copies] = sourceCopying();
    // A write to piece 0 while it is in transit: its part to the destination is outstanding when the copy is stored.
    const [writing, writeEffects] = run(source, [request('before', 'write', 3)]);
    const [part] = sent(writeEffects, 'block.write');
    expect(part).toBeDefined();
    const [draining, drainingEffects] = run(writing, storedAll(copies));
    expect(stage(draining)).toEqual({ moving: { finishPiece: 'persisting' } });
    expect(sent(drainingEffects, 'piece.handover'), 'the hand-over waits for the earlier write').toEqual([]);
    // A write begun during the hand-over; then the earlier write's part is answered: the hand-over goes at once.
    const [writingAgain, againEffects] = run(draining, [request('during', 'write', 2)]);
    expect(sent(againEffects, 'block.write').map((message) => message.offsetBlocks)).toEqual([2]);
    const [, answered] = run(writingAgain, [
      ...ioDone(ofType(writeEffects, 'data.write')),
      { type: 'peer.message', from: 's2', message: { type: 'block.written', requestId: part!.requestId, ok: true, lossEpoch: 0 } },
    ]);
    expect(sent(answered, 'piece.handover').map((message) => message.piece)).toEqual([0]);
  });
});

/**
 * A destination acknowledges move data only once its receiving record is
 * durable (node.ts, #acknowledgeMoveData): a failed commit of the record is
 * written again after a pause, and the acknowledgements wait for it; a newer
 * attempt drops what an older one still held (its source resends).
 */
describe('the receiving record of a destination', () => {
  function receivingCommit(effects: readonly NodeEffect[]): Array<Extract<NodeEffect, { type: 'meta.commit' }>> {
    return ofType(effects, 'meta.commit').filter((commit) => commit.writes.some((write) => write.kind === 'replica' && write.record.status === 'receiving'));
  }

  it('is written again after a failed commit, and the acknowledgement waits for it', () => {
    const [, copies] = sourceCopying();
    const [receiving, io] = run(started('s2'), [{ type: 'peer.message', from: 's1', message: copies[0]! }]);
    const [stored, done] = run(receiving, ioDone([...ofType(io, 'data.write'), ...ofType(io, 'data.sync')]));
    expect(sent(done, 'piece.stored')).toEqual([]);
    const [record] = receivingCommit(io);
    const [failed, afterFailure] = run(stored, [{ type: 'io.done', completionId: record!.completionId!, ok: false }]);
    expect(sent(afterFailure, 'piece.stored')).toEqual([]);
    const [retryTimer] = ofType(afterFailure, 'timer.set');
    expect(retryTimer?.timerId).toMatch(/^receiving\|alpha\/0\|/);
    expect(isTimerLive(failed, retryTimer!.timerId)).toBe(true);
    const [retrying, retried] = run(failed, [{ type: 'timer.fired', timerId: retryTimer!.timerId }]);
    expect(receivingCommit(retried)).toHaveLength(1);
    const [durable, released] = run(retrying, ioDone(receivingCommit(retried)));
    expect(sent(released, 'piece.stored').map((ack) => ack.offsetBlocks)).toEqual([copies[0]!.offsetBlocks]);
    expect(isTimerLive(durable, retryTimer!.timerId), 'the retry is spent once the record is durable').toBe(false);
  });

  it('drops the acknowledgements an older attempt still held when a newer attempt arrives', () => {
    const [, copies] = sourceCopying();
    const [receiving, io] = run(started('s2'), [{ type: 'peer.message', from: 's1', message: copies[0]! }]);
    const [stored] = run(receiving, ioDone([...ofType(io, 'data.write'), ...ofType(io, 'data.sync')]));
    expect(stored.attemptsJoined['alpha/0']?.acksHeld).toHaveLength(1);
    const newer = { ...copies[1]!, attempt: copies[1]!.attempt + 1 };
    const [following, followed] = run(stored, [{ type: 'peer.message', from: 's1', message: newer }]);
    expect(following.attemptsJoined['alpha/0']).toMatchObject({ attempt: newer.attempt, acksHeld: [] });
    // Both records become durable in order; only the newer attempt's chunk is acknowledged.
    const [, released] = run(following, [...ioDone(receivingCommit(io)), ...ioDone([...ofType(followed, 'data.write'), ...ofType(followed, 'data.sync')]), ...ioDone(receivingCommit(followed))]);
    expect(sent(released, 'piece.stored').map((ack) => [ack.attempt, ack.offsetBlocks])).toEqual([[newer.attempt, newer.offsetBlocks]]);
  });
});

/**
 * A piecewise move's commit does not hold the page's requests once
 * `move.commit` is sent: every piece is durably handed over, and the
 * destination serves the whole page from that message on, so a request of
 * the source's own client is forwarded there at once (node.ts,
 * #servingDestination). A request that came forwarded (from the destination,
 * which had not had the commit yet) or that was answered stale waits for the
 * commit's answer here, as every request did before: sending it back would
 * make it bounce. The explorer checks the protocol (the destination decides
 * what it serves); this test shows which requests go.
 */
describe('a piecewise move committing', () => {
  const request = (requestId: string, kind: 'read' | 'write', offsetBlocks: number): NodeInput => ({
    type: 'client.request', requestId, connectionId: 'test', operation: { kind, pageKey, offsetBlocks, lengthBlocks: 1, fua: false },
  });

  /** Stores every chunk sent, confirms the hand-over and makes the finish checkpoint durable: the next piece's copy or the commit. */
  function finishPiece(state: NodeState, copies: ReadonlyArray<Extract<PeerMessage, { type: 'piece.copy' }>>): [NodeState, NodeEffect[]] {
    const [handingOver, handoverEffects] = run(state, copies.map((copy): NodeInput => ({
      type: 'peer.message', from: 's2',
      message: { type: 'piece.stored', pageKey, attempt: copy.attempt, epoch: copy.epoch, piece: copy.piece, offsetBlocks: copy.offsetBlocks, lengthBlocks: copy.lengthBlocks },
    })));
    const [handover] = sent(handoverEffects, 'piece.handover');
    const [persisting, checkpoint] = run(handingOver, [{ type: 'peer.message', from: 's2', message: { type: 'piece.handedOver', pageKey, attempt: handover!.attempt, epoch: handover!.epoch, piece: handover!.piece, ok: true } }]);
    return run(persisting, ioDone(ofType(checkpoint, 'meta.commit')));
  }

  /** The source committing; `beforeLastPiece` are inputs given while the last piece is copied (their effects left undone). */
  function committing(beforeLastPiece: readonly NodeInput[] = []): [NodeState, NodeEffect[], NodeEffect[]] {
    const [source, copies] = sourceCopying();
    const [nextPiece, started] = finishPiece(source, copies);
    const [reading, reads] = run(nextPiece, ioDone(ofType(started, 'meta.commit')));
    const [copying, sends] = run(reading, ioDone(ofType(reads, 'data.read')));
    const [during, duringEffects] = run(copying, beforeLastPiece);
    const [state, effects] = finishPiece(during, sent(sends, 'piece.copy'));
    expect(stage(state)).toEqual({ moving: 'committing' });
    return [state, effects, duringEffects];
  }

  it('forwards its own clients\' requests to the destination once move.commit is sent', () => {
    const [state, effects] = committing();
    expect(sent(effects, 'move.commit')).toHaveLength(1);
    const [, forwarded] = run(state, [request('w', 'write', 3), request('r', 'read', 20)]);
    expect(sent(forwarded, 'request.forward').map((message) => [message.operation.kind, message.hopCount])).toEqual([['write', 1], ['read', 1]]);
    expect(ofType(forwarded, 'peer.send').filter((effect) => effect.to !== 's2')).toEqual([]);
    expect(sent(forwarded, 'block.write')).toEqual([]);
    expect(ofType(forwarded, 'data.write')).toEqual([]);
  });

  it('holds requests while the commit waits for parts in flight, and sends them to the destination with move.commit', () => {
    // A write to piece 0, handed over already: its part to the destination is still outstanding when the last piece is.
    const [state, effects, duringEffects] = committing([request('early', 'write', 3)]);
    const [part] = sent(duringEffects, 'block.write');
    expect(part).toBeDefined();
    expect(sent(effects, 'move.commit'), 'the commit waits for the part').toEqual([]);
    const [held, heldEffects] = run(state, [request('w', 'write', 20)]);
    expect(sent(heldEffects, 'request.forward')).toEqual([]);
    expect(held.parked['alpha/0']).toEqual(['c:w']);
    const [released, releasedEffects] = run(held, [{ type: 'peer.message', from: 's2', message: { type: 'block.written', requestId: part!.requestId, ok: true, lossEpoch: 0 } }]);
    expect(sent(releasedEffects, 'move.commit')).toHaveLength(1);
    expect(sent(releasedEffects, 'request.forward').map((message) => message.requestId)).toEqual(['c:w']);
    expect(released.parked['alpha/0']).toBeUndefined();
  });

  it('holds a request that came forwarded, and one answered stale, until the commit is answered, and the destination\'s own until the flip', () => {
    const [state] = committing();
    const [afterPeer, peerEffects] = run(state, [{
      type: 'peer.message', from: 's2',
      message: { type: 'request.forward', requestId: 'p', hopCount: 1, retry: 0, operation: { kind: 'read', pageKey, offsetBlocks: 20, lengthBlocks: 1, fua: false }, dataToken: null, senderIncarnation: 0 },
    }]);
    expect(sent(peerEffects, 'request.forward')).toEqual([]);
    expect(sent(peerEffects, 'request.answer')).toEqual([]);
    expect(afterPeer.parked['alpha/0']).toHaveLength(1);
    // A destination that does not serve the page answers a forwarded request stale; the retry waits here.
    const [forwarding, forwardEffects] = run(afterPeer, [request('r', 'read', 2)]);
    const [forward] = sent(forwardEffects, 'request.forward');
    const [stale, staleEffects] = run(forwarding, [{
      type: 'peer.message', from: 's2',
      message: { type: 'request.answer', requestId: forward!.requestId, retry: forward!.retry, outcome: { status: 'stale', owner: 's1', epoch: 1 }, dataToken: null, holders: [] },
    }]);
    expect(sent(staleEffects, 'request.forward')).toEqual([]);
    expect(stale.parked['alpha/0']).toHaveLength(2);
    // The destination answers the commit (and serves the page): the client's request goes there. The destination's own
    // request waits for the flip: answered now, it would tell the destination it owns the page before this server's
    // flip is durable (#fromDestinationBeforeFlip).
    const [flipping, released] = run(stale, [{ type: 'peer.message', from: 's2', message: { type: 'move.committed', pageKey, attempt: 1, epoch: 2, destinationServes: true } }]);
    expect(sent(released, 'request.forward').map((message) => message.requestId)).toEqual(['c:r']);
    expect(sent(released, 'request.answer')).toEqual([]);
    expect(flipping.parked['alpha/0']).toHaveLength(1);
    // Another server's request goes to the destination at once, but its stale answer marks the route provisional: it is
    // ahead of this server's durable records, so no table may learn it (see the next test).
    const [, thirdParty] = run(flipping, [{
      type: 'peer.message', from: 's3',
      message: { type: 'request.forward', requestId: 'q', hopCount: 1, retry: 0, operation: { kind: 'read', pageKey, offsetBlocks: 20, lengthBlocks: 1, fua: false }, dataToken: null, senderIncarnation: 0 },
    }]);
    expect(sent(thirdParty, 'request.answer').map((message) => [message.requestId, message.outcome, message.routeProvisional])).toEqual([['q', { status: 'stale', owner: 's2', epoch: 2 }, true]]);
    // The flip is durable: now the destination is told that it owns the page it forwarded here.
    const [flipped, afterFlip] = run(flipping, ioDone(ofType(released, 'meta.commit')));
    expect(sent(afterFlip, 'request.answer').map((message) => [message.requestId, message.outcome])).toEqual([['p', { status: 'stale', owner: 's2', epoch: 2 }]]);
    expect(flipped.parked['alpha/0']).toBeUndefined();
    expect(sent(afterFlip, 'request.answer').every((message) => message.routeProvisional === undefined)).toBe(true);
  });

  it('a provisional route is followed by the request, never learnt by the table', () => {
    // s2 here plays a third server whose table names s1; s1, flipping, answers its request stale naming s3 provisionally.
    const [forwarding, forwardEffects] = run(started('s2'), [request('t', 'read', 20)]);
    const [forward] = sent(forwardEffects, 'request.forward');
    expect(forwarding.routes.get('alpha/0')).toEqual({ owner: 's1', epoch: 1 });
    const answer = (routeProvisional: boolean): NodeInput => ({
      type: 'peer.message', from: 's1',
      message: { type: 'request.answer', requestId: forward!.requestId, retry: forward!.retry, outcome: { status: 'stale', owner: 's3', epoch: 2 }, dataToken: null, holders: [], ...(routeProvisional ? { routeProvisional: true as const } : {}) },
    });
    const [followed, followEffects] = run(forwarding, [answer(true)]);
    expect(ofType(followEffects, 'peer.send').filter((effect) => effect.message.type === 'request.forward').map((effect) => effect.to)).toEqual(['s3']);
    expect(followed.routes.get('alpha/0')).toEqual({ owner: 's1', epoch: 1 });
    expect(ofType(followEffects, 'meta.commit')).toEqual([]);
    // The same answer, not provisional (a flip some server has made durable), is learnt.
    const [learnt] = run(forwarding, [answer(false)]);
    expect(learnt.routes.get('alpha/0')).toEqual({ owner: 's3', epoch: 2 });
  });
});
