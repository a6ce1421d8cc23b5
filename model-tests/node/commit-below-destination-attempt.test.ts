import { describe, expect, it } from 'vitest';
import { pageKeyText } from '../../machines/identifiers.js';
import { completeFaultFree } from '../random/fault-free-completion.js';
import { advanceUntil as advanceWith, applyRecorded as apply } from '../world/play-actions.js';
import type { Action, World } from '../world/world.js';
import { enabledActions, initialWorld, volumeName } from '../world/world.js';
import type { WorldConfig } from '../world/world-config.js';
import { referenceBound } from '../world/world-config.js';

/**
 * A unit move's source may act on attempt numbers its checkpoint does not yet
 * hold: a restart into the commit takes the checkpoint's attempt + 1 without
 * persisting it, and a refused commit copies again under the next attempt,
 * whose dual writes carry it before its start stage is durable. Two such steps
 * and a crash leave the destination following an attempt above any the
 * restarted source will take. The fault harness found the group stuck that way
 * (CI, 26 Nov, seed 236674846 of the power-loss run: the source committing
 * under attempt 2 for ever, its checkpoint at attempt 1, the destination's
 * durable record at attempt 3). The destination ignored a commit of an older
 * attempt; it now answers it stale with the attempt it follows, and the source
 * copies again above that.
 */
const config: WorldConfig = {
  ...referenceBound, servers: 2, pages: 1, pieces: 1, writes: 1, reads: 0, moves: 1, crashes: 2, moveKinds: ['unit'], messagesMax: 16,
};
const pageText = pageKeyText({ volume: volumeName, page: 0 });

/** Runs the fair schedule until `reached` holds; with `holdPersistOf`, only other servers' persists and deliveries. */
function advanceUntil(start: World, reached: (world: World) => boolean, holdPersistOf: number | null = null): World {
  if (holdPersistOf === null) return advanceWith(start, reached);
  return advanceWith(start, reached, (world) => {
    const enabled = enabledActions(world);
    return enabled.find((candidate) => candidate.type === 'persist' && candidate.server !== holdPersistOf) ?? enabled.find((candidate) => candidate.type === 'deliver');
  });
}

const sourceAttempt = (world: World): number | undefined => world.servers[0]!.node.moves[pageText]?.snapshot.context.attempt;

describe('a unit move whose destination follows an attempt above the restarted source\'s', () => {
  it('is answered stale with that attempt, copies again above it, and completes', () => {
    let world = apply(initialWorld(config), { type: 'move.start', page: 0, to: 1, kind: 'unit' });
    // The copy is durable at both sides under attempt 1 (the finish stage), then the source crashes.
    world = advanceUntil(world, (candidate) => candidate.servers[0]!.meta.moves[pageText]?.checkpoint.stage === 3);
    expect(world.servers[0]!.meta.moves[pageText]?.checkpoint.attempt).toBe(1);
    world = apply(apply(world, { type: 'crash', server: 0 }), { type: 'restart', server: 0 });
    // The restart commits under attempt 2 (not persisted); the destination never took attempt 2's copy and answers it
    // stale; the source copies again under attempt 3, and a client write's dual write carries 3 to the destination,
    // which follows it durably while the source's start stage for attempt 3 is still in its store's queue.
    world = advanceUntil(world, (candidate) => sourceAttempt(candidate) === 3);
    world = apply(world, { type: 'client.write', server: 0, block: 0 });
    world = advanceUntil(world, (candidate) => {
      const record = candidate.servers[1]!.meta.replicas[pageText];
      return record?.status === 'receiving' && record.attempt === 3;
    }, 0);
    expect(world.servers[0]!.meta.moves[pageText]?.checkpoint.attempt).toBe(1);
    // The source crashes before attempt 3 is durable: it restarts at attempt 2, below the destination's.
    world = apply(apply(world, { type: 'crash', server: 0 }), { type: 'restart', server: 0 });

    // The restarted source commits under attempt 2; the destination, following attempt 3, answers it stale with its
    // own attempt, and the source copies again under attempt 4, above it.
    world = advanceUntil(world, (candidate) => candidate.network.some((envelope) => envelope.message.type === 'move.copyStale'));
    const [stale] = world.network.filter((envelope) => envelope.message.type === 'move.copyStale').map((envelope) => envelope.message);
    expect(stale).toMatchObject({ type: 'move.copyStale', attempt: 2, destinationAttempt: 3 });
    world = advanceUntil(world, (candidate) => (sourceAttempt(candidate) ?? 0) > 2);
    expect(sourceAttempt(world)).toBe(4);

    const healed = completeFaultFree(world, 3_000);
    expect(healed.violation).toBeNull();
    expect(healed.quiescent, `after 3000 fair steps the move still runs (source attempt ${sourceAttempt(healed.world)})`).toBe(true);
    expect(healed.world.servers[1]!.meta.replicas[pageText]).toEqual({ status: 'valid', epoch: 2 });
    expect(healed.world.servers[0]!.meta.replicas[pageText]).toMatchObject({ status: 'invalid', epoch: 2, owner: 's2' });
    expect(healed.world.servers[0]!.node.moves[pageText]).toBeUndefined();
  });
});
