import { describe, expect, it } from 'vitest';
import { finishStage, startStage } from '../../machines/migration/stage-numbers.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, isTimerLive, nodeStep } from '../../machines/node/node.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { ioDone, sent } from './effects-of-step.js';

/**
 * A destination failure that comes while the source is writing a stage
 * record waits for that write's outcome. Interrupted at once, the move went
 * on from the stage before while the record could still land, so the record
 * on disk ran ahead of the one acted on. A review's trace (Table 2): piece
 * 0's finish record in flight, a client write to piece 0 is applied at the
 * source and its part to the destination runs out of retries; the move was
 * interrupted, the source served piece 0's reads again (one returning that
 * write), and a crash before the restart's own record brought the finish
 * record back: the destination, which never got the write, served piece 0.
 */
const pageKey = { volume: 'v', page: 0 };
const volume: VolumeDefinition = { name: 'v', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1'] };

function step(state: NodeState, input: NodeInput): [NodeState, NodeEffect[]] {
  return nodeStep(state, input);
}

function fromDestination(message: PeerMessage): NodeInput {
  return { type: 'peer.message', from: 's2', message };
}

/** The move's stage records among the effects' commits (the ones the move machine awaits). */
function stageRecords(effects: readonly NodeEffect[]): Array<{ completionId: string; stage: number }> {
  return effects.flatMap((effect) => effect.type === 'meta.commit' && effect.completionId !== null
    ? effect.writes.flatMap((write) => (write.kind === 'move' ? [{ completionId: effect.completionId!, stage: write.checkpoint.stage }] : []))
    : []);
}

/** s1 moving page 0 to s2 in two pieces: piece 0 copied and handed over, its finish record being written. */
function sourceWritingFinishRecord(): { state: NodeState; finishRecord: string } {
  let [state] = step(emptyNodeState({ ...defaultNodeConfig('s1', ['s1', 's2']), traceTransitions: false }, 1), { type: 'node.start', durable: initialDurableRecords([volume], 's1') });
  let effects: NodeEffect[];
  [state, effects] = step(state, { type: 'admin.move', requestId: 'm', pageKey, to: 's2', kind: 'piecewise' });
  for (let round = 0; round < 10 && sent(effects, 'piece.copy').length === 0; round += 1) {
    const inputs = ioDone(effects);
    effects = [];
    for (const input of inputs) {
      let more: NodeEffect[];
      [state, more] = step(state, input);
      effects.push(...more);
    }
  }
  const [copy] = sent(effects, 'piece.copy') as Array<Extract<PeerMessage, { type: 'piece.copy' }>>;
  expect(copy?.piece).toBe(0);
  [state, effects] = step(state, fromDestination({ type: 'piece.stored', pageKey, attempt: copy!.attempt, epoch: copy!.epoch, piece: 0, offsetBlocks: 0, lengthBlocks: 4 }));
  expect(sent(effects, 'piece.handover')).toHaveLength(1);
  [state, effects] = step(state, fromDestination({ type: 'piece.handedOver', pageKey, attempt: copy!.attempt, epoch: copy!.epoch, piece: 0, ok: true }));
  const [finish] = stageRecords(effects);
  expect(finish?.stage).toBe(finishStage('piecewise', 0));
  return { state, finishRecord: finish!.completionId };
}

/** A client write to piece 0 whose part to s2 is never answered, its retries fired until they run out. */
function writeWhosePartFails(start: NodeState): [NodeState, NodeEffect[]] {
  let [state, effects] = step(start, { type: 'client.request', requestId: 'w', connectionId: 'c', operation: { kind: 'write', pageKey, offsetBlocks: 1, lengthBlocks: 1, fua: false } });
  expect(sent(effects, 'block.write').length + sent(effects, 'request.forward').length).toBeGreaterThan(0);
  const all: NodeEffect[] = [...effects];
  for (const input of ioDone(effects).filter((input) => input.type === 'io.done')) {
    [state, effects] = step(state, input);
    all.push(...effects);
  }
  for (let round = 0; round < 100; round += 1) {
    const timers = all.flatMap((effect) => (effect.type === 'timer.set' && effect.timerId.startsWith('serve|') && isTimerLive(state, effect.timerId) ? [effect.timerId] : []));
    if (timers.length === 0) break;
    for (const timerId of timers) {
      [state, effects] = step(state, { type: 'timer.fired', timerId });
      all.push(...effects);
    }
  }
  expect(all.some((effect) => effect.type === 'client.reply' && effect.requestId === 'w' && effect.outcome.status === 'error')).toBe(true);
  return [state, all];
}

describe('a destination failure while a stage record is being written', () => {
  it('interrupts the move only once the record is durable, which the move then resumes from', () => {
    const { state: writing, finishRecord } = sourceWritingFinishRecord();
    const [failed, failedEffects] = writeWhosePartFails(writing);
    // Not interrupted: the machine still waits for piece 0's finish record, with piece 0's reads held meanwhile.
    expect(failed.moves['v/0']!.snapshot.matches({ moving: { finishPiece: 'persisting' } })).toBe(true);
    expect(failedEffects.some((effect) => effect.type === 'timer.set' && effect.timerId.startsWith('move-restart|'))).toBe(false);
    const [read, readEffects] = step(failed, { type: 'client.request', requestId: 'r', connectionId: 'c', operation: { kind: 'read', pageKey, offsetBlocks: 1, lengthBlocks: 1, fua: false } });
    expect(readEffects.some((effect) => effect.type === 'data.read' || effect.type === 'client.reply')).toBe(false);
    // The record is durable: it takes effect, and the move goes on to piece 1's start record, the failure still waiting.
    let [state, effects] = step(read, { type: 'io.done', completionId: finishRecord, ok: true });
    expect(state.moves['v/0']!.snapshot.context.checkpoint.stage).toBe(finishStage('piecewise', 0));
    const [startRecord] = stageRecords(effects);
    expect(startRecord?.stage).toBe(startStage('piecewise', 1));
    expect(state.moves['v/0']!.snapshot.matches('interrupted')).toBe(false);
    // Once that one is durable too, the failure interrupts the move, which restarts from the stage now on disk.
    [state, effects] = step(state, { type: 'io.done', completionId: startRecord!.completionId, ok: true });
    const move = state.moves['v/0']!;
    expect(move.snapshot.matches('interrupted')).toBe(true);
    expect(move.snapshot.context.checkpoint.stage).toBe(startStage('piecewise', 1));
    expect(move.failureDeferred).toBeUndefined();
    expect(effects.some((effect) => effect.type === 'timer.set' && effect.timerId.startsWith('move-restart|'))).toBe(true);
  });
});
