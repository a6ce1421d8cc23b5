import { describe, expect, it } from 'vitest';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, isTimerLive, nodeStep } from '../../machines/node/node.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';

/**
 * A move's checkpoint write that fails (a metadata store error) leaves its
 * stage pending — nothing acts on a checkpoint that is not durable — and is
 * tried again after a pause until it succeeds; the move then goes on.
 */
const alpha: VolumeDefinition = { name: 'alpha', pageCount: 2, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1', 's2'] };

function run(state: NodeState, input: NodeInput): [NodeState, NodeEffect[]] {
  return nodeStep(state, input);
}

function commits(effects: readonly NodeEffect[]) {
  return effects.flatMap((effect) => (effect.type === 'meta.commit' && effect.completionId !== null ? [effect] : []));
}

describe('checkpoint write failure', () => {
  it('is retried after a pause while the move waits for it, and the move proceeds once it is durable', () => {
    const [s1] = run(emptyNodeState(defaultNodeConfig('s1', ['s1', 's2']), 1), { type: 'node.start', durable: initialDurableRecords([alpha], 's1') });
    const [moving, started] = run(s1, { type: 'admin.move', requestId: 'm', pageKey: { volume: 'alpha', page: 0 }, to: 's2', kind: 'piecewise' });
    const [firstWrite] = commits(started);
    expect(firstWrite).toBeDefined();

    const [waiting, failed] = run(moving, { type: 'io.done', completionId: firstWrite!.completionId!, ok: false });
    const retryTimers = failed.flatMap((effect) => (effect.type === 'timer.set' ? [effect.timerId] : []));
    expect(retryTimers).toHaveLength(1);
    expect(failed.some((effect) => effect.type === 'peer.send')).toBe(false);
    expect(isTimerLive(waiting, retryTimers[0]!)).toBe(true);

    const [retrying, retried] = run(waiting, { type: 'timer.fired', timerId: retryTimers[0]! });
    const [secondWrite] = commits(retried);
    expect(secondWrite?.writes).toEqual(firstWrite!.writes);

    const [copying, proceeded] = run(retrying, { type: 'io.done', completionId: secondWrite!.completionId!, ok: true });
    expect(proceeded.some((effect) => effect.type === 'data.read')).toBe(true);
    // Once the stage is durable the retry timer is stale: firing it again writes nothing.
    expect(isTimerLive(copying, retryTimers[0]!)).toBe(false);
    expect(commits(run(copying, { type: 'timer.fired', timerId: retryTimers[0]! })[1])).toEqual([]);
  });
});
