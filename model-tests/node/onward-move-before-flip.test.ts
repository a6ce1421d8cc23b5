import { describe, expect, it } from 'vitest';
import { pageKeyText } from '../../machines/identifiers.js';
import { nodeStep } from '../../machines/node/node.js';
import { completeFaultFree } from '../random/fault-free-completion.js';
import { FairSchedule } from '../world/fair-schedule.js';
import { playRecorded as play } from '../world/play-actions.js';
import type { Action, World } from '../world/world.js';
import { initialWorld, volumeName } from '../world/world.js';
import type { WorldConfig } from '../world/world-config.js';
import { referenceBound } from '../world/world-config.js';

/**
 * A move's destination holds the page's valid copy as soon as its commit is
 * durable, before it learns that the source flipped. Until then the source
 * may still send it that move's dual writes (a source that crashed before its
 * flip was durable restarts, finds the move interrupted with every piece at
 * the destination, and serves its clients' writes as parts of it). A review
 * (26 Nov, evening) found that such a destination accepted an admin move of
 * the page: its new move's copy and dual writes never carried those parts,
 * and a write was lost (a kill -9) or one came back (a duplicated part). A
 * destination now starts no move of the page until its table names it at
 * its copy's epoch (copy-standing.ts).
 */
const config: WorldConfig = { ...referenceBound, servers: 3, pages: 1, pieces: 2, writes: 1, reads: 1, moves: 3, crashes: 1 };
const pageText = pageKeyText({ volume: volumeName, page: 0 });

/** The review's schedule up to the onward move: s1 moves the page to s2, s2 commits, and s1 crashes before its flip is durable. */
const committedThenSourceCrashed: readonly Action[] = [
  { type: 'move.start', page: 0, to: 1, kind: 'piecewise' }, { type: 'persist', server: 0 }, { type: 'deliver', index: 0 },
  { type: 'persist', server: 1 }, { type: 'deliver', index: 0 }, { type: 'deliver', index: 0 }, { type: 'deliver', index: 0 },
  { type: 'persist', server: 0 }, { type: 'persist', server: 0 }, { type: 'deliver', index: 0 }, { type: 'deliver', index: 0 },
  { type: 'deliver', index: 0 }, { type: 'deliver', index: 0 }, { type: 'persist', server: 0 }, { type: 'deliver', index: 0 },
  { type: 'persist', server: 1 }, { type: 'crash', server: 0 },
];

describe('a committed destination moves the page on only once it has learnt the flip', () => {
  it('refuses an admin move while its source has not flipped, and accepts one once the group has settled', () => {
    const committed = play(initialWorld(config), committedThenSourceCrashed);
    const s2 = committed.servers[1]!;
    expect(s2.meta.replicas[pageText]).toEqual({ status: 'valid', epoch: 2 });
    expect(committed.servers[0]!.up).toBe(false);

    // With s1 down, the admin's move goes to s2, the one live server holding a valid copy: refused, nothing starts.
    const refused = play(committed, [{ type: 'move.start', page: 0, to: 2, kind: 'piecewise' }]);
    expect(refused.servers[1]!.node.moves[pageText]).toBeUndefined();
    expect(refused.servers[1]!.meta.moves[pageText]).toBeUndefined();
    // The refusal says the flip is pending (the runtime asks again, ServerRuntime.move), and asks the server the
    // table still names, the source, for the route, in case its push was lost.
    expect(refused.network.filter((envelope) => envelope.from === 's2' && envelope.message.type === 'route.query').map((envelope) => envelope.to)).toEqual(['s1']);
    const [, refusal] = nodeStep(committed.servers[1]!.node, { type: 'admin.move', requestId: 'again', pageKey: { volume: volumeName, page: 0 }, to: 's3', kind: 'piecewise' });
    expect(refusal).toContainEqual(expect.objectContaining({ type: 'admin.reply', ok: false, flipPending: true }));

    // s1 restarts and finishes its flip; s2 learns it, and then moves the page on.
    const healed = completeFaultFree(refused, 2_000);
    expect(healed.violation).toBeNull();
    expect(healed.quiescent).toBe(true);
    expect(healed.world.servers[0]!.meta.replicas[pageText]).toMatchObject({ status: 'invalid', epoch: 2, owner: 's2' });
    expect(healed.world.servers[1]!.node.routes.get(pageText)).toEqual({ owner: 's2', epoch: 2 });
    const [, accepted] = nodeStep(healed.world.servers[1]!.node, { type: 'admin.move', requestId: 'again', pageKey: { volume: volumeName, page: 0 }, to: 's3', kind: 'piecewise' });
    expect(accepted).toContainEqual(expect.objectContaining({ type: 'admin.reply', ok: true }));
    expect(accepted.some((effect) => effect.type === 'admin.reply' && effect.flipPending)).toBe(false);
    const onward = play(healed.world, [{ type: 'move.start', page: 0, to: 2, kind: 'piecewise' }]);
    expect(onward.servers[1]!.node.moves[pageText]).toBeDefined();
    const done = completeFaultFree(onward, 2_000);
    expect(done.violation).toBeNull();
    expect(done.world.servers[2]!.meta.replicas[pageText]).toEqual({ status: 'valid', epoch: 3 });
  });

  it('a server restarted without the route write of the flip that gave it the page asks for it, and can move the page on', () => {
    // s1 -> s2 -> s1; s1 crashes before its route write for the second flip (not awaited) is durable. Its durable
    // table then names s2 at epoch 2 (its own first flip), below its copy's 3, and s2 has already pushed the second
    // flip: unless the restart asks (#repairRoutesAfterRestart), s1 would refuse to move the page for good. (A table
    // naming s1 itself at an older epoch is asked about too, of every member; no schedule here reaches one.)
    const lossy: WorldConfig = { ...config, servers: 2, pieces: 1, writes: 0, reads: 0, unawaitedCommitsLost: true };
    const away = completeFaultFree(play(initialWorld(lossy), [{ type: 'move.start', page: 0, to: 1, kind: 'piecewise' }]), 2_000);
    expect(away.violation).toBeNull();
    let world = play(away.world, [{ type: 'move.start', page: 0, to: 0, kind: 'piecewise' }]);
    const schedule = new FairSchedule();
    for (let steps = 0; steps < 500; steps += 1) {
      const pendingRoute = world.servers[0]!.pendingMeta[0]?.writes.some((write) => write.kind === 'route' && write.route.owner === 's1' && write.route.epoch === 3);
      if (pendingRoute && world.servers[0]!.meta.replicas[pageText]?.status === 'valid') break;
      const action = schedule.next(world);
      expect(action, 'the second move ends before s1 learns its flip').toBeDefined();
      world = play(world, [action!]);
    }
    expect(world.servers[0]!.meta.routes[pageText]?.epoch ?? 0).toBeLessThan(3);
    world = play(world, [{ type: 'crash', server: 0 }, { type: 'restart', server: 0 }]);
    expect(world.network.some((envelope) => envelope.from === 's1' && envelope.message.type === 'route.query')).toBe(true);
    const healed = completeFaultFree(world, 2_000);
    expect(healed.violation).toBeNull();
    expect(healed.world.servers[0]!.node.routes.get(pageText)).toEqual({ owner: 's1', epoch: 3 });
    const onward = play(healed.world, [{ type: 'move.start', page: 0, to: 1, kind: 'piecewise' }]);
    expect(onward.servers[0]!.node.moves[pageText]).toBeDefined();
  });
});
