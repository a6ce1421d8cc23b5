import { describe, expect, it } from 'vitest';
import type { MoveCheckpoint, MoveInput, MoveKind } from '../../machines/migration/checkpoint.js';
import { finalStage } from '../../machines/migration/stage-numbers.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeEffect } from '../../machines/node/node-io.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, nodeStep } from '../../machines/node/node.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';

/**
 * A source that crashes after its flip is durable but before the removal of
 * the move's record is (a commit nobody waits for) finds the move again on
 * restart. The page may have moved on from the destination meanwhile, so the
 * destination can no longer confirm the commit: asking it again left the move
 * `committing` for good (the explorer with --unawaited-commits-lost, two moves,
 * a crash). The flip is the tables' last stage, whose restart is N/A: the
 * restarted source finishes the move at once, releasing its copy and
 * removing the record, and asks the destination nothing.
 */
describe.each<MoveKind>(['unit', 'piecewise'])('a %s move whose flip was durable when the source crashed', (kind) => {
  it('finishes when the source starts: the copy and the move record go, and no commit is asked for', () => {
    const config = { ...defaultNodeConfig('s1', ['s1', 's2']), traceTransitions: false };
    const volume: VolumeDefinition = { name: 'v', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1'] };
    const pageKey = { volume: 'v', page: 0 };
    const pieceCount = kind === 'unit' ? 1 : 2;
    const input: MoveInput = { pageKey, kind, source: 's1', destination: 's2', pieceCount, epoch: 1, forwardingPointer: false, progressTimeoutMs: 1_000 };
    const flip: MoveCheckpoint = { stage: finalStage(kind, pieceCount), attempt: 1, pieceModes: Array(pieceCount).fill('atDestination'), epoch: 2, owner: 'destination' };
    const durable = {
      ...initialDurableRecords([volume], 's1'),
      // What the flip wrote, atomically with its checkpoint (move-setup.ts, node.ts #persistCheckpoint).
      routes: [{ pageKey, route: { owner: 's2', epoch: 2 } }],
      replicas: [{ pageKey, record: { status: 'invalid' as const, epoch: 2, owner: 's2', forwardTo: null } }],
      moves: [{ pageKey, input, checkpoint: flip }],
    };
    const [state, effects] = nodeStep(emptyNodeState(config, 1), { type: 'node.start', durable });
    expect(state.moves['v/0'], 'the move is finished').toBeUndefined();
    const writes = effects.flatMap((effect) => (effect.type === 'meta.commit' ? effect.writes : []));
    expect(writes.filter((write) => write.kind === 'move.delete')).toHaveLength(1);
    expect(effects.filter((effect): effect is Extract<NodeEffect, { type: 'data.delete' }> => effect.type === 'data.delete')).toEqual([{ type: 'data.delete', pageKey, reason: 'moved' }]);
    const sent = effects.flatMap((effect) => (effect.type === 'peer.send' ? [effect.message.type] : []));
    expect(sent).not.toContain('move.commit');
    expect(state.replicas.get('v/0')?.context.record).toEqual({ status: 'invalid', epoch: 2, owner: 's2', forwardTo: null });
    expect(state.routes.get('v/0')).toEqual({ owner: 's2', epoch: 2 });
  });
});
