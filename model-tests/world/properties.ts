import { pageKeyText } from '../../machines/identifiers.js';
import type { MoveKind } from '../../machines/migration/checkpoint.js';
import { finalStage } from '../../machines/migration/stage-numbers.js';
import { isAbandoning } from '../../machines/migration/move-machines.js';
import type { World } from './world.js';
import { volumeName } from './world.js';

/**
 * The named properties the explorer checks. *Always* properties must hold in
 * every reachable state (or on every transition); *sometimes* properties are
 * goals that some reachable state must show, so that a search that never
 * got anywhere interesting cannot pass.
 */
export interface Violation {
  readonly property: string;
  readonly detail: string;
}

export const alwaysProperties = [
  'no acknowledged write is lost and every read is linearizable (per block)',
  'at most one valid copy of a page outside a move, exactly one after it, and no stale data left behind',
  'routing epochs only grow',
  'no request is served from a copy flagged invalid',
  'a restart resumes at the table\'s restart stage',
  'a forwarded request terminates (hop limit never exceeded)',
  'no data is held once the group has settled (every message\'s and request\'s bytes are let go)',
  'a client never sees a routing error while no fault has happened (the retry loop stays inside the group)',
] as const;

export const sometimesGoals = [
  'a move completes',
  'a write lands on the destination during dual-write',
  'a crash at every stage of the move, and the move still completes',
  'a stale routing table causes a retry',
  'a forwarding pointer forwards a late request',
  'a FLUSH covering an acknowledged write answers ok',
  'a FLUSH reports a write a power cut may have taken',
  'an abandoned move\'s destination lets go of its partial copy',
  'a forwarded write that arrives after its sender cancelled it does not run',
  'a page-data write fails at its disk',
] as const;

export function checkState(world: World): Violation | null {
  if (world.violation) {
    const property = world.violation.includes('linearizable') || world.violation.includes('reply to') ? alwaysProperties[0]
      : world.violation.includes('with a routing error') ? alwaysProperties[7]
      : world.violation.includes('invalid') ? alwaysProperties[3] : alwaysProperties[5];
    return { property, detail: world.violation };
  }
  for (let page = 0; page < world.config.pages; page += 1) {
    const key = pageKeyText({ volume: volumeName, page });
    const moving = world.servers.some((server) => server.meta.moves[key] !== undefined || server.node.moves[key] !== undefined);
    const valid = world.servers.filter((server) => server.meta.replicas[key]?.status === 'valid');
    if (!moving && valid.length !== 1) {
      return { property: alwaysProperties[1], detail: `${key} has ${valid.length} valid copies (${valid.map((server) => server.id).join(', ')}) with no move in progress` };
    }
    if (valid.length > 2) return { property: alwaysProperties[1], detail: `${key} has ${valid.length} valid copies` };
    // The copies the servers that are up act on, not only the durable records: a node whose own record of a page stays
    // valid after the flip serves it (a broken variant that never records the source invalid passed this property,
    // caught only by the liveness check once settled).
    const servingValid = world.servers.filter((server) => server.up && server.node.replicas.get(key)?.context.record?.status === 'valid');
    if (!moving && servingValid.length > 1) {
      return { property: alwaysProperties[1], detail: `${key} is held valid in memory by ${servingValid.map((server) => server.id).join(', ')} with no move in progress` };
    }
    // A copy being received is not left behind, though its durable record still says invalid (the record of an earlier
    // copy, given up, while the new one's receiving record is being made durable: a late copy of an abandoned move's
    // piece, found by a random walk, which the source's notice or a newer route then lets go).
    const leftBehind = world.servers.filter((server) => server.data[key] !== undefined && server.meta.replicas[key]?.status === 'invalid' && server.node.replicas.get(key)?.context.record?.status !== 'receiving'
      && server.meta.moves[key] === undefined && server.node.moves[key] === undefined);
    if (leftBehind.length > 0 && !moving) return { property: alwaysProperties[1], detail: `${key} data left behind on ${leftBehind.map((server) => server.id).join(', ')}` };
  }
  return auditSettled(world);
}

/**
 * Once everything has settled, read every block straight from the owner's
 * disk: the value must be one a linearizable register could hold, so an
 * acknowledged write can never silently vanish even when no client read it.
 */
function auditSettled(world: World): Violation | null {
  const settled = world.network.length === 0 && world.clients.every((client) => client.status !== 'pending') &&
    world.servers.every((server) => server.up && server.pendingMeta.length === 0 && Object.keys(server.node.moves).length === 0 && Object.keys(server.meta.moves).length === 0);
  if (!settled) return null;
  // The simulator holds data as the TCP runtime does (under tokens), so a token held here is bytes a server would keep.
  // A request still in hand (its forward's answer lost with a crashed server, its time-out not yet fired) may hold them.
  const holding = world.servers.filter((server) => Object.keys(server.tokens).length > 0 && server.node.requests.size === 0);
  if (holding.length > 0) {
    return { property: alwaysProperties[6], detail: `once settled, ${holding.map((server) => `${server.id} holds ${Object.keys(server.tokens).join(', ')}`).join('; ')}` };
  }
  for (let page = 0; page < world.config.pages; page += 1) {
    const key = pageKeyText({ volume: volumeName, page });
    const owner = world.servers.find((server) => server.meta.replicas[key]?.status === 'valid');
    if (!owner) return { property: alwaysProperties[1], detail: `${key} has no valid copy once settled` };
    // No move is left, so no copy may still be receiving one (an abandoned move's destination lets go of its copy).
    const receiving = world.servers.filter((server) => server.meta.replicas[key]?.status === 'receiving' || server.node.replicas.get(key)?.context.record?.status === 'receiving');
    if (receiving.length > 0) return { property: alwaysProperties[1], detail: `${key} is still received by ${receiving.map((server) => server.id).join(', ')} once settled, with no move left` };
    for (let piece = 0; piece < world.config.pieces; piece += 1) {
      const block = page * world.config.pieces + piece;
      const value = owner.data[key]?.[piece] ?? 0;
      const register = world.registers[block];
      if (register && !register.possible.includes(value) && !register.pending.includes(value)) {
        return { property: alwaysProperties[0], detail: `block ${block} holds w${value} on ${owner.id} once settled; possible: ${JSON.stringify(register.possible)}` };
      }
    }
  }
  return null;
}

