import { describe, expect, it } from 'vitest';
import { checkState } from '../world/properties.js';
import { playRecorded } from '../world/play-actions.js';
import type { WorldConfig } from '../world/world-config.js';
import type { Action } from '../world/world.js';
import { applyAction, initialWorld } from '../world/world.js';

/**
 * Found by the explorer once page-data writes could fail (`--data-write-failures`): a destination restarted onto its
 * durable receiving record takes dual writes before it joins the move's attempt again. Its versions were then marked
 * on receipt, and a first fix took failed marks back only for a joined attempt. w2's part (sequence 2) failed on its
 * disk and left its mark, so
 * w1's part (sequence 1), arriving after it, was skipped and answered written: w1 was acknowledged, w2 failed, and the
 * destination committed the page holding neither (28 steps; `block 0 holds w0 on s2 once settled; possible: [1,2]`).
 * Versions now count only data written, a restart's (no attempt joined) included (node.ts, `#claimStands`).
 */
const config: WorldConfig = {
  servers: 2, pages: 1, pieces: 1, writes: 2, reads: 0, moves: 1, crashes: 1, networkFaults: 0, network: 'unordered', moveKinds: ['piecewise'],
  forwardingPointer: false, messagesMax: 12, timersOnlyWhenQuiet: true, variant: null, powerLoss: false, dataWriteFailures: 1,
};
const deliver = (index: number): Action => ({ type: 'deliver', index });
const trace: Action[] = [
  { type: 'move.start', page: 0, to: 1, kind: 'piecewise' }, { type: 'persist', server: 0 }, deliver(0), { type: 'persist', server: 1 },
  deliver(0), deliver(0), deliver(0), // piece 0 stored and handed over
  { type: 'crash', server: 1 },
  { type: 'client.write', server: 0, block: 0 }, { type: 'client.write', server: 0, block: 0 }, { type: 'persist', server: 0 },
  { type: 'restart', server: 1 }, deliver(2), deliver(2), // s2 learns the route again, not the attempt
  { type: 'disk.fail', server: 1 },
  deliver(1), // w2's part: its write fails at s2
  deliver(0), // w1's part, older
  deliver(0), deliver(0),
  { type: 'timer', server: 0, timerId: 'serve|c:w2|0' }, { type: 'timer', server: 0, timerId: 'serve|c:w2|9' },
  deliver(0), deliver(0), deliver(0), { type: 'persist', server: 1 }, deliver(0), { type: 'persist', server: 0 }, deliver(0),
];

describe('a part that fails at a restarted destination', () => {
  it('leaves no mark, so an older acknowledged part is written there', () => {
    const world = playRecorded(initialWorld(config), trace);
    expect(world.clients.map((client) => `${client.id}:${client.status}`)).toEqual(['w1:ok', 'w2:error']);
    expect(world.servers[1]!.meta.replicas['vol/0']?.status).toBe('valid');
    expect(world.servers[1]!.data['vol/0']?.[0]).toBe(1);
    expect(checkState(world)).toBeNull();
  });

  it('the trace is the explorer\'s: every step is enabled, and it ends settled', () => {
    let world = initialWorld(config);
    for (const action of trace) world = applyAction(world, action);
    expect(world.network).toEqual([]);
  });
});
