import { describe, expect, it } from 'vitest';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, nodeStep } from '../../machines/node/node.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { stepThrough } from '../membership/membership-fixture.js';
import { ioDone, sent } from './effects-of-step.js';

/**
 * Table 2: moved pieces are served by the destination. A client of the
 * destination itself is served there, not sent to the source to come back as
 * a part, once the source has made the piece's hand-over durable (a piece.copy
 * of a later piece, or the commit, says so), and from its commit until it
 * learns the flip. Its own writes are versioned above every part it has
 * applied, so a late part of the source takes nothing back. The explorer
 * checks the protocol (explorer.test.ts); these tests show the steps.
 */
const pageKey = { volume: 'v', page: 0 };
// Two pieces of 4 blocks each; page 0 starts on s1 and moves to s2.
const volume: VolumeDefinition = { name: 'v', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1'] };

/** Steps through the inputs; I/O the effects start is left for the test to complete (ioDone). */
const run = (state: NodeState, inputs: readonly NodeInput[]): [NodeState, NodeEffect[]] => stepThrough(state, inputs);

function fromSource(message: PeerMessage): NodeInput {
  return { type: 'peer.message', from: 's1', message };
}

function copyOf(piece: number, sequence: number): PeerMessage {
  return { type: 'piece.copy', pageKey, attempt: 1, epoch: 2, piece, offsetBlocks: piece * 4, lengthBlocks: 4, sequence, handedOverBlocks: piece * 4, sourceSequence: sequence, dataToken: `copy${piece}` };
}

function clientRequest(requestId: string, kind: 'read' | 'write', offsetBlocks: number): NodeInput {
  return { type: 'client.request', requestId, connectionId: 'c', operation: { kind, pageKey, offsetBlocks, lengthBlocks: 1, fua: false } };
}

/** s2 receiving page 0: piece 0 copied and handed over here (the source has yet to make its hand-over durable). */
function destinationWithPieceZeroHandedOver(): NodeState {
  const config = { ...defaultNodeConfig('s2', ['s1', 's2']), traceTransitions: false };
  let [state] = nodeStep(emptyNodeState(config, 1), { type: 'node.start', durable: initialDurableRecords([volume], 's2') });
  let effects: NodeEffect[];
  [state, effects] = run(state, [fromSource(copyOf(0, 1))]);
  [state, effects] = run(state, ioDone(effects));
  [state, effects] = run(state, [fromSource({ type: 'piece.handover', pageKey, attempt: 1, epoch: 2, piece: 0 })]);
  [state, effects] = run(state, ioDone(effects));
  expect(sent(effects, 'piece.handedOver')).toEqual([{ type: 'piece.handedOver', pageKey, attempt: 1, epoch: 2, piece: 0, ok: true }]);
  return state;
}

/** Then piece 1's copy arrived, so piece 0's hand-over is durable at s1. */
function destinationWithPieceZeroMoved(): NodeState {
  let [state, effects] = run(destinationWithPieceZeroHandedOver(), [fromSource(copyOf(1, 2))]);
  [state] = run(state, ioDone(effects));
  return state;
}

describe('a destination serves the pieces handed over to it', () => {
  it('reads a moved piece itself, and sends a read of the piece in transit to the source', () => {
    const state = destinationWithPieceZeroMoved();
    const [, moved] = run(state, [clientRequest('r0', 'read', 1)]);
    expect(sent(moved, 'request.forward')).toEqual([]);
    expect(moved.some((effect) => effect.type === 'data.read' && effect.offsetBlocks === 1)).toBe(true);
    const [, inTransit] = run(state, [clientRequest('r1', 'read', 5)]);
    expect(sent(inTransit, 'request.forward').length).toBe(1);
    expect(inTransit.some((effect) => effect.type === 'data.read')).toBe(false);
  });

  it('does not serve a piece whose hand-over the source may not have made durable', () => {
    // Handed over here, but no later piece or commit has said the source's checkpoint is durable.
    const [, read] = run(destinationWithPieceZeroHandedOver(), [clientRequest('r0', 'read', 1)]);
    expect(sent(read, 'request.forward').length).toBe(1);
  });

  it('versions its own write above the parts it applied, so a late part of the source does not take it back', () => {
    let state = destinationWithPieceZeroMoved();
    let effects: NodeEffect[];
    [state, effects] = run(state, [clientRequest('w0', 'write', 1)]);
    expect(effects.some((effect) => effect.type === 'data.write' && effect.offsetBlocks === 1)).toBe(true);
    // Its version stands once it is written (block-versions.ts, "Confirmed and claimed").
    [state] = run(state, ioDone(effects));
    expect(state.blockVersions['v/0']?.some((run) => run.startBlock <= 1 && run.endBlock > 1 && run.sequence === 2.5)).toBe(true);
    // A dual write of piece 0 the source numbered 1 (sent before the hand-over) arrives late: acknowledged, not applied.
    [state, effects] = run(state, [fromSource({ type: 'block.write', requestId: 'late', pageKey, attempt: 1, epoch: 2, offsetBlocks: 1, lengthBlocks: 1, sequence: 1, fua: false, dataToken: 'late', senderIncarnation: 0 })]);
    expect(effects.some((effect) => effect.type === 'data.write')).toBe(false);
    expect(sent(effects, 'block.written')).toEqual([{ type: 'block.written', requestId: 'late', ok: true, lossEpoch: 0, pageKey }]);
    // One the source numbered after this write was answered lands.
    [, effects] = run(state, [fromSource({ type: 'block.write', requestId: 'later', pageKey, attempt: 1, epoch: 2, offsetBlocks: 1, lengthBlocks: 1, sequence: 3, fua: false, dataToken: 'later', senderIncarnation: 0 })]);
    expect(effects.some((effect) => effect.type === 'data.write' && effect.offsetBlocks === 1)).toBe(true);
  });

  it('serves all of the page from its commit until it learns the flip, and then as its owner', () => {
    let state = destinationWithPieceZeroMoved();
    let effects: NodeEffect[];
    [state, effects] = run(state, [fromSource({ type: 'piece.handover', pageKey, attempt: 1, epoch: 2, piece: 1 })]);
    [state, effects] = run(state, ioDone(effects));
    [state, effects] = run(state, [fromSource({ type: 'move.commit', pageKey, attempt: 1, epoch: 2, freshCopy: false, sourceSequence: 2 })]);
    // While the commit syncs and persists, the whole page is handed over.
    const [, duringCommit] = run(state, [clientRequest('r1', 'read', 5)]);
    expect(sent(duringCommit, 'request.forward')).toEqual([]);
    [state, effects] = run(state, ioDone(effects));
    [state, effects] = run(state, ioDone(effects));
    expect(sent(effects, 'move.committed').length).toBe(1);
    expect(state.routes.get('v/0')?.owner).toBe('s1');
    const [, committed] = run(state, [clientRequest('r2', 'read', 5)]);
    expect(sent(committed, 'request.forward')).toEqual([]);
    [state] = run(state, [fromSource({ type: 'route.update', pageKey, owner: 's2', epoch: 2 })]);
    expect(state.attemptsJoined['v/0']).toBeUndefined();
    const [, owner] = run(state, [clientRequest('r3', 'read', 5)]);
    expect(sent(owner, 'request.forward')).toEqual([]);
  });
});

describe('a destination that serves pieces itself, across attempts and restarts', () => {
  it('versions its own write above a source write sent under an older attempt and sent again under the newer one', () => {
    let state = destinationWithPieceZeroMoved();
    let effects: NodeEffect[];
    // The source numbers write A 10 and sends its part for block 1 (piece 0, handed over) under attempt 1; it lands here.
    const partOfA = (attempt: number): PeerMessage => ({ type: 'block.write', requestId: 'a', pageKey, attempt, epoch: 2, offsetBlocks: 1, lengthBlocks: 1, sequence: 10, fua: false, dataToken: 'a', senderIncarnation: 0 });
    [state, effects] = run(state, [fromSource(partOfA(1))]);
    expect(effects.some((effect) => effect.type === 'data.write' && effect.offsetBlocks === 1)).toBe(true);
    [state] = run(state, ioDone(effects));
    // The source restarts the move (attempt 2: piece 1 again, labelled 8 as an older write of it is still on its way
    // to its disk) before A's answer reaches it; this server follows, and forgets attempt 1's block versions.
    [state, effects] = run(state, [fromSource({ ...copyOf(1, 8), attempt: 2, sourceSequence: 10 } as PeerMessage)]);
    [state] = run(state, ioDone(effects));
    expect(state.attemptsJoined['v/0']?.attempt).toBe(2);
    // A is answered (attempt 1's answer), then a client of this server writes block 1: its write comes after A.
    [state, effects] = run(state, [clientRequest('w', 'write', 1)]);
    [state] = run(state, ioDone(effects));
    expect(state.blockVersions['v/0']?.find((run) => run.startBlock <= 1 && run.endBlock > 1)?.sequence).toBe(10.5);
    // The source's retry of A under attempt 2 must not take the later write back.
    [, effects] = run(state, [fromSource(partOfA(2))]);
    expect(effects.some((effect) => effect.type === 'data.write')).toBe(false);
  });

  it('keeps its block versions when the source restarts the move, so a part resent under the new attempt takes nothing back', () => {
    // A review found it (lossy network, a failed commit): part A lands, this server's client writes the same block, A's
    // answer is lost, the source restarts the move and sends A again under attempt 2.
    let state = destinationWithPieceZeroMoved();
    let effects: NodeEffect[];
    const partOfA = (attempt: number): PeerMessage => ({ type: 'block.write', requestId: 'a', pageKey, attempt, epoch: 2, offsetBlocks: 1, lengthBlocks: 1, sequence: 3, fua: false, dataToken: 'a', senderIncarnation: 0 });
    [state, effects] = run(state, [fromSource(partOfA(1))]);
    [state] = run(state, ioDone(effects));
    [state, effects] = run(state, [clientRequest('w', 'write', 1)]);
    expect(effects.some((effect) => effect.type === 'data.write' && effect.offsetBlocks === 1)).toBe(true);
    [state, effects] = run(state, [fromSource({ ...copyOf(1, 3), attempt: 2, sourceSequence: 3 } as PeerMessage)]);
    [state] = run(state, ioDone(effects));
    expect(state.attemptsJoined['v/0']?.attempt).toBe(2);
    [, effects] = run(state, [fromSource(partOfA(2))]);
    expect(effects.some((effect) => effect.type === 'data.write')).toBe(false);
    expect(sent(effects, 'block.written')).toEqual([{ type: 'block.written', requestId: 'a', ok: true, lossEpoch: 0, pageKey }]);
  });

  it('acknowledges, without running it again, a part of a write it already ran as the source\'s forwarded request', () => {
    // A review found it (duplicating network, a failed commit): the source forwarded the write while its move committed,
    // then served it as a part after the move was interrupted; run twice, it would take back this server's later write.
    let state = destinationWithPieceZeroMoved();
    let effects: NodeEffect[];
    const forwarded: PeerMessage = { type: 'request.forward', requestId: 'c:w1', hopCount: 1, retry: 0, operation: { kind: 'write', pageKey, offsetBlocks: 1, lengthBlocks: 1, fua: false }, dataToken: 'w1', senderIncarnation: 0 };
    [state, effects] = run(state, [fromSource(forwarded)]);
    expect(effects.some((effect) => effect.type === 'data.write' && effect.offsetBlocks === 1)).toBe(true);
    [state, effects] = run(state, ioDone(effects));
    expect(sent(effects, 'request.answer')).toHaveLength(1);
    [state, effects] = run(state, [clientRequest('w2', 'write', 1)]);
    [state] = run(state, ioDone(effects));
    [, effects] = run(state, [fromSource({ type: 'block.write', requestId: 'c:w1', pageKey, attempt: 1, epoch: 2, offsetBlocks: 1, lengthBlocks: 1, sequence: 9, fua: false, dataToken: 'w1-part', senderIncarnation: 0 })]);
    expect(effects.some((effect) => effect.type === 'data.write')).toBe(false);
    expect(sent(effects, 'block.written')).toEqual([{ type: 'block.written', requestId: 'c:w1', ok: true, lossEpoch: 0, pageKey }]);
  });

  it('says whether it serves the page until it learns the flip', () => {
    // A destination that lost its account of the attempt (a restart between the last hand-over and the commit) commits,
    // but does not serve the page until the route names it: it says so, and the source holds requests until its flip.
    const config = { ...defaultNodeConfig('s2', ['s1', 's2']), traceTransitions: false };
    const records = initialDurableRecords([volume], 's2');
    let [state] = nodeStep(emptyNodeState(config, 2), {
      type: 'node.start',
      durable: { ...records, replicas: [...records.replicas, { pageKey, record: { status: 'receiving', source: 's1', attempt: 1, epoch: 2 } }] },
    });
    let effects: NodeEffect[];
    [state, effects] = run(state, [fromSource({ type: 'move.commit', pageKey, attempt: 1, epoch: 2, freshCopy: false, sourceSequence: 3 })]);
    [state, effects] = run(state, ioDone(effects));
    [, effects] = run(state, ioDone(effects));
    expect(sent(effects, 'move.committed')).toEqual([{ type: 'move.committed', pageKey, attempt: 1, epoch: 2, destinationServes: false }]);
    // One that followed the attempt in this incarnation says it serves.
    let joined = destinationWithPieceZeroMoved();
    [joined, effects] = run(joined, [fromSource({ type: 'piece.handover', pageKey, attempt: 1, epoch: 2, piece: 1 })]);
    [joined, effects] = run(joined, ioDone(effects));
    [joined, effects] = run(joined, [fromSource({ type: 'move.commit', pageKey, attempt: 1, epoch: 2, freshCopy: false, sourceSequence: 3 })]);
    [joined, effects] = run(joined, ioDone(effects));
    [, effects] = run(joined, ioDone(effects));
    expect(sent(effects, 'move.committed')).toEqual([{ type: 'move.committed', pageKey, attempt: 1, epoch: 2, destinationServes: true }]);
  });
});