export function checkTransition(before: World, after: World): Violation | null {
  for (let index = 0; index < after.servers.length; index += 1) {
    const old = before.servers[index];
    const now = after.servers[index];
    // Server states are immutable values: the same object is the same routes and moves, so nothing here can fail.
    if (!old || !now || old === now) continue;
    for (const [key, route] of Object.entries(now.meta.routes)) {
      const previous = old.meta.routes[key];
      if (previous && route.epoch < previous.epoch) return { property: alwaysProperties[2], detail: `${now.id} durable route of ${key} went from epoch ${previous.epoch} to ${route.epoch}` };
    }
    if (old.up && now.up && old.incarnation === now.incarnation) {
      for (const [key, route] of now.node.routes) {
        const previous = old.node.routes.get(key);
        if (previous && route.epoch < previous.epoch) return { property: alwaysProperties[2], detail: `${now.id} route of ${key} went from epoch ${previous.epoch} to ${route.epoch}` };
      }
      for (const [key, move] of Object.entries(now.node.moves)) {
        const previous = old.node.moves[key];
        if (!previous || !previous.snapshot.matches('interrupted') || move.snapshot.matches('interrupted')) continue;
        // Leaving `interrupted` for good, by the administrator's abandon, is no restart.
        if (isAbandoning(move.snapshot)) continue;
        const durableStage = previous.snapshot.context.checkpoint.stage;
        const expected = patentRestartStage(move.kind, previous.snapshot.context.pieceCount, durableStage);
        const resumedAt = move.snapshot.context.pending?.stage ?? null;
        const ok = expected === null ? move.snapshot.matches({ moving: 'committing' }) : resumedAt === expected;
        if (!ok) return { property: alwaysProperties[4], detail: `${now.id} restarted ${key} (durable stage ${durableStage}) at ${JSON.stringify(move.snapshot.value)} stage ${resumedAt}, the table says ${expected ?? 'N/A (finish the flip)'}` };
      }
    }
  }
  return null;
}

/**
 * The patent's restart column, written from the tables rather than from the
 * machines: a failure while stage s = durable + 1 is under way resumes at
 * Table 1: 2 for stages 2 and 3; Table 2: s for a start stage, s − 1 for a
 * finish stage; N/A (no copy again, the flip completes) for the final stage.
 */
export function patentRestartStage(kind: MoveKind, pieceCount: number, durableStage: number): number | null {
  const last = finalStage(kind, pieceCount);
  const interrupted = Math.min(durableStage + 1, last);
  if (interrupted === last) return null;
  if (kind === 'unit') return 2;
  return interrupted % 2 === 0 ? interrupted : interrupted - 1;
}

export function goalsReached(sightings: World['sightings'], world: World): Record<string, boolean> {
  const stages = Array.from({ length: finalStage(world.config.moveKinds.includes('unit') && world.config.moveKinds.length === 1 ? 'unit' : 'piecewise', world.config.movePieces ?? world.config.pieces) - 1 }, (_, index) => index + 2);
  return {
    [sometimesGoals[0]]: sightings.moveCompleted,
    [sometimesGoals[1]]: sightings.dualWriteLanded,
    // Without crashes the goal does not apply; it used to be reported reached (a review found it).
    ...(world.config.crashes > 0 ? { [sometimesGoals[2]]: stages.every((stage) => sightings.completedAfterCrashAtStages.includes(stage)) } : {}),
    // In forwarding-pointer mode a late request is forwarded, never answered stale.
    ...(world.config.forwardingPointer ? { [sometimesGoals[4]]: sightings.pointerForwarded } : { [sometimesGoals[3]]: sightings.staleRetry }),
    ...((world.config.abandons ?? 0) > 0 ? { [sometimesGoals[7]]: sightings.abandonedCopyReleased === true } : {}),
    // A cancel overtakes its forward only where messages may be reordered and a time-out may fire before the forward lands.
    ...(cancelMayOvertakeForward(world.config) ? { [sometimesGoals[8]]: sightings.lateCancelledForwardRefused === true } : {}),
    ...((world.config.dataWriteFailures ?? 0) > 0 ? { [sometimesGoals[9]]: sightings.dataWriteFailed === true } : {}),
    ...((world.config.flushes ?? 0) > 0 && world.config.unflushedWrites ? { [sometimesGoals[5]]: sightings.flushSucceeded === true, [sometimesGoals[6]]: sightings.flushLossReported === true } : {}),
  };
}

function cancelMayOvertakeForward(config: World['config']): boolean {
  return config.network !== 'ordered' && !config.timersOnlyWhenQuiet && config.writes > 0 && (config.earlyTimersMax ?? 1) > 0;
}
