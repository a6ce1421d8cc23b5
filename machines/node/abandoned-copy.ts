import type { PageKey, ServerId } from '../identifiers.js';
import { assert, pageKeyText } from '../identifiers.js';
import { reclaimEpochAfter } from '../migration/move-setup.js';
import type { ReplicaRecord } from '../replica/replica-record.js';
import type { ReplicaEvent } from '../replica/replica.machine.js';
import { start } from '../step.js';
import type { PeerMessage } from './messages.js';
import type { NodeDraft } from './node-draft.js';
import type { NodeEffect, Route } from './node-io.js';
import type { Continuation } from './node-state.js';
import type { NodeState } from './node-state.js';
import { isCommitUnderWay, isDeclarationUnderWay } from './node-state.js';

/**
 * The destination side of an abandoned move (machines/migration/move-setup.ts,
 * "Abandoning"): a partial copy that nobody will ever commit is let go.
 *
 * Theory of operation. The source of an abandoned move serves the page alone
 * at the move's epoch + 2 (`reclaimEpoch`); the destination's copy is still
 * `receiving` at the move's epoch + 1, an epoch no route will ever name. The
 * destination lets such a copy go, by recording it `invalid` (naming the
 * source at the new epoch) and, once that record is durable, deleting its
 * data, in three cases:
 *
 *   - the source's notice, `move.abandoned`, names this server's copy (its
 *     source and an epoch at or past the copy's): the release answers it with
 *     `move.released` once durable, and the source then drops its record;
 *   - a route past the copy's epoch is learnt in any other way
 *     (`releaseCopyOfPassedMove`, from node.ts's route learning): a restarted
 *     server asks the source of every copy it still receives, and a source
 *     answers a late acknowledgement of a move it no longer runs with its
 *     route;
 *   - a notice of a move none of whose copy is held here is answered at once,
 *     after its route is learnt (move data of that move still on its way must
 *     find the route passed, or it would begin a copy nobody releases).
 *
 * A notice that arrives while a release of the same source's copy is under
 * way takes over that release's answer, so the answer still waits until the
 * release is durable. A release whose commit fails puts the copy back to
 * receiving in memory (it still is on disk), so the next notice, route or
 * restart lets it go. A copy being committed (a commit sync or record under
 * way) is never let go this way: such a move was never abandonable.
 */
export interface AbandonedCopyWork {
  readonly next: NodeDraft;
  readonly effects: NodeEffect[];
  /** Steps the page's replica machine, persisting its record and resuming `awaiting` once durable (node.ts). */
  stepReplica(pageKey: PageKey, event: ReplicaEvent, awaiting: Continuation | null): boolean;
  /** Learns a route into the table (node.ts), which lets a copy it has passed go (`releaseCopyOfPassedMove`). */
  learnRoute(pageKey: PageKey, route: Route): void;
}

type AbandonedNotice = Extract<PeerMessage, { type: 'move.abandoned' }>;
type ReleasedContinuation = Extract<Continuation, { kind: 'abandon.released' }>;

/** Learns the source's route, lets go of a copy received from that source at the move's epoch, and answers once that is durable. */
export function receiveAbandoned(work: AbandonedCopyWork, from: ServerId, message: AbandonedNotice): void {
  const key = pageKeyText(message.pageKey);
  if (isCommitUnderWay(work.next.read('continuations'), key)) return;
  const record = work.next.replicas.get(key)?.context.record;
  assert(record?.status !== 'valid' || record.epoch !== message.epoch, `an abandoned move's destination never holds ${key} valid at the move's epoch`);
  const releasing = record?.status === 'receiving' && record.source === from && record.epoch <= message.epoch;
  const route = { owner: from, epoch: reclaimEpochAfter(message.epoch) };
  if (releasing) releaseAbandonedCopy(work, message.pageKey, route, { to: from, attempt: message.attempt, epoch: message.epoch });
  // The route is learnt in every case: move data of the abandoned move still on its way must find it passed.
  work.learnRoute(message.pageKey, route);
  // A release of this move's copy already under way (the route came first) answers once it is durable.
  if (releasing || answerReleaseUnderWay(work, key, from, message.attempt, message.epoch)) return;
  work.effects.push({ type: 'peer.send', to: from, message: { type: 'move.released', pageKey: message.pageKey, attempt: message.attempt, epoch: message.epoch } });
}

/**
 * A copy received at an epoch the page's route has passed belongs to a move that ended elsewhere (abandoned): nobody
 * will commit it, so it is let go. Only its own source's notice is answered (`receiveAbandoned`). Whether it was.
 */
