import type { MoveContext, MoveEvent } from '../../machines/migration/move-setup.js';
import { abandonNoticeTimerId, progressTimerId } from '../../machines/migration/move-setup.js';
import type { ReplicaContext, ReplicaEvent } from '../../machines/replica/replica.machine.js';
import type { RequestRoutingContext, RequestRoutingEvent } from '../../machines/routing/request-routing.machine.js';
import { cancelTimerId, forwardTimerId } from '../../machines/routing/request-routing.machine.js';

/**
 * For each machine, every event a runtime could deliver in a given state,
 * stale and duplicate ones included. The path tests extend shortest paths by
 * these; the differential test of the fast step drives random walks with them.
 * A machine that reached its final state gets none: the runtime drops a
 * finished machine, and XState would only warn that a stopped actor was sent
 * an event.
 */
/** Every event a runtime could deliver in this state, stale ones included. */
export function moveEvents(snapshot: { status?: string; context: MoveContext }): MoveEvent[] {
  if (snapshot.status === 'done') return [];
  const context = snapshot.context;
  const events: MoveEvent[] = [
    { type: 'move.begin' }, { type: 'crash' }, { type: 'restart' },
    { type: 'piece.copied', piece: context.piece, attempt: context.attempt },
    { type: 'destination.committed', attempt: context.attempt },
    { type: 'destination.failed', attempt: context.attempt },
    { type: 'destination.stale', attempt: context.attempt, destinationAttempt: context.attempt },
    { type: 'timer.fired', timerId: progressTimerId(context) },
    { type: 'move.abandon' },
    { type: 'destination.released', attempt: context.checkpoint.attempt },
    { type: 'timer.fired', timerId: abandonNoticeTimerId(context) },
  ];
  if (context.pending) events.push({ type: 'stage.persisted', stage: context.pending.stage, attempt: context.pending.attempt });
  return events;
}

export function replicaEvents(snapshot: { status?: string; context: ReplicaContext }): ReplicaEvent[] {
  if (snapshot.status === 'done') return [];
  const record = snapshot.context.record;
  const epoch = record?.epoch ?? 1;
  const attempt = record?.status === 'receiving' ? record.attempt : 1;
  return [
    { type: 'replica.create', epoch: 1 },
    { type: 'replica.receive', source: 'A', attempt: 1, epoch: epoch + 1 },
    { type: 'replica.receive', source: 'A', attempt: attempt + 1, epoch },
    { type: 'replica.commit', attempt, epoch },
    { type: 'replica.invalidate', epoch: epoch + 1, owner: 'B', forwardTo: null },
    { type: 'replica.abandon', epoch: epoch + 1, owner: 'A' },
    { type: 'replica.reclaim', epoch: epoch + 2 },
    { type: 'replica.recreate', epoch: epoch + 2 },
  ];
}

export function routingEvents(snapshot: { status?: string; context: RequestRoutingContext }): RequestRoutingEvent[] {
  if (snapshot.status === 'done') return [];
  const retry = snapshot.context.retries;
  return [
    { type: 'request.served' },
    { type: 'request.failed', errno: 5, reason: 'disk error' },
    { type: 'forward.replied', retry },
    { type: 'forward.stale', retry, owner: 'B', epoch: snapshot.context.route.epoch + 1, localCopy: 'absent' },
    // A stale answer that teaches nothing newer (its target's own table is as old): the retry is charged.
    { type: 'forward.stale', retry, owner: snapshot.context.route.owner, epoch: snapshot.context.route.epoch, localCopy: 'absent' },
    { type: 'forward.failed', retry, errno: 5, reason: 'peer error' },
    { type: 'timer.fired', timerId: forwardTimerId(snapshot.context) },
    { type: 'timer.fired', timerId: cancelTimerId(snapshot.context) },
    // The newer owner is this server itself (a destination that missed the push after a flip).
    { type: 'forward.stale', retry, owner: snapshot.context.self, epoch: snapshot.context.route.epoch + 1, localCopy: 'valid' },
    // The page flipped away while the request waited at its source.
    { type: 'copy.invalidated', route: { owner: 'B', epoch: snapshot.context.route.epoch + 1 }, localCopy: 'invalid', forwardTo: null },
    // ... with no newer route known here (the retry is charged).
    { type: 'copy.invalidated', route: snapshot.context.route, localCopy: 'invalid', forwardTo: null },
  ];
}