export function releaseCopyOfPassedMove(work: AbandonedCopyWork, pageKey: PageKey): boolean {
  const key = pageKeyText(pageKey);
  const route = work.next.routes.get(key);
  const record = work.next.replicas.get(key)?.context.record;
  if (record?.status !== 'receiving' || route === undefined || route.epoch <= record.epoch || route.owner === work.next.config.self) return false;
  // This server is declaring the page lost (lost-pages.ts): its copy's record is the declaration's to write (a
  // review's trace: a release committed after the declared valid record left the page invalid here after a restart).
  if (isDeclarationUnderWay(work.next.read('continuations'), key)) return false;
  releaseAbandonedCopy(work, pageKey, route, null);
  return true;
}

/** The copy's invalid record was committed (or not): delete its data and answer the source, or keep it receiving. */
export function abandonedCopyReleased(work: AbandonedCopyWork, continuation: ReleasedContinuation, ok: boolean): void {
  const replica = work.next.replicas.get(continuation.pageText);
  const current = replica?.context.record;
  const unchanged = current?.status === 'invalid' && current.epoch === continuation.invalid.epoch;
  if (!ok) {
    // Not answered: the copy is still receiving on disk, and so it is here again (a random walk found the copy
    // answered released, and left receiving for good, after this commit failed). The source's next notice, a
    // route learnt again or a restart lets it go then.
    if (replica && unchanged) {
      work.next.replicas = work.next.replicas.with(continuation.pageText, start(work.next.config.machines.replica, { pageKey: replica.context.pageKey, record: continuation.receiving })[0]);
      // The route that passed it may never come again (a random walk of declared-lost pages found the copy receiving
      // for good after the fair rounds): the release is tried again after a pause, while it is still due.
      work.effects.push({ type: 'timer.set', timerId: releaseRetryTimerId(continuation.pageText, continuation.receiving.epoch), delayMs: work.next.config.moveRestartDelayMs });
    }
    return;
  }
  if (!replica || !unchanged) return;
  work.effects.push({ type: 'data.delete', pageKey: replica.context.pageKey, reason: 'abandoned' });
  if (continuation.to !== work.next.config.self) {
    work.effects.push({ type: 'peer.send', to: continuation.to, message: { type: 'move.released', pageKey: replica.context.pageKey, attempt: continuation.attempt, epoch: continuation.epoch } });
  }
}

export const releaseRetryTimer = 'release';

function releaseRetryTimerId(pageText: string, copyEpoch: number): string {
  return `${releaseRetryTimer}|${pageText}|${copyEpoch}`;
}

/** A release retry is due while the copy still receives at that epoch and a route past it is known. */
export function isReleaseRetryDue(state: Pick<NodeState, 'config' | 'routes' | 'replicas'>, pageText: string, copyEpoch: string): boolean {
  const record = state.replicas.get(pageText)?.context.record;
  const route = state.routes.get(pageText);
  return record?.status === 'receiving' && String(record.epoch) === copyEpoch && route !== undefined && route.epoch > record.epoch && route.owner !== state.config.self;
}

/** Whether a partial copy of the page is being recorded invalid; if so, its completion now answers `to`. */
function answerReleaseUnderWay(work: AbandonedCopyWork, pageText: string, to: ServerId, attempt: number, epoch: number): boolean {
  for (const [completionId, continuation] of work.next.read('continuations')) {
    // A release of a copy that source's move (this one or an earlier one) sent: the answer waits until it is durable.
    // A notice of a move none of whose copy is held here is answered at once.
    if (continuation.kind !== 'abandon.released' || continuation.pageText !== pageText) continue;
    if (continuation.receiving.status !== 'receiving' || continuation.receiving.source !== to || continuation.receiving.epoch > epoch) continue;
    work.next.continuations.set(completionId, { ...continuation, to, attempt, epoch });
    return true;
  }
  return false;
}

/** Records a receiving copy invalid (naming the route's owner) and, once that is durable, deletes its data and answers `answer`. */
function releaseAbandonedCopy(work: AbandonedCopyWork, pageKey: PageKey, route: Route, answer: { to: ServerId; attempt: number; epoch: number } | null): void {
  const key = pageKeyText(pageKey);
  const receiving = work.next.replicas.get(key)?.context.record;
  assert(receiving?.status === 'receiving', `only a copy still receiving is let go as abandoned (${key})`);
  delete work.next.attemptsJoined[key];
  delete work.next.blockVersions[key];
  const invalid: ReplicaRecord = { status: 'invalid', epoch: route.epoch, owner: route.owner, forwardTo: null };
  const self = work.next.config.self;
  const continuation: Continuation = { kind: 'abandon.released', pageText: key, to: answer?.to ?? self, attempt: answer?.attempt ?? -1, epoch: answer?.epoch ?? -1, receiving, invalid };
  work.stepReplica(pageKey, { type: 'replica.abandon', epoch: route.epoch, owner: route.owner }, continuation);
}
