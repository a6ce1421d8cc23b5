import type { Effect, RequestOutcome } from '../effects.js';
import type { PageKey, ServerId } from '../identifiers.js';
import { assert, assertNever, pageKeyOfText, pageKeyText, ownValue } from '../identifiers.js';
import type { MoveCheckpoint, MoveInput, MoveKind } from '../migration/checkpoint.js';
import type { MoveContext, MoveEvent } from '../migration/move-setup.js';
import { abandonNoticeTimerId, progressTimerId, reclaimEpoch } from '../migration/move-setup.js';
import { finishStage } from '../migration/stage-numbers.js';
import { moveEpoch, readServer, writeServers } from '../migration/queries.js';
import type { ReplicaRecord } from '../replica/replica-record.js';
import type { ReplicaEvent } from '../replica/replica.machine.js';
import type { LocalCopy, RequestRoutingEvent } from '../routing/request-routing.machine.js';
import { cancelledTryOutcome, cancelTimerId, errnoIo, forwardTimerId } from '../routing/request-routing.machine.js';
import { NodeDraft } from './node-draft.js';
import { abandonedCopyReleased, isReleaseRetryDue, receiveAbandoned, releaseCopyOfPassedMove, releaseRetryTimer } from './abandoned-copy.js';
import { applyBlockVersions, directWriteSequence, newerOnlyOnItsWay, noBlockVersions } from './block-versions.js';
import type { BlockVersions } from './block-versions.js';
import { answerLostCheck, claimDurable, isLostCheckTimerLive, lostCheckTimerFired, lostPageDeclared, lostPageDeleted, receiveLostAnswer, receiveLostCheck, refusesCommitFrom } from './lost-pages.js';
import { answerForgetCheck, forgetCheckTimerFired, isForgetCheckTimerLive, receiveForgetAnswer, receiveForgetCheck, takeoversDurable } from './member-forget.js';
import { answerFlush, endFlush, endFlushExcuse, excuseSilentMembers, flushHolders, flushWaitsFor, isFlushInFlight, settleFlushParts } from './flush-barrier.js';
import { pushGivenUpRoutes } from './given-up-routes.js';
import { moveMachineOf } from './node-machines.js';
import { isAbandoning, isUnderWay } from '../migration/move-machines.js';
import { copyStanding } from './copy-standing.js';
import { withReceivedDataToken } from './received-data-token.js';
import { fenceAllowsCancel, fenceConfirmed, firstIncarnationFence, isFencedOff, owesFences, receiveFence, settleOwedFences } from './incarnation-fence.js';
import { remember, rememberedValue } from './remembered-origins.js';
import type { WriteHolder } from './loss-watch.js';
import { acknowledged, noLossWatch, unionOfHolders, withConnection, withoutConnection } from './loss-watch.js';
import { startLabelled, stepLabelled } from '../labelled-memo.js';
import { start, step } from '../step.js';
import type { BlockOperation, PeerMessage } from './messages.js';
import type { DurableRecords, MetadataWrite, NodeEffect, NodeInput, Route } from './node-io.js';
import type { Continuation, DeferredHandover, MoveEntry, NodeState, ReplicaSnapshot, ReplyTo, RequestEntry, ServeEntry, TryEnding, VersionClaim } from './node-state.js';
import { cancelledPartKey, cancelledTryKey, clientEntryId, isCommitUnderWay, peerEntryId, writeSequencesPerIncarnation } from './node-state.js';
import type { VolumeDefinition } from './volume.js';
import { isActiveMember, memberIds, memberOf } from '../membership/membership.js';
import {
  announceMembership, answerLeaveCheck, askAboutRoutesNamingNonMembers, changeMembership, isLeaveCheckTimerLive, isMembershipCommitRetryDue, leaveCheckTimerFired, membershipCommitTimer, membershipCommitTimerFired,
  membershipPersisted, receiveLeaveAnswer, receiveLeaveCheck, receiveMembership, sendRoutesPastInitial, startMembership,
} from './node-membership.js';
import {
  endReservationByDefinition, isReservationTimerLive, mayDefine, receiveRelease, receiveReserve, receiveReserveAnswer, reservationTimer, reservationTimerFired, reserveVolume,
} from './volume-reservation.js';
import { copyChunksOf, initialOwner, movePieceCountProblem, movePieceOfBlock, movePieceSizeBlocks, pageKeysOf, pieceOfBlock, validateVolume } from './volume.js';

/**
 * One server of the group as a pure step: `nodeStep(state, input) → [state, effects]`.
 *
 * Theory of operation. The node owns no socket, disk or clock. It keeps the
 * machines of its pages — a replica machine per copy it holds, a move machine
 * per page it is moving away, a FIG. 7 routing machine per request in
 * flight — feeds them the inputs that concern them, and translates their
 * effects into node effects: peer messages, data and metadata I/O, replies,
 * timers. Completions come back as `io.done` inputs naming the continuation
 * to resume, so the node never blocks and a crash at any point loses exactly
 * its volatile state.
 *
 * Data never passes through the node: messages and I/O name tokens, and the
 * runtime moves the bytes. Writes during a move carry the source's write
 * sequence; the destination applies a write or a piece copy to a block only
 * if it is newer than what the block holds, so a copy that arrives after a
 * dual write, or a duplicated or reordered message, can never roll a block
 * back. The runtime must apply data writes of one page in the order issued.
 *
 * Handing reads over (a finished piece of Table 2, the flip of Table 1) waits
 * until every part sent to the destination is answered, with the page fenced,
 * and then for the destination's confirmation that this incarnation took the
 * attempt's copy and has synced the page; otherwise the piece or page is
 * copied again. A crash or power cut on either side may have lost what the
 * other still holds, and reads must never move to a copy that misses what the
 * source served (README, "Handing reads over").
 */
export function nodeStep(state: NodeState, input: NodeInput): [NodeState, NodeEffect[]] {
  const work = new NodeStep(state);
  work.handle(input);
  return work.finish();
}

/**
 * Several inputs in one step: the same state and the same effects, in the same
 * order, as `nodeStep` applied to each input in turn (the effects of all of
 * them concatenated). A step copies each map it changes once (see NodeDraft),
 * so a runtime that has several inputs at hand saves every copy but the first
 * by handing them over together. It is the same because handling an input
 * reads and writes only the draft, whose maps after one input hold exactly the
 * state a separate step would have finished with, and the step keeps nothing
 * else between inputs. model-tests/node/node-step-many.test.ts compares the
 * two over random simulated runs.
 */
export function nodeStepMany(state: NodeState, inputs: readonly NodeInput[], effectStarts?: number[]): [NodeState, NodeEffect[]] {
  const work = new NodeStep(state);
  for (const input of inputs) {
    // Where each input's effects begin, for a runtime that does something between inputs (holds a message's bytes).
    effectStarts?.push(work.effects.length);
    work.handle(input);
  }
  return work.finish();
}

/** Routing input (and context) fields the routing machine only copies into its context and effects. */
const routingLabels = ['requestId', 'pageKey'] as const;

class NodeStep {
  /** The step's working copy: maps are copied the first time the step writes them (see NodeDraft). */
  readonly next: NodeDraft;
  readonly effects: NodeEffect[] = [];
  readonly #self: ServerId;

  constructor(state: NodeState) {
    this.next = new NodeDraft(state);
    this.#self = state.config.self;
  }

  finish(): [NodeState, NodeEffect[]] {
    return [this.next.finish(), this.effects];
  }

  handle(input: NodeInput): void {
    if (input.type !== 'node.start' && !this.next.started) return;
    this.#dispatch(input);
    if (owesFences(this.next.incarnationFence)) settleOwedFences(this);
  }

  #dispatch(input: NodeInput): void {
    switch (input.type) {
      case 'node.start': return this.#start(input.durable);
      case 'client.request': return this.#acceptClientRequest(input.requestId, input.connectionId, input.operation);
      case 'client.flush': return this.#startFlush(input.requestId, input.connectionId, input.volume);
      case 'client.disconnected': return this.#forgetConnection(input.connectionId);
      case 'peer.message': return this.#receive(input.from, withReceivedDataToken(input.from, input.message));
      case 'io.done': return this.#resume(input.completionId, input.ok);
      case 'meta.failed': return this.#commitFailed(input.writes);
      case 'timer.fired': return this.#timerFired(input.timerId);
      case 'forward.unsent': return this.#tryCancelled(input.requestId, input.retry);
      case 'admin.move': return this.#startMove(input.requestId, input.pageKey, input.to, input.kind, input.pieceCount);
      case 'admin.abandonMove': return this.#abandonMove(input.requestId, input.pageKey);
      case 'admin.createVolume': return this.#createVolume(input.requestId, input.volume);
      case 'admin.changeMembership': return changeMembership(this, input.requestId, input.change);
      case 'membership.announce':
        announceMembership(this);
        return this.#announceVolumes();
      default: assertNever(input, 'node input');
    }
  }

  // ----- identity, durable records -----------------------------------------

  /** Every member of the group (draining ones too: they still hold pages), for route pushes and FLUSH barriers. */
  #group(): ServerId[] {
    return memberIds(this.next.membership);
  }

  #newId(prefix: string): string {
    this.next.nextId += 1;
    return `${prefix}:${this.#self}.${this.next.incarnation}.${this.next.nextId}`;
  }

  /** For the helpers in node-membership.ts, which resume through `io.done` like the node's own steps. */
  awaitCompletion(continuation: Continuation): string {
    return this.#await(continuation);
  }

  /** For abandoned-copy.ts and lost-pages.ts: steps a page's replica machine (see #stepReplica). */
  stepReplica(pageKey: PageKey, event: ReplicaEvent, awaiting: Continuation | null, alreadyDurable = false): boolean {
    return this.#stepReplica(pageKey, event, awaiting, alreadyDurable);
  }

  /** For abandoned-copy.ts: learns a route into the table (see #learnRoute). */
  learnRoute(pageKey: PageKey, route: Route): void {
    this.#learnRoute(pageKey, route);
  }

  #await(continuation: Continuation): string {
    const completionId = this.#newId('io');
    this.next.continuations.set(completionId, continuation);
    return completionId;
  }

  #start(durable: DurableRecords): void {
    this.next.started = true;
    this.next.lossEpoch = durable.lossEpoch ?? 0;
    this.next.earlierRunsSynced = durable.earlierRunsSynced === true;
    if (durable.earlierIncarnations === false) this.next.incarnationFence = firstIncarnationFence;
    startMembership(this, durable.membership);
    this.next.lostClaim = durable.lostClaim ?? null;
    for (const volume of durable.volumes) this.next.volumes[volume.name] = volume;
    this.next.routes = this.next.routes.withEntries(durable.routes.map(({ pageKey, route }) => [pageKeyText(pageKey), route]));
    this.next.replicas = this.next.replicas.withEntries(durable.replicas.map(({ pageKey, record }) => [pageKeyText(pageKey), start(this.next.config.machines.replica, { pageKey, record })[0]]));
    for (const { pageKey, input, checkpoint } of durable.moves) {
      // A move interrupted by this server's crash is rebuilt from its checkpoint and starts `interrupted`,
      // with the piece count it was started with (its durable input), not the volume's.
      const volume = ownValue(this.next.volumes, pageKey.volume);
      assert(volume && movePieceCountProblem(volume, input.kind, input.pieceCount) === null, `recovered move of ${pageKeyText(pageKey)} has a valid piece count`);
      assert(checkpoint.pieceModes.length === input.pieceCount, `recovered move of ${pageKeyText(pageKey)}: its checkpoint has one mode per piece`);
      const machine = moveMachineOf(this.next.config.machines, input.kind);
      const [snapshot, effects] = start(machine, { ...input, recovered: checkpoint });
      this.next.moves[pageKeyText(pageKey)] = { kind: input.kind, snapshot };
      this.#moveEffects(pageKey, effects);
      this.#afterMoveStep(pageKey);
    }
    this.#repairRoutesAfterRestart();
  }

  /**
   * A crash can swallow the push that follows a flip: the source's (if it
   * crashed between persisting the flip and sending) or the destination's (if
   * it was down when the push came). So on start a server re-pushes the route
   * of every copy it has given up, and asks about every valid copy its table
   * does not yet name it for. Tables still converge lazily on use; this makes
   * them converge without it.
   */
  #repairRoutesAfterRestart(): void {
    pushGivenUpRoutes(this, this.#group());
    askAboutRoutesNamingNonMembers(this);
    for (const replica of this.next.replicas.values()) {
      const { pageKey } = replica.context;
      const key = pageKeyText(pageKey);
      // A valid copy its table does not name at the copy's epoch: the flip that made it valid is not durably known
      // here (the route write is not awaited, and a crash may take it), and until it is, the page cannot move on.
      if (!this.next.moves[key] && copyStanding(this.next, key) === 'awaitingFlip') this.#askForRoute(pageKey);
      // A copy still receiving a move: if that move was abandoned while this server was down (or its notice and route
      // push were lost), its source's route is past the copy's epoch, and learning it lets the copy go (#learnRoute).
      const record = replica.context.record;
      if (record?.status === 'receiving' && record.source !== this.#self && !releaseCopyOfPassedMove(this, pageKey)) {
        this.effects.push({ type: 'peer.send', to: record.source, message: { type: 'route.query', pageKey } });
      }
    }
  }

  /**
   * Asks for the page's route: the server this one's table names, or, when the table names this server itself (at an
   * older epoch than its copy's), a server no longer a member (it left or was forgotten: it would never answer), or
   * nothing, every other member.
   */
  #askForRoute(pageKey: PageKey): void {
    const route = this.next.routes.get(pageKeyText(pageKey));
    const askEach = route && route.owner !== this.#self && memberOf(this.next.membership, route.owner) ? [route.owner] : this.#group().filter((server) => server !== this.#self);
    for (const server of askEach) this.effects.push({ type: 'peer.send', to: server, message: { type: 'route.query', pageKey } });
  }

  #learnRoute(pageKey: PageKey, route: Route): void {
    const key = pageKeyText(pageKey);
    const known = this.next.routes.get(key);
    // Routing epochs only grow: an older or equal report never overwrites a newer one.
    if (!known || known.epoch < route.epoch) {
      this.next.routes = this.next.routes.with(key, route);
      // The flip of a move this server committed is known: it now serves the page as its owner, and refuses late parts.
      const committedEpoch = this.next.read('attemptsJoined')[key]?.committedEpoch;
      if (committedEpoch !== undefined && committedEpoch !== null && route.owner === this.#self && route.epoch >= committedEpoch) delete this.next.attemptsJoined[key];
      this.effects.push({ type: 'meta.commit', completionId: null, writes: [{ kind: 'route', pageKey, route }] });
    }
    releaseCopyOfPassedMove(this, pageKey);
  }

  /**
   * The administrator is answered once the definition is durable here (a
   * crash before then leaves the volume to the other members, who give it
   * back: `volumes.known`); the other members define it as it reaches them.
   */
  #createVolume(requestId: string, volume: VolumeDefinition): void {
    const problem = validateVolume(volume) ?? (ownValue(this.next.volumes, volume.name) ? `volume ${volume.name} exists` : null) ??
      (ownValue(this.next.read('volumeReservations'), volume.name) ? `volume ${volume.name} is being created (on ${ownValue(this.next.read('volumeReservations'), volume.name)!.by}); try again` : null) ??
      (Object.keys(this.next.read('volumes')).length >= volumesMax ? `the group holds ${volumesMax} volumes, the most it may` : null) ??
      (volume.servers.every((server) => isActiveMember(this.next.membership, server)) ? null : 'volume names a server outside the group or draining');
    if (problem) {
      this.effects.push({ type: 'admin.reply', requestId, ok: false, message: problem });
      return;
    }
    reserveVolume(this, requestId, volume);
  }

  /** For volume-reservation.ts: a fresh id for a reservation. */
  newReservationId(): string {
    return this.#newId('vr');
  }

  /** For volume-reservation.ts: every member granted the name, so the volume is defined here and everywhere. */
  defineCreated(volume: VolumeDefinition, requestId: string): void {
    this.#defineVolume(volume, requestId);
    for (const server of this.#group()) {
      if (server !== this.#self) this.effects.push({ type: 'peer.send', to: server, message: { type: 'volume.define', volume } });
    }
  }

  /** `adminRequestId`: the administrator's request that created the volume here, answered once the definition is durable. */
  #defineVolume(volume: VolumeDefinition, adminRequestId: string | null = null): void {
    // Not over a name this server holds for another creation (which every member must grant, volume-reservation.ts).
    if (ownValue(this.next.volumes, volume.name) || validateVolume(volume) || !mayDefine(this.next, volume)) return;
    endReservationByDefinition(this, volume);
    this.next.volumes[volume.name] = volume;
    const writes: MetadataWrite[] = [{ kind: 'volume', volume }];
    const routes: [string, Route][] = [];
    const replicas: [string, ReplicaSnapshot][] = [];
    for (const { pageKey, route, record } of initialPageRecords(volume, this.#self)) {
      // A page may have moved, and its newer route reached this server, before the definition did (they travel on
      // different links): routing epochs only grow, and a copy this server already keeps a record of stays as it is.
      if (this.next.routes.has(pageKeyText(pageKey)) || this.next.replicas.has(pageKeyText(pageKey))) continue;
      routes.push([pageKeyText(pageKey), route]);
      writes.push({ kind: 'route', pageKey, route });
      if (record !== null) {
        replicas.push([pageKeyText(pageKey), start(this.next.config.machines.replica, { pageKey, record })[0]]);
        writes.push({ kind: 'replica', pageKey, record });
      }
    }
    // All of a volume's pages at once: one rebuild of each map, not one edit per page.
    this.next.routes = this.next.routes.withEntries(routes);
    this.next.replicas = this.next.replicas.withEntries(replicas);
    this.effects.push({ type: 'meta.commit', completionId: this.#volumeCompletion(volume, adminRequestId), writes });
  }

  /** The completion a volume definition's commit reports to: the administrator's answer, if one waits for it. */
  #volumeCompletion(volume: VolumeDefinition, adminRequestId: string | null): string | null {
    return adminRequestId === null ? null : this.#await({ kind: 'volume.persisted', volumeName: volume.name, requestId: adminRequestId });
  }

  /** The definition of a volume created here is durable (or its commit failed, and it is tried again after a pause). */
  #volumePersisted(continuation: Extract<Continuation, { kind: 'volume.persisted' }>, ok: boolean): void {
    const volume = ownValue(this.next.read('volumes'), continuation.volumeName);
    assert(volume, 'a volume being made durable stays defined');
    if (!ok) {
      this.effects.push({ type: 'timer.set', timerId: volumeDefinitionTimerId(volume.name, continuation.requestId), delayMs: this.next.config.moveRestartDelayMs });
      return;
    }
    this.effects.push({ type: 'admin.reply', requestId: continuation.requestId, ok: true, message: `volume ${volume.name} created: ${volume.pageCount} pages over ${volume.servers.join(', ')}` });
  }

  /** With each membership announcement: the names of the volumes this server knows, to every other member. */
  #announceVolumes(): void {
    const names = Object.keys(this.next.read('volumes')).sort();
    for (const to of this.#group()) if (to !== this.#self) this.effects.push({ type: 'peer.send', to, message: { type: 'volumes.known', names } });
  }

  /** A member's list of the volumes it knows: it is sent the definition of each one it lacks. */
  #volumesKnownBy(from: ServerId, names: readonly string[]): void {
    if (!memberOf(this.next.membership, from) || names.length > volumesMax) return;
    const known = new Set(names);
    const missing = Object.values(this.next.read('volumes')).filter((volume) => !known.has(volume.name));
    if (missing.length === 0) return;
    // Their moved pages first, so that the definitions do not make the member claim them (see `welcome`): one pass over
    // the routes for all of them (a pass per volume cost seconds with 64 volumes of 4,096 pages, a review measured).
    sendRoutesPastInitial(this, from, new Set(missing.map((volume) => volume.name)));
    for (const volume of missing) this.effects.push({ type: 'peer.send', to: from, message: { type: 'volume.define', volume } });
  }

  // ----- FIG. 7: requests ---------------------------------------------------

  /** A client's request: its connection is known from here on (FLUSH's loss reports are per connection, see loss-watch.ts). */
  #acceptClientRequest(requestId: string, connectionId: string, operation: BlockOperation): void {
    const replyTo: ReplyTo = { kind: 'client', requestId };
    // An unknown volume is refused by #acceptRequest, before any connection is tracked for it.
    if (ownValue(this.next.read('volumes'), operation.pageKey.volume) && !this.#knowConnection(connectionId, operation.pageKey.volume)) {
      return this.#replyDirect(replyTo, { status: 'error', errno: 11, reason: 'too many client connections' });
    }
    this.#acceptRequest(requestId, operation, replyTo, 0, `client:${requestId}`, null);
  }

  /** Starts tracking a connection on its first request (sampling the volume's loss count); false if too many are open. */
  #knowConnection(connectionId: string, volume: string): boolean {
    const watch = this.next.read('lossWatches')[volume] ?? noLossWatch;
    if (watch.connections[connectionId] !== undefined) return true;
    let open = 0;
    for (const other of Object.values(this.next.read('lossWatches'))) open += Object.keys(other.connections).length;
    const known = withConnection(watch, connectionId, this.next.config.clientConnectionsMax, open);
    if (known === null) return false;
    this.next.lossWatches[volume] = known;
    return true;
  }

  #forgetConnection(connectionId: string): void {
    for (const [volume, watch] of Object.entries(this.next.read('lossWatches'))) {
      const without = withoutConnection(watch, connectionId);
      if (without !== watch) this.next.lossWatches[volume] = without;
    }
  }

  #acceptRequest(requestId: string, operation: BlockOperation, replyTo: ReplyTo, hopCount: number, writeToken: string | null, senderIncarnation: number | null): void {
    const volume = ownValue(this.next.read('volumes'), operation.pageKey.volume);
    // No closure for the refusals: one made per request costs more than it saves (tsx names every const function it creates).
    if (!volume) return this.#refuse(replyTo, operation, { status: 'error', errno: 22, reason: `unknown volume ${operation.pageKey.volume}` });
    if (!isWithinOnePiece(volume, operation)) return this.#refuse(replyTo, operation, { status: 'error', errno: 22, reason: 'request must lie within one piece of one page' });
    const entryId = replyTo.kind === 'client' ? clientEntryId(requestId) : peerEntryId(replyTo.server, requestId, replyTo.retry);
    if (replyTo.kind === 'peer') {
      // At most once: a forwarded write is executed once, whatever the network duplicates or a sender's retry repeats.
      if (operation.kind === 'write') {
        const holders = rememberedValue(this.next.forwardedWritesDone, `${replyTo.server}|${requestId}`);
        if (holders !== undefined) return this.#replyDirect(replyTo, { status: 'ok' }, null, holders);
        // A try its sender cancelled, arriving late (it waited in a paused server's socket): it must never run.
        if (rememberedValue(this.next.forwardedTriesEnded, cancelledTryKey(replyTo.server, requestId, replyTo.retry)) !== undefined) return this.#replyDirect(replyTo, cancelledTryOutcome);
      }
      // Another try of a request already in hand: its answer (or the sender's next retry) settles it.
      if (this.#forwardedRequestInHand(replyTo.server, requestId)) return;
    }
    if (this.next.read('requests').get(entryId)) return; // A duplicated client request already in hand.
    // After the at-most-once checks: a copy of a try in hand refused for room would fail its write while it runs.
    if (this.next.read('requests').size >= this.next.config.requestsInFlightMax) {
      return this.#refuse(replyTo, operation, { status: 'error', errno: 11, reason: 'too many requests in flight' });
    }
    const { route, localCopy, forwardTo } = this.#routingView(operation);
    // Memoised per input outside the labels `requestId` and `pageKey`: see machines/labelled-memo.ts.
    const [snapshot, effects] = startLabelled(this.next.config.machines.requestRouting, {
      requestId: entryId, pageKey: operation.pageKey, self: this.#self, hopCount, route, localCopy,
      forwardTo, idempotent: operation.kind === 'read', retriesMax: this.next.config.routingRetriesMax, hopCountMax: this.next.config.hopCountMax,
      forwardTimeoutMs: this.next.config.forwardTimeoutMs,
    }, routingLabels);
    const entry: RequestEntry = {
      id: entryId, snapshot, operation, replyTo, writeToken: operation.kind === 'write' ? writeToken : null,
      readToken: operation.kind === 'read' ? this.#newId('read') : null, holders: [], senderIncarnation,
    };
    this.next.requests.set(entryId, entry);
    this.#trace('requestRouting', entryId, 'request.received', 'received', snapshot.value);
    this.#requestEffects(entryId, effects);
  }

  /**
   * Whether this server, the destination of a move of the operation's page,
   * serves it itself: its blocks lie in pieces the source has durably handed
   * over in the attempt this server follows (Table 2: moved pieces are served
   * by the destination), or this server has committed the move and not yet
   * learnt the flip. The attempt must have been joined in this incarnation, so
   * that its block versions order this server's own writes against the
   * source's parts (`directWriteSequence`), and its record must be durable.
   */
  #servesReceivedBlocks(operation: BlockOperation, key: string): boolean {
    const joined = this.next.read('attemptsJoined')[key];
    if (joined === undefined || !joined.recordDurable) return false;
    const record = this.next.replicas.get(key)?.context.record;
    // Once a claim to declare its source's pages lost is accepted here, the partial copy is the declaration's to let
    // go: its handed-over pieces are no longer served (writes acknowledged here from then on would be lost unreported).
    if (record?.status === 'receiving') return record.attempt === joined.attempt && operation.offsetBlocks + operation.lengthBlocks <= joined.handedOverBlocks && !refusesCommitFrom(this.next, record.source);
    return this.#servesCommitted(key);
  }

  /** Whether this server, having committed a move of the page, serves it itself until it learns the flip (#servesReceivedBlocks). */
  #servesCommitted(pageText: string): boolean {
    const joined = this.next.read('attemptsJoined')[pageText];
    const record = this.next.replicas.get(pageText)?.context.record;
    return joined !== undefined && joined.recordDurable && record?.epoch === joined.committedEpoch && copyStanding(this.next, pageText) === 'awaitingFlip';
  }

  /**
   * What the routing machine is told of the operation's page here, whenever it looks up (a request taken in, a stale
   * answer, a look-up again after a flip): the freshest route (#lookup), and a valid copy wherever this server serves
   * the operation's blocks, by the tables or as a move's destination (#servesReceivedBlocks). The one view for all:
   * a request told otherwise on its way back found itself named without a valid copy (the explorer, forwarding-pointer
   * mode, 25 steps: s2's write went to s1, whose pointer sent it to s3, which was moving the page to s2; the stale
   * answer, naming s2 at the new epoch, came back once s2 had committed and before it learnt the flip, and s2, which
   * served new requests for the page then, answered this one EIO).
   */
  #routingView(operation: BlockOperation): { route: Route; localCopy: LocalCopy; forwardTo: ServerId | null } {
    const lookup = this.#lookup(operation.pageKey);
    // Table 2: a piece already handed over here is served here, not sent to the source to come back as a part.
    if (lookup.localCopy === 'valid' || !this.#servesReceivedBlocks(operation, pageKeyText(operation.pageKey))) return lookup;
    return { ...lookup, localCopy: 'valid' };
  }

  /** The freshest route this server knows: its table, or the record of a copy it gave up, whichever is newer. */
  #lookup(pageKey: PageKey): { route: Route; localCopy: LocalCopy; forwardTo: ServerId | null } {
    const key = pageKeyText(pageKey);
    const record = this.next.replicas.get(key)?.context.record ?? null;
    const tableRoute = this.next.routes.get(key) ?? { owner: this.#self, epoch: 0 };
    const recordIsNewest = record?.status === 'invalid' && record.epoch >= tableRoute.epoch;
    const route = recordIsNewest ? { owner: record.owner, epoch: record.epoch } : tableRoute;
    // By the tables alone a committed destination owns the page once it has learnt the flip (the route names it); until
    // then it serves the page only through #servesReceivedBlocks, which also orders its writes against the source's parts.
    const serving = copyStanding(this.next, key) === 'owned';
    const localCopy: LocalCopy = serving ? 'valid' : record?.status === 'invalid' ? 'invalid' : 'absent';
    // A forwarding pointer to a server that has left is ignored: the request follows the route instead (and repairs it
    // lazily). So is one older than the table: the page has moved on since this copy gave it up, and the pointer's
    // target may no longer hold it (a review's trace: a request at s1 followed its pointer to s2, which was receiving
    // the page back from s3, answered stale, and was asked again until the client got EIO, s3 never tried).
    const forwardTo = recordIsNewest && record.forwardTo !== null && memberOf(this.next.membership, record.forwardTo) ? record.forwardTo : null;
    return { route, localCopy, forwardTo };
  }

  /** `learnsRoutes` false: the event's route is provisional (see `request.answer`), followed but not written to the table. */
  #stepRequest(entryId: string, event: RequestRoutingEvent, learnsRoutes = true): void {
    const entry = this.next.read('requests').get(entryId);
    if (!entry || entry.snapshot.status !== 'active') return;
    const [snapshot, effects] = stepLabelled(this.next.config.machines.requestRouting, entry.snapshot, event, routingLabels);
    this.#trace('requestRouting', entryId, event.type, entry.snapshot.value, snapshot.value);
    this.next.requests.set(entryId, { ...entry, snapshot });
    this.#requestEffects(entryId, learnsRoutes ? effects : effects.filter((effect) => effect.type !== 'routing.learn'));
  }

  #requestEffects(entryId: string, effects: readonly Effect[]): void {
    let cancelledWithoutAsking = false;
    for (const effect of effects) {
      const entry = this.next.read('requests').get(entryId);
      assert(entry, `request ${entryId} exists while its effects run`);
      switch (effect.type) {
        case 'request.serveLocal': this.#serveLocal(entry); break;
        case 'request.forward':
          this.effects.push({
            type: 'peer.send', to: effect.to,
            message: {
              type: 'request.forward', requestId: entryId, hopCount: effect.hopCount, retry: entry.snapshot.context.retries, operation: entry.operation, dataToken: entry.writeToken,
              senderIncarnation: this.next.incarnation,
            },
          });
          break;
        case 'request.cancel':
          // A server that has left the group holds no valid copy (it drained, or was forgotten owning none), so the
          // try cannot run there; nobody would answer a cancel sent to it, and its client would wait for ever.
          if (!memberOf(this.next.membership, effect.to)) cancelledWithoutAsking = true;
          else this.effects.push({ type: 'peer.send', to: effect.to, message: { type: 'request.cancel', requestId: entryId, retry: entry.snapshot.context.retries, hopCount: effect.hopCount } });
          break;
        case 'request.reply': this.#finishRequest(entry, effect.outcome); break;
        case 'routing.learn': this.#learnRoute(effect.pageKey, { owner: effect.owner, epoch: effect.epoch }); break;
        case 'timer.set': this.effects.push({ type: 'timer.set', timerId: `request|${entryId}|${effect.timerId}`, delayMs: effect.delayMs }); break;
        default: throw new Error(`request machine emitted ${effect.type}`);
      }
    }
    if (cancelledWithoutAsking) this.#tryCancelled(entryId, this.next.read('requests').get(entryId)!.snapshot.context.retries);
  }

  /** Try `retry` of this server's forwarded write `entryId` will never run at its target: the write fails (`cancelling`). */
  #tryCancelled(entryId: string, retry: number): void {
    this.#stepRequest(entryId, { type: 'forward.failed', retry, errno: cancelledTryOutcome.errno, reason: cancelledTryOutcome.reason });
  }

  #finishRequest(entry: RequestEntry, outcome: RequestOutcome): void {
    this.next.requests.delete(entry.id);
    const dataToken = outcome.status === 'ok' ? entry.readToken : null;
    const holders = outcome.status === 'ok' ? entry.holders : [];
    // Noted before the client hears of it: a FLUSH started after the reply covers this write (see loss-watch.ts).
    if (entry.replyTo.kind === 'client' && holders.length > 0) this.#noteAcknowledged(entry.operation.pageKey.volume, holders);
    const routeProvisional = outcome.status === 'stale' && outcome.epoch > this.#lookup(entry.operation.pageKey).route.epoch;
    this.#replyDirect(entry.replyTo, outcome, dataToken, holders, routeProvisional);
    if (entry.replyTo.kind === 'peer' && entry.operation.kind === 'write') {
      if (outcome.status === 'ok') this.next.forwardedWritesDone = remember(this.next.forwardedWritesDone, `${entry.replyTo.server}|${entry.replyTo.requestId}`, holders, this.next.config.forwardedWritesRememberedMax);
      else this.#rememberTryEnded(entry.replyTo, 'answered');
    }
    if (entry.readToken) this.effects.push({ type: 'token.release', token: entry.readToken });
    // A peer's write bytes, unless another try of the same client request held here still needs them. (Looked for
    // only for a peer's request: a scan of every request in flight per client request adds up.)
    if (entry.writeToken && entry.replyTo.kind === 'peer') this.#releaseReceivedData(entry.writeToken);
  }

  /** Answers a request refused before it started; a peer's write try is then remembered as ended (`#rememberTryEnded`). */
  #refuse(replyTo: ReplyTo, operation: BlockOperation, outcome: RequestOutcome): void {
    this.#replyDirect(replyTo, outcome);
    if (replyTo.kind === 'peer' && operation.kind === 'write') this.#rememberTryEnded(replyTo, 'answered');
  }

  /**
   * A forwarded write's try answered here with an error or stale: remembered
   * as cancelled, so that a copy of it the network delivers again later is
   * refused rather than run, after its sender failed the write (a review's
   * trace on a duplicating network: the copy ran over a write acknowledged
   * since). `how` says whether its sender cancelled it or it was answered
   * (refused, an error, stale): the node treats both alike; the explorer's
   * goals tell them apart.
   */
  #rememberTryEnded(replyTo: Extract<ReplyTo, { kind: 'peer' }>, how: TryEnding): void {
    this.next.forwardedTriesEnded = remember(this.next.forwardedTriesEnded, cancelledTryKey(replyTo.server, replyTo.requestId, replyTo.retry), how, this.next.config.forwardedTriesEndedRememberedMax);
  }

  /** `holders`: for a peer, the servers that applied a write acknowledged `ok` without making it durable (see loss-watch.ts). */
  #replyDirect(replyTo: ReplyTo, outcome: RequestOutcome, dataToken: string | null = null, holders: readonly WriteHolder[] = [], routeProvisional = false): void {
    if (replyTo.kind === 'client') {
      this.effects.push({ type: 'client.reply', requestId: replyTo.requestId, outcome, dataToken });
    } else {
      this.effects.push({
        type: 'peer.send', to: replyTo.server,
        message: { type: 'request.answer', requestId: replyTo.requestId, retry: replyTo.retry, outcome, dataToken, holders, ...(routeProvisional ? { routeProvisional: true as const } : {}) },
      });
    }
  }

  /**
   * Records that a write acknowledged to a client of `volume` is not durable on
   * `holders` yet. Per volume, not per connection: a FLUSH on any connection to
   * the volume covers it (CAN_MULTI_CONN), even once its own connection closed.
   */
  #noteAcknowledged(volume: string, holders: readonly WriteHolder[]): void {
    const watch = this.next.read('lossWatches')[volume] ?? noLossWatch;
    const next = acknowledged(watch, holders, isFlushInFlight(this.next, volume));
    // Written only when it changed: the first write in a step copies the record of every volume's watch.
    if (next !== watch) this.next.lossWatches[volume] = next;
  }

  /** Serve from this server's valid copy, following the read/write targets of a move of the page in progress. */
  #serveLocal(entry: RequestEntry): void {
    const { operation } = entry;
    const key = pageKeyText(operation.pageKey);
    const volume = ownValue(this.next.read('volumes'), operation.pageKey.volume);
    assert(volume, 'volume of a served request exists');
    const move = this.#activeMoveContext(key);
    // Routing during a move follows the move's own pieces; the volume's finer granules each lie inside one of them.
    const piece = move ? movePieceOfBlock(volume, move.pieceCount, operation.offsetBlocks) : 0;
    assert(!move || piece === movePieceOfBlock(volume, move.pieceCount, operation.offsetBlocks + operation.lengthBlocks - 1), 'a request part lies within one piece of the move');
    const servingDestination = this.#servingDestination(key, entry);
    if (servingDestination !== null) {
      if (this.#fromDestinationBeforeFlip(entry, servingDestination.owner)) {
        this.next.parked[key] = [...(this.next.read('parked')[key] ?? []), entry.id];
        return;
      }
      // The destination serves the whole page now (#servesReceivedBlocks): the request goes there rather than wait
      // for the commit or the flip here.
      this.#stepRequest(entry.id, { type: 'copy.invalidated', route: servingDestination, localCopy: 'invalid', forwardTo: null });
      return;
    }
    if (this.#fenced(key, piece, operation.kind)) {
      // The flip must not overtake a part still on its way to the destination, so nothing new starts until it is done.
      this.next.parked[key] = [...(this.next.read('parked')[key] ?? []), entry.id];
      return;
    }
    const servers = operation.kind === 'read'
      ? [move ? readServer(move, piece) : this.#self]
      : move ? writeServers(move, piece) : [this.#self];
    let sequence = 0;
    if (operation.kind === 'write') {
      sequence = this.next.lastWriteSequence + 1;
      assert(sequence < (this.next.incarnation + 1) * writeSequencesPerIncarnation, 'the write sequences of this incarnation are not used up');
      this.next.lastWriteSequence = sequence;
    }
    // A destination serving a handed-over piece itself: its write is versioned above every part it has applied.
    const joined = move ? undefined : this.next.read('attemptsJoined')[key];
    let claim: VersionClaim | undefined;
    if (operation.kind === 'write' && joined !== undefined) {
      const direct = directWriteSequence(this.next.read('blockVersions')[key] ?? noBlockVersions, Math.max(joined.sourceSequenceSeen, this.#newestClaim(key)));
      claim = { pageText: key, source: joined.source, epoch: joined.epoch, sequence: direct, runs: [[operation.offsetBlocks, operation.lengthBlocks]] };
    }
    const serve: ServeEntry = { id: entry.id, kind: operation.kind, remaining: servers, sequence, retries: 0, holders: [] };
    this.next.serves.set(entry.id, serve);
    for (const server of servers) this.#servePart(serve, entry, server, move, claim);
  }

  /**
   * A page is fenced while its move commits: from the commit request until
   * the destination answers that its commit is durable (or the move is
   * interrupted), new requests wait, and the commit itself waits for every
   * part already sent to the destination. Otherwise a dual write or a read
   * could reach the destination after it learnt it owns the page, and be
   * refused there after the source had already applied (and served) it.
   * While the source then persists its own flip, and for a piecewise move as
   * soon as `move.commit` is sent, requests go to the destination whole
   * instead (`#servingDestination`). A piece's hand-over (Table 2)
   * fences that piece only: the others' parts go where they went before and
   * after it. `piece` null asks whether any of the page is fenced.
   *
   * A write to a piece being handed over is not held (`kind` 'write'): it goes
   * to both sides, as the piece in transit's writes do, and the hand-over
   * waits only for the parts of writes begun before it (`sequenceDrained`).
   * Reads are what the fence protects: none is served from the source's copy
   * after the hand-over began, so none can have seen a write there that the
   * destination has not applied yet when reads move over to it. Such a write
   * is not acknowledged before its part lands, and once the destination
   * serves the piece itself, its own writes are versioned above every
   * sequence the source had handed out by then (`piece.copy.sourceSequence`),
   * so a late part cannot roll them back. `kind` null: held whatever it is.
   */
  #fenced(pageText: string, piece: number | null = null, kind: 'read' | 'write' | null = null): boolean {
    const move = this.next.read('moves')[pageText];
    if (move === undefined || move.snapshot.status !== 'active') return false;
    const { snapshot } = move;
    if (snapshot.matches({ moving: 'committing' }) || snapshot.matches('abandoning')) return true;
    if (snapshot.matches({ moving: 'flipping' })) return move.destinationServesAttempt !== snapshot.context.attempt;
    // Table 2 hands a finished piece's reads to the destination: a part still on its way there (a dual write the source
    // applied and may have served) must land first, and nothing new may start until the hand-over is durable.
    if (move.kind === 'piecewise' && snapshot.matches({ moving: { finishPiece: 'persisting' } })) return kind !== 'write' && (piece === null || piece === snapshot.context.piece);
    // Table 1 after a failure past the copy: the destination may already own the page (its commit answer lost), and a
    // source that lost unsynced writes in a power cut must not serve reads the destination's copy would then contradict.
    return move.kind === 'unit' && snapshot.matches('interrupted') && snapshot.context.checkpoint.pieceModes[0] === 'copied';
  }

  /**
   * The destination and the new epoch while the destination serves the whole
   * page of a move from here, so that a request goes there instead of waiting
   * behind the fence; null otherwise. Two cases:
   *
   * - The move flips here: the destination has answered that its commit is
   *   durable and that it serves the page, and this server's own flip is
   *   being persisted.
   * - A piecewise move commits and its `move.commit` is sent: every piece is
   *   durably handed over, and the destination serves the page from that
   *   message on (#receiveCommit), whether its commit then succeeds or the
   *   move restarts (a restart from here only commits again: no piece is
   *   copied twice, so nothing the destination wrote is taken back). This
   *   server sends no part meanwhile, so none can reach the destination after
   *   it learnt it owns the page. Only a request of this server's own client,
   *   on its first look-up, goes: a destination that does not serve the page
   *   (it restarted) answers it stale, and one that has not had the commit yet
   *   (a reordering network) sends it back; either way it then waits here.
   *   Not a unit move: its source serves the reads and applies the writes
   *   until the flip (Table 1).
   */
  #servingDestination(pageText: string, entry: RequestEntry): { owner: ServerId; epoch: number } | null {
    const move = this.next.read('moves')[pageText];
    if (move === undefined || move.snapshot.status !== 'active') return null;
    const { context } = move.snapshot;
    const flipping = move.snapshot.matches({ moving: 'flipping' }) && move.destinationServesAttempt === context.attempt;
    const committing = move.kind === 'piecewise' && move.snapshot.matches({ moving: 'committing' }) && this.next.read('handoversDeferred')[pageText]?.kind !== 'commit'
      && entry.snapshot.context.hopCount === 0 && entry.snapshot.context.retries === 0;
    return flipping || committing ? { owner: context.destination, epoch: moveEpoch(context) } : null;
  }

  /**
   * Whether the request came from the move's destination itself while the destination serves the page ahead of this
   * server's flip (#servingDestination). Such a request (the destination forwarded it before it committed, or it
   * has restarted since) waits here for the flip: a stale answer now would name the destination owner at the new
   * epoch, and the destination would take that for the flip (copy-standing.ts) and might move the page on while
   * this server, crashing before its flip is durable, restarts the move and asks it to commit again (the explorer
   * found three valid copies and the old source committing for ever: 3 servers, two unit moves, a crash, 21 steps).
   * After the flip its answer names the destination from this server's durable record.
   */
  #fromDestinationBeforeFlip(entry: RequestEntry, destination: ServerId): boolean {
    return entry.replyTo.kind === 'peer' && entry.replyTo.server === destination;
  }

  /**
   * Whether a part of a request for the page (for one piece of its move, unless `piece` is null) is outstanding at
   * `server`; of writes, only those with a sequence up to `sequenceMax` count.
   */
  #partsOutstandingAt(pageText: string, server: ServerId, piece: number | null, sequenceMax = Infinity): boolean {
    const move = this.#activeMoveContext(pageText);
    for (const serve of this.next.read('serves').values()) {
      if (!serve.remaining.includes(server) || (serve.kind === 'write' && serve.sequence > sequenceMax)) continue;
      const operation = this.next.read('requests').get(serve.id)?.operation;
      if (operation === undefined || pageKeyText(operation.pageKey) !== pageText) continue;
      const volume = ownValue(this.next.read('volumes'), operation.pageKey.volume);
      if (piece === null || !move || !volume || movePieceOfBlock(volume, move.pieceCount, operation.offsetBlocks) === piece) return true;
    }
    return false;
  }

  /** Carries out a deferred hand-over (commit request or piece hand-over checkpoint) once nothing is outstanding at the destination. */
  #sendDeferredHandover(pageText: string): void {
    const deferred = this.next.read('handoversDeferred')[pageText];
    if (!deferred || (deferred.kind === 'finishPiece' && deferred.confirming)) return;
    if (deferred.kind === 'finishPiece' ? this.#partsOutstandingAt(pageText, deferred.destination, deferred.piece, deferred.sequenceDrained) : this.#partsOutstandingAt(pageText, deferred.destination, null)) return;
    delete this.next.handoversDeferred[pageText];
    const move = this.next.read('moves')[pageText];
    if (!move || move.snapshot.status !== 'active' || !this.#fenced(pageText) || move.snapshot.context.attempt !== deferred.attempt) return;
    const context = move.snapshot.context;
    if (deferred.kind === 'abandon') {
      this.#persistCheckpoint(context.pageKey, context, deferred.checkpoint);
      return;
    }
    if (deferred.kind === 'commit') {
      this.effects.push({ type: 'peer.send', to: deferred.destination, message: { type: 'move.commit', pageKey: context.pageKey, attempt: deferred.attempt, epoch: deferred.epoch, freshCopy: deferred.freshCopy, sourceSequence: this.next.lastWriteSequence } });
      this.#releaseParkedToDestination(pageText);
      return;
    }
    // Table 2: the destination confirms it still holds, durably, everything sent this attempt (a power cut there may
    // have lost a dual write the source has served since); the checkpoint waits for the answer or a time-out.
    this.next.handoversDeferred[pageText] = { ...deferred, confirming: true };
    this.effects.push({ type: 'peer.send', to: deferred.destination, message: { type: 'piece.handover', pageKey: context.pageKey, attempt: deferred.attempt, epoch: context.checkpoint.epoch + 1, piece: deferred.piece } });
    this.effects.push({ type: 'timer.set', timerId: `handover|${pageText}|${deferred.attempt}:${deferred.stage}`, delayMs: context.progressTimeoutMs });
  }

  /**
   * A destination acknowledged move data of a page this server no longer moves there: a message sent before the move
   * was abandoned (delayed, or queued while the destination was down) began a copy there that no notice will reach
   * once the abandoned record has gone (answered, or replaced by a newer move). The route tells it the page has
   * passed its copy's epoch, and it lets the copy go (#learnRoute). Normal acknowledgements find their move.
   */
  #answerStaleMoveAck(from: ServerId, pageKey: PageKey, epoch: number | null): void {
    if (!this.#answersCurrentMove(from, pageKey, epoch)) this.#sendRoute(from, pageKey);
  }

  /** Tells `to` this server's freshest route of the page (its table, or what its copy's record knows). */
  #sendRoute(to: ServerId, pageKey: PageKey): void {
    const { route } = this.#lookup(pageKey);
    if (route.epoch > 0) this.effects.push({ type: 'peer.send', to, message: { type: 'route.update', pageKey, owner: route.owner, epoch: route.epoch } });
  }

  /** The destination's answer to piece.handover: persist the finish checkpoint, or restart the piece's copy. */
  #pieceHandedOver(from: ServerId, message: Extract<PeerMessage, { type: 'piece.handedOver' }>): void {
    const key = pageKeyText(message.pageKey);
    if (!this.#answersCurrentMove(from, message.pageKey, message.epoch)) return message.ok ? this.#sendRoute(from, message.pageKey) : undefined;
    const deferred = this.next.read('handoversDeferred')[key];
    const move = this.next.read('moves')[key];
    if (deferred?.kind !== 'finishPiece' || !deferred.confirming || deferred.attempt !== message.attempt || deferred.piece !== message.piece) return;
    if (!move || move.snapshot.status !== 'active' || move.snapshot.context.attempt !== message.attempt) return;
    if (!message.ok) return this.#stepMove(message.pageKey, { type: 'destination.failed', attempt: message.attempt });
    delete this.next.handoversDeferred[key];
    const context = move.snapshot.context;
    if (context.pending?.stage === deferred.stage) this.#persistCheckpoint(context.pageKey, context, context.pending);
  }

  /**
   * Sends the parked requests that may now go to the destination there (#servingDestination: a piecewise move's
   * commit was sent); the others stay parked until the fence lifts.
   */
  #releaseParkedToDestination(pageText: string): void {
    const parked = this.next.read('parked')[pageText];
    if (!parked) return;
    const staying: string[] = [];
    for (const entryId of parked) {
      const entry = this.next.read('requests').get(entryId);
      if (!entry || entry.snapshot.status !== 'active') continue;
      const destination = this.#servingDestination(pageText, entry);
      if (destination === null || this.#fromDestinationBeforeFlip(entry, destination.owner)) staying.push(entryId);
      else this.#stepRequest(entryId, { type: 'copy.invalidated', route: destination, localCopy: 'invalid', forwardTo: null });
    }
    if (staying.length > 0) this.next.parked[pageText] = staying;
    else delete this.next.parked[pageText];
  }

  /** Lets parked requests go once the fence lifts: to the new owner after a flip, or served here after an interruption. */
  #releaseParked(pageText: string, flipped: boolean): void {
    const parked = this.next.read('parked')[pageText];
    if (!parked || this.#fenced(pageText)) return;
    delete this.next.parked[pageText];
    for (const entryId of parked) {
      const entry = this.next.read('requests').get(entryId);
      if (!entry || entry.snapshot.status !== 'active') continue;
      if (!flipped) {
        this.#serveLocal(entry);
        continue;
      }
      const { route, localCopy, forwardTo } = this.#routingView(entry.operation);
      this.#stepRequest(entryId, { type: 'copy.invalidated', route, localCopy, forwardTo });
    }
  }

  /**
   * Whether `from`, answering about a move of the page at `epoch` (as its destination receives it), is the destination
   * of the move this server runs now, at that move's epoch: see messages.ts on the answers about a move.
   */
  #answersCurrentMove(from: ServerId, pageKey: PageKey, epoch: number | null): boolean {
    const context = this.#activeMoveContext(pageKeyText(pageKey));
    return context !== null && context.destination === from && (epoch === null || moveEpoch(context) === epoch);
  }

  #activeMoveContext(pageText: string): MoveContext | null {
    const move = this.next.read('moves')[pageText];
    return move && move.snapshot.status === 'active' ? move.snapshot.context : null;
  }

  #servePart(serve: ServeEntry, entry: RequestEntry, server: ServerId, move: MoveContext | null, claim?: VersionClaim): void {
    const { operation } = entry;
    const key = pageKeyText(operation.pageKey);
    if (server === this.#self) {
      const completionId = this.#await(claim ? { kind: 'serve.localDone', serveId: serve.id, versionClaim: claim } : { kind: 'serve.localDone', serveId: serve.id });
      if (operation.kind === 'read') {
        assert(entry.readToken, 'a read has a token to read into');
        this.effects.push({ type: 'data.read', completionId, pageKey: operation.pageKey, offsetBlocks: operation.offsetBlocks, lengthBlocks: operation.lengthBlocks, intoToken: entry.readToken });
      } else {
        assert(entry.writeToken, 'a write has a payload token');
        this.next.localWritesInFlight.set(key, [...(this.next.read('localWritesInFlight').get(key) ?? []), serve.sequence]);
        this.effects.push({ type: 'data.write', completionId, pageKey: operation.pageKey, offsetBlocks: operation.offsetBlocks, lengthBlocks: operation.lengthBlocks, fromToken: entry.writeToken, tokenOffsetBlocks: 0, durable: operation.fua });
      }
      return;
    }
    // The other side of a move: the destination, addressed with the move's attempt and new epoch.
    const attempt = move?.attempt ?? 0;
    const epoch = move ? moveEpoch(move) : 0;
    if (operation.kind === 'read') {
      this.effects.push({ type: 'peer.send', to: server, message: { type: 'block.read', requestId: serve.id, pageKey: operation.pageKey, attempt, epoch, offsetBlocks: operation.offsetBlocks, lengthBlocks: operation.lengthBlocks } });
    } else {
      assert(entry.writeToken, 'a write has a payload token');
      this.effects.push({
        type: 'peer.send', to: server,
        message: { type: 'block.write', requestId: serve.id, pageKey: operation.pageKey, attempt, epoch, offsetBlocks: operation.offsetBlocks, lengthBlocks: operation.lengthBlocks, sequence: serve.sequence, fua: operation.fua, dataToken: entry.writeToken, senderIncarnation: this.next.incarnation },
      });
    }
    this.effects.push({ type: 'timer.set', timerId: `serve|${serve.id}|${serve.retries}`, delayMs: this.next.config.peerRetryDelayMs });
  }

  /** `lossEpoch`: a write part's writer's (see loss-watch.ts); null for a read. */
  #servePartDone(serveId: string, server: ServerId, ok: boolean, readToken: string | null, lossEpoch: number | null, cancelled = false): void {
    const serve = this.next.read('serves').get(serveId);
    // A late or repeated answer (its part done, or its request gone with an earlier incarnation): nobody reads what it brought.
    if (!serve || !serve.remaining.includes(server)) return readToken ? this.#releaseReceivedData(readToken) : undefined;
    if (!ok && cancelled && serve.cancelling === true) {
      // The destination will never apply the part: the write fails now, as a forward cancelled at its target does.
      this.next.serves.delete(serveId);
      const entry = this.next.read('requests').get(serveId);
      this.#stepRequest(serveId, { type: 'request.failed', errno: errnoIo, reason: `no answer from ${server} within the time-out; the part was cancelled there` });
      if (entry) this.#sendDeferredHandover(pageKeyText(entry.operation.pageKey));
      return;
    }
    if (!ok) return; // Left outstanding: the retry timer resends it (or, cancelling, asks again).
    let entry = this.next.read('requests').get(serveId);
    if (readToken && entry) this.next.requests.set(serveId, entry = { ...entry, readToken });
    // A write that is not durable at once is held, until a sync, by every server whose part completed.
    const holders = lossEpoch === null || entry?.operation.fua !== false ? serve.holders : unionOfHolders(serve.holders, [{ server, lossEpoch }]);
    const remaining = serve.remaining.filter((candidate) => candidate !== server);
    if (remaining.length > 0) {
      this.next.serves.set(serveId, { ...serve, remaining, holders });
      return;
    }
    this.next.serves.delete(serveId);
    if (entry && holders.length > 0) this.next.requests.set(serveId, { ...entry, holders });
    this.#stepRequest(serveId, { type: 'request.served' });
    if (entry) this.#sendDeferredHandover(pageKeyText(entry.operation.pageKey));
  }

  #retryServe(serveId: string, retries: number): void {
    const serve = this.next.read('serves').get(serveId);
    const entry = this.next.read('requests').get(serveId);
    if (!serve || !entry || serve.retries !== retries) return;
    const peers = serve.remaining.filter((server) => server !== this.#self);
    if (peers.length === 0) return;
    const key = pageKeyText(entry.operation.pageKey);
    if (serve.kind === 'write' && (serve.cancelling === true || this.#destinationServesPiece(key, entry.operation))) {
      // The destination serves this piece itself: it may have applied the part, then served a later write of its own,
      // and since lost the block versions that order the two (a restart, a crash). Sent again, the part could take that
      // write back, so it is not. Nor may the write fail while the part can still land (it waits in a paused
      // destination's socket): like a forward that times out (request-routing.machine.ts, `cancelling`), the part is
      // cancelled at the destination, asked again every time-out, and the write fails only with its answer.
      const { peerRetryDelayMs, forwardTimeoutMs } = this.next.config;
      const lastTry = Math.ceil(forwardTimeoutMs / peerRetryDelayMs) - 1;
      if (serve.cancelling !== true && serve.retries < lastTry) {
        // The rest of the time-out in one timer: each try stands for peerRetryDelayMs, so the next one is the last.
        this.next.serves.set(serveId, { ...serve, retries: lastTry });
        this.effects.push({ type: 'timer.set', timerId: `serve|${serveId}|${lastTry}`, delayMs: forwardTimeoutMs - (serve.retries + 1) * peerRetryDelayMs });
        return;
      }
      const asking: ServeEntry = { ...serve, cancelling: true, retries: serve.retries + 1 };
      this.next.serves.set(serveId, asking);
      const { operation } = entry;
      for (const to of peers) {
        this.effects.push({ type: 'peer.send', to, message: { type: 'block.cancel', requestId: serveId, pageKey: operation.pageKey, sequence: serve.sequence } });
      }
      this.effects.push({ type: 'timer.set', timerId: `serve|${serveId}|${asking.retries}`, delayMs: forwardTimeoutMs });
      return;
    }
    if (serve.retries >= this.next.config.peerRetriesMax) {
      this.next.serves.delete(serveId);
      this.#stepRequest(serveId, { type: 'request.failed', errno: errnoIo, reason: `no answer from ${peers.join(', ')}` });
      const move = this.#activeMoveContext(key);
      // A part the destination never took leaves its copy behind the source's: the attempt fails and restarts with a copy.
      if (move && peers.includes(move.destination)) this.#stepMove(entry.operation.pageKey, { type: 'destination.failed', attempt: move.attempt });
      this.#sendDeferredHandover(key);
      return;
    }
    const retried = { ...serve, retries: serve.retries + 1 };
    this.next.serves.set(serveId, retried);
    const move = this.#activeMoveContext(key);
    for (const server of peers) this.#servePart(retried, entry, server, move);
  }

  /** Whether the destination of the page's move serves the operation's piece itself (handed over), or the move is over. */
  #destinationServesPiece(pageText: string, operation: BlockOperation): boolean {
    const move = this.#activeMoveContext(pageText);
    const volume = ownValue(this.next.read('volumes'), operation.pageKey.volume);
    if (!move || !volume) return true;
    return readServer(move, movePieceOfBlock(volume, move.pieceCount, operation.offsetBlocks)) === move.destination;
  }

  // ----- moves: the source side ----------------------------------------------

  #startMove(requestId: string, pageKey: PageKey, to: ServerId, kind: MoveKind, requestedPieceCount: number | undefined): void {
    const key = pageKeyText(pageKey);
    const volume = ownValue(this.next.volumes, pageKey.volume);
    const record = this.next.replicas.get(key)?.context.record;
    const flipPending = copyStanding(this.next, key) === 'awaitingFlip';
    const activeMoves = Object.values(this.next.moves).filter((move) => isUnderWay(move.snapshot)).length;
    // An abandoned move waiting for its destination's answer gives way to a new move of the page: the new move's
    // records replace its record, and its destination lets go of its partial copy once it learns a newer route.
    const moving = this.next.moves[key] !== undefined && isUnderWay(this.next.moves[key]!.snapshot);
    const pieceCount = requestedPieceCount ?? (kind === 'unit' ? 1 : volume?.piecesPerPage ?? 1);
    const problem =
      !volume ? `unknown volume ${pageKey.volume}` :
      pageKey.page < 0 || pageKey.page >= volume.pageCount ? `page ${pageKey.page} out of range` :
      record?.status !== 'valid' ? `${this.#self} does not own ${key}` :
      flipPending ? `${this.#self} holds ${key} but has not yet learnt that its last move's source flipped; try again shortly` :
      moving ? `${key} is already moving` :
      to === this.#self ? `${key} is already on ${to}` :
      !memberOf(this.next.membership, to) ? `unknown server ${to}` :
      !isActiveMember(this.next.membership, to) ? `${to} is draining` :
      activeMoves >= this.next.config.movesInFlightMax ? 'too many moves in flight' :
      movePieceCountProblem(volume, kind, pieceCount);
    if (problem || !volume || record?.status !== 'valid') {
      // Not yet knowing the flip is normally a matter of the source's route push still on its way; in case it was
      // lost (a dropped connection, a crash that took the route write), the route is asked for, so that an
      // administrator who asks again succeeds (ServerRuntime.move does, for a while).
      if (flipPending) this.#askForRoute(pageKey);
      this.effects.push({ type: 'admin.reply', requestId, ok: false, message: problem ?? 'refused', ...(flipPending ? { flipPending: true as const } : {}) });
      return;
    }
    const input: MoveInput = {
      pageKey, kind, source: this.#self, destination: to, pieceCount, epoch: record.epoch,
      forwardingPointer: this.next.config.forwardingPointer, progressTimeoutMs: this.next.config.moveProgressTimeoutMs,
    };
    const machine = moveMachineOf(this.next.config.machines, kind);
    const [snapshot] = start(machine, input);
    this.next.moves[key] = { kind, snapshot };
    this.effects.push({ type: 'admin.reply', requestId, ok: true, message: `moving ${key} from ${this.#self} to ${to} (${kind}, ${input.pieceCount} piece${input.pieceCount === 1 ? '' : 's'})` });
    this.#stepMove(pageKey, { type: 'move.begin' });
  }

  /**
   * The administrator gives a move up (move-setup.ts, "Abandoning"), asked of its source. Refused unless the source
   * alone holds the page's data; answered once the abandoned record is durable.
   */
  #abandonMove(requestId: string, pageKey: PageKey): void {
    const key = pageKeyText(pageKey);
    const move = this.next.moves[key];
    if (!move || move.snapshot.status !== 'active') {
      this.effects.push({ type: 'admin.reply', requestId, ok: false, message: `${this.#self} runs no move of ${key}` });
      return;
    }
    // The machine decides (its mayAbandon guard), asked without stepping it: a refused abandon changes nothing (stepped
    // and put back, it re-armed an interrupted move's restart timer, so abandons asked often kept it from restarting).
    if (!move.snapshot.can({ type: 'move.abandon' })) {
      this.effects.push({ type: 'admin.reply', requestId, ok: false, message: abandonRefusal(key, move.snapshot) });
      return;
    }
    this.next.moves[key] = { ...move, abandonRequestId: requestId };
    this.#stepMove(pageKey, { type: 'move.abandon' });
  }

  #stepMove(pageKey: PageKey, event: MoveEvent): void {
    const key = pageKeyText(pageKey);
    const move = this.next.moves[key];
    if (!move || move.snapshot.status !== 'active') return;
    if (event.type === 'destination.failed' && event.attempt === move.snapshot.context.attempt && this.#stageRecordInFlight(key)) {
      // Interrupted now, the machine would act on the stage before while the record being written may still land: the
      // record on disk would run ahead of the one acted on. A review's trace: a piece's finish record in flight, a dual
      // write to that piece failed at the destination and the move was interrupted; the source served the piece's reads
      // again, one of them returning that write, and a crash before the restart's record brought the finish record
      // back, so the destination, which never got the write, served the piece. The failure waits for the outcome.
      this.next.moves[key] = { ...move, failureDeferred: event };
      return;
    }
    const machine = moveMachineOf(this.next.config.machines, move.kind);
    const [snapshot, effects] = step(machine, move.snapshot as never, event as never) as [MoveEntry['snapshot'], Effect[]];
    this.#trace(machine.id, key, event.type, move.snapshot.value, snapshot.value);
    // A failure deferred for a run that has ended another way (interrupted meanwhile, abandoned) is not the next run's.
    const { failureDeferred, ...rest } = move;
    this.next.moves[key] = failureDeferred !== undefined && snapshot.matches('moving') ? { ...move, snapshot } : { ...rest, snapshot };
    this.#moveEffects(pageKey, effects);
    this.#afterMoveStep(pageKey);
  }

  /** Whether a stage record of the page's move is being written, its outcome not known yet (a `move.persisted` is awaited). */
  #stageRecordInFlight(pageText: string): boolean {
    for (const continuation of this.next.read('continuations').values()) {
      if (continuation.kind === 'move.persisted' && continuation.pageText === pageText) return true;
    }
    return false;
  }

  #afterMoveStep(pageKey: PageKey): void {
    const key = pageKeyText(pageKey);
    const move = this.next.moves[key];
    if (!move) return;
    if (move.snapshot.status === 'done') {
      delete this.next.moves[key];
      delete this.next.blockVersions[key];
      delete this.next.handoversDeferred[key];
      this.#releaseParked(key, !move.snapshot.matches('released'));
      return;
    }
    if (move.abandonRequestId !== undefined && move.snapshot.matches('abandoned')) {
      const { destination, checkpoint } = move.snapshot.context;
      this.effects.push({ type: 'admin.reply', requestId: move.abandonRequestId, ok: true, message: `abandoned the move of ${key} to ${destination}; ${this.#self} serves it alone at epoch ${reclaimEpoch(checkpoint)}` });
      this.next.moves[key] = { kind: move.kind, snapshot: move.snapshot };
    }
    if (!this.#fenced(key) || move.snapshot.matches('interrupted')) delete this.next.handoversDeferred[key];
    this.#releaseParked(key, false);
    if (move.snapshot.matches('interrupted')) {
      this.effects.push({ type: 'timer.set', timerId: `move-restart|${key}|${move.snapshot.context.checkpoint.attempt}`, delayMs: this.next.config.moveRestartDelayMs });
    }
  }

  /** Makes a move's checkpoint durable; `move.persisted` confirms it to the machine (or, on failure, retries it after a pause). */
  #persistCheckpoint(pageKey: PageKey, context: MoveContext, checkpoint: MoveCheckpoint): void {
    const input: MoveInput = {
      pageKey, kind: context.kind, source: context.source, destination: context.destination, pieceCount: context.pieceCount,
      epoch: context.checkpoint.epoch, forwardingPointer: context.forwardingPointer, progressTimeoutMs: context.progressTimeoutMs,
    };
    const writes: MetadataWrite[] = [{ kind: 'move', pageKey, input, checkpoint }];
    if (checkpoint.owner === 'destination') {
      // The flip: the source's copy turns invalid and its table names the destination, atomically with the checkpoint.
      writes.push({ kind: 'replica', pageKey, record: this.#givenUpRecord(context, checkpoint.epoch) });
      writes.push({ kind: 'route', pageKey, route: { owner: context.destination, epoch: checkpoint.epoch } });
    }
    if (checkpoint.abandoned === true) {
      // Abandoning: the source's copy is valid, and its table names itself, past the move's epoch, atomically with the record.
      writes.push({ kind: 'replica', pageKey, record: { status: 'valid', epoch: reclaimEpoch(checkpoint) } });
      writes.push({ kind: 'route', pageKey, route: { owner: this.#self, epoch: reclaimEpoch(checkpoint) } });
    }
    const completionId = this.#await({ kind: 'move.persisted', pageText: pageKeyText(pageKey), stage: checkpoint.stage, attempt: checkpoint.attempt });
    this.effects.push({ type: 'meta.commit', completionId, writes });
  }

  /**
   * Removes a finished move's durable record. Nobody waits for it; a removal
   * that fails (`meta.failed`) is tried again after a pause, unless a newer
   * move of the page is under way here (its record replaces this one, and its
   * own removal follows): a record left behind would otherwise stay until the
   * next restart finished the move again. A retry that comes after a newer
   * move finished removes nothing of it: the store keeps commits in order.
   */
  #removeMoveRecord(pageKey: PageKey): void {
    this.effects.push({ type: 'meta.commit', completionId: null, writes: [{ kind: 'move.delete', pageKey }] });
  }

  /**
   * A commit nobody waited for failed (the store skipped it and went on). A
   * move record's removal and a volume definition are tried again after a
   * pause; a route learnt is a hint, repaired on use.
   */
  #commitFailed(writes: readonly MetadataWrite[]): void {
    for (const write of writes) {
      const retry = write.kind === 'move.delete' ? `move-removal|${pageKeyText(write.pageKey)}|0` : write.kind === 'volume' ? volumeDefinitionTimerId(write.volume.name, null) : null;
      if (retry !== null) this.effects.push({ type: 'timer.set', timerId: retry, delayMs: this.next.config.moveRestartDelayMs });
    }
  }

  /**
   * Commits a volume's definition again, with the records of its pages that
   * still stand as the definition set them: a page that has moved since has
   * a newer route or copy record, committed after the definition and kept.
   */
  #defineVolumeAgain(volume: VolumeDefinition, adminRequestId: string | null): void {
    const writes: MetadataWrite[] = [{ kind: 'volume', volume }];
    for (const { pageKey, route, record } of initialPageRecords(volume, this.#self)) {
      const key = pageKeyText(pageKey);
      if (this.next.routes.get(key)?.epoch === route.epoch) writes.push({ kind: 'route', pageKey, route });
      const current = this.next.replicas.get(key)?.context.record;
      if (record !== null && current?.status === record.status && current.epoch === record.epoch) writes.push({ kind: 'replica', pageKey, record });
    }
    this.effects.push({ type: 'meta.commit', completionId: this.#volumeCompletion(volume, adminRequestId), writes });
  }

  #moveEffects(pageKey: PageKey, effects: readonly Effect[]): void {
    const key = pageKeyText(pageKey);
    for (const effect of effects) {
      const move = this.next.moves[key];
      assert(move, `move of ${key} exists while its effects run`);
      const context = move.snapshot.context;
      switch (effect.type) {
        case 'stage.persist':
          if (effect.checkpoint.abandoned === true) {
            // Like a commit, the abandoned record waits for every part already sent to the destination (see #fenced).
            this.next.handoversDeferred[key] = { kind: 'abandon', destination: context.destination, attempt: context.attempt, checkpoint: effect.checkpoint };
            this.#sendDeferredHandover(key);
            break;
          }
          if (move.kind === 'piecewise' && effect.checkpoint.stage === finishStage('piecewise', context.piece)) {
            // Handing the piece's reads to the destination waits for every part already sent there (see #fenced).
            this.next.handoversDeferred[key] = {
              kind: 'finishPiece', destination: context.destination, attempt: context.attempt, stage: effect.checkpoint.stage, piece: context.piece,
              confirming: false, sequenceDrained: this.next.lastWriteSequence,
            };
            this.#sendDeferredHandover(key);
            break;
          }
          this.#persistCheckpoint(pageKey, context, effect.checkpoint);
          break;
        case 'piece.copy': {
          const volume = ownValue(this.next.volumes, pageKey.volume);
          assert(volume, 'volume of a moving page exists');
          // Label the copy with the newest sequence all of whose writes have reached the local copy. Every chunk is
          // read in this step, so one label holds for all of them.
          const inFlight = this.next.read('localWritesInFlight').get(key) ?? [];
          // Without writes of the page in flight, every write of it handed out so far (all numbered up to the node's
          // newest sequence) has reached the local copy.
          const sequence = inFlight.length > 0 ? Math.min(...inFlight) - 1 : this.next.lastWriteSequence;
          // The move's own geometry (context.pieceCount is 1 for a unit move), persisted in its durable input.
          for (const [offsetBlocks, lengthBlocks] of copyChunksOf(volume, context.pieceCount, effect.piece, this.next.config.copyChunkBytesMax)) {
            const token = this.#newId('copy');
            const completionId = this.#await({ kind: 'copy.read', pageText: key, attempt: effect.attempt, piece: effect.piece, sequence, token, offsetBlocks, lengthBlocks });
            this.effects.push({ type: 'data.read', completionId, pageKey, offsetBlocks, lengthBlocks, intoToken: token });
          }
          // Chunks stored for an earlier piece or attempt count no more.
          if (this.next.moves[key]?.chunksStored !== undefined) this.next.moves[key] = { kind: move.kind, snapshot: move.snapshot };
          break;
        }
        case 'commit.request':
          this.next.handoversDeferred[key] = { kind: 'commit', destination: effect.destination, attempt: effect.attempt, epoch: effect.epoch, freshCopy: context.kind === 'unit' };
          this.#sendDeferredHandover(key);
          break;
        case 'copy.release': {
          this.#removeMoveRecord(pageKey);
          const replica = this.next.replicas.get(key);
          const current = replica?.context.record;
          const flipEpoch = context.checkpoint.epoch;
          // The data released is this move's source copy: the record is the one the flip replaces (valid at the epoch
          // before), or, when the move finishes after a restart, the one the flip wrote (given up at its epoch). A crash
          // that took the removal of this move's record took every later commit too (stores keep their order), such as
          // a receiving record of the page coming back here, and without that record this server acknowledged none of
          // the page's new data (#acknowledgeMoveData). Only a removal that failed outright (a store skips a failed
          // commit and goes on: impl/storage/metadata-store.ts) leaves a newer record beside this move's: that copy is
          // the newer move's, and is kept.
          const sourceCopy = (current?.status === 'valid' && current.epoch === flipEpoch - 1) || (current?.status === 'invalid' && current.epoch === flipEpoch);
          if (!sourceCopy) break;
          this.effects.push({ type: 'data.delete', pageKey, reason: 'moved' });
          const record = this.#givenUpRecord(context, flipEpoch);
          const givenUp = replica && current?.status === 'valid'
            ? step(this.next.config.machines.replica, replica, { type: 'replica.invalidate', epoch: record.epoch, owner: record.owner, forwardTo: record.forwardTo })[0]
            : start(this.next.config.machines.replica, { pageKey, record })[0];
          this.next.replicas = this.next.replicas.with(key, givenUp);
          break;
        }
        case 'routing.publish': {
          // A newer route learnt meanwhile stands: routing epochs only grow, and the other servers learn it from whoever
          // made it. (A source that restarts from a flip whose record's removal failed publishes that flip again, after
          // the page may have moved on; a review noticed the route going back.)
          const known = this.next.routes.get(key);
          if (known && known.epoch > effect.epoch) break;
          this.next.routes = this.next.routes.with(key, { owner: effect.owner, epoch: effect.epoch });
          for (const server of this.#group()) {
            if (server !== this.#self) this.effects.push({ type: 'peer.send', to: server, message: { type: 'route.update', pageKey, owner: effect.owner, epoch: effect.epoch } });
          }
          break;
        }
        case 'timer.set': this.effects.push({ type: 'timer.set', timerId: `move|${key}|${effect.timerId}`, delayMs: effect.delayMs }); break;
        case 'copy.reclaim': {
          // Durable already, with the abandoned record (#persistCheckpoint): the replica's own persist is not needed.
          const replica = this.next.replicas.get(key);
          assert(replica?.context.record?.status === 'valid', `an abandoned move's source holds ${key} valid`);
          this.next.replicas = this.next.replicas.with(key, step(this.next.config.machines.replica, replica, { type: 'replica.reclaim', epoch: effect.epoch })[0]);
          break;
        }
        case 'abandon.notify':
          this.effects.push({ type: 'peer.send', to: effect.destination, message: { type: 'move.abandoned', pageKey, attempt: effect.attempt, epoch: effect.epoch } });
          break;
        case 'record.forget': this.#removeMoveRecord(pageKey); break;
        default: throw new Error(`move machine emitted ${effect.type}`);
      }
    }
  }

  /**
   * The destination reports a piece, or one chunk of it, durable. A piece
   * sent in one chunk goes to the move machine as it is (which ignores it
   * unless it is the current attempt's piece in transit). A chunk counts only
   * for the piece in transit of the current attempt, once (the network may
   * duplicate it); the machine hears `piece.copied` when the chunks stored
   * cover the piece, and so never before every block of it is durable there.
   * Until then each chunk stored restarts the move's progress timer.
   */
  #pieceStored(from: ServerId, message: Extract<PeerMessage, { type: 'piece.stored' }>): void {
    const key = pageKeyText(message.pageKey);
    if (!this.#answersCurrentMove(from, message.pageKey, message.epoch)) return this.#sendRoute(from, message.pageKey);
    const move = this.next.moves[key];
    const volume = ownValue(this.next.volumes, message.pageKey.volume);
    if (!move || !volume) return;
    const context = move.snapshot.context;
    const sizeBlocks = movePieceSizeBlocks(volume, context.pieceCount);
    const copied: MoveEvent = { type: 'piece.copied', piece: message.piece, attempt: message.attempt };
    if (message.lengthBlocks === sizeBlocks) return this.#stepMove(message.pageKey, copied);
    const copying = move.snapshot.matches({ moving: { startPiece: 'copying' } }) || move.snapshot.matches({ moving: { startMove: 'copying' } });
    if (!copying || message.attempt !== context.attempt || message.piece !== context.piece) return;
    const pieceStartBlocks = message.piece * sizeBlocks;
    const chunkStart = message.offsetBlocks - pieceStartBlocks;
    const chunkBlocks = Math.max(1, Math.floor(this.next.config.copyChunkBytesMax / volume.blockSizeBytes));
    // Only the chunks this node sends count: each starts at a multiple of the chunk size and runs to the next or the piece's end.
    if (chunkStart < 0 || chunkStart >= sizeBlocks || chunkStart % chunkBlocks !== 0 || message.lengthBlocks !== Math.min(chunkBlocks, sizeBlocks - chunkStart)) return;
    const before = move.chunksStored?.attempt === message.attempt && move.chunksStored.piece === message.piece ? move.chunksStored : null;
    if (before?.offsetsBlocks.includes(message.offsetBlocks)) return;
    const chunksStored = {
      attempt: message.attempt, piece: message.piece,
      offsetsBlocks: [...(before?.offsetsBlocks ?? []), message.offsetBlocks], storedBlocks: (before?.storedBlocks ?? 0) + message.lengthBlocks,
    };
    assert(chunksStored.storedBlocks <= sizeBlocks, `the chunks stored of ${key} piece ${message.piece} fit the piece`);
    if (chunksStored.storedBlocks < sizeBlocks) {
      this.next.moves[key] = { ...move, chunksStored };
      // A stored chunk is progress: the move's progress timer starts again (set again, a timer is replaced). A throttled
      // copy sends its chunks one budget apart, so a piece as a whole may take longer than the time-out allows for no progress.
      this.effects.push({ type: 'timer.set', timerId: `move|${key}|${progressTimerId(context)}`, delayMs: context.progressTimeoutMs });
      return;
    }
    this.next.moves[key] = { kind: move.kind, snapshot: move.snapshot };
    this.#stepMove(message.pageKey, copied);
  }

  #givenUpRecord(context: MoveContext, epoch: number): ReplicaRecord & { status: 'invalid' } {
    return { status: 'invalid', epoch, owner: context.destination, forwardTo: context.forwardingPointer ? context.destination : null };
  }

  // ----- moves: the destination side -----------------------------------------

  /** Feeds a replica event, persists what changed (awaiting `awaiting` when given), and reports whether the record changed. */
  #stepReplica(pageKey: PageKey, event: ReplicaEvent, awaiting: Continuation | null = null, alreadyDurable = false): boolean {
    const key = pageKeyText(pageKey);
    const replica: ReplicaSnapshot = this.next.replicas.get(key) ?? start(this.next.config.machines.replica, { pageKey, record: null })[0];
    const [snapshot, effects] = step(this.next.config.machines.replica, replica, event);
    this.#trace('replica', key, event.type, replica.value, snapshot.value);
    this.next.replicas = this.next.replicas.with(key, snapshot);
    for (const effect of effects) {
      assert(effect.type === 'replica.persist', 'replica machine only persists');
      if (alreadyDurable) continue;
      const completionId = awaiting === null ? null : this.#await(awaiting);
      this.effects.push({ type: 'meta.commit', completionId, writes: [{ kind: 'replica', pageKey, record: effect.record }] });
    }
    return effects.length > 0;
  }

  /**
   * Whether this server takes data of the given move attempt: while it is
   * receiving that attempt, or — for dual writes and reads, never piece
   * copies — once committed at the move's epoch but before it has learnt that
   * the source flipped. From then on it serves the page itself and refuses
   * the source's late messages, whose write sequences its own writes do not
   * carry.
   */
  #acceptsMoveData(pageKey: PageKey, attempt: number, epoch: number, isCopy: boolean): boolean {
    const key = pageKeyText(pageKey);
    const record = this.next.replicas.get(key)?.context.record;
    if (record?.status === 'receiving') return record.attempt === attempt && record.epoch === epoch;
    return !isCopy && record?.status === 'valid' && record.epoch === epoch && copyStanding(this.next, key) === 'awaitingFlip';
  }

  /**
   * A message of a newer attempt of the same move means the source restarted
   * the move: the destination follows it to that attempt (forgetting the block
   * versions of the old one), whether the restart copies again or only
   * finishes the flip. Messages of older attempts are then refused.
   */
  #followAttempt(from: ServerId, pageKey: PageKey, attempt: number, epoch: number): void {
    const key = pageKeyText(pageKey);
    // A late message of a move that ended elsewhere (abandoned: its source serves the page at a newer epoch) must not
    // start a copy that nobody would commit or release.
    if ((this.next.routes.get(key)?.epoch ?? -1) >= epoch) return;
    if (!this.#stepReplica(pageKey, { type: 'replica.receive', source: from, attempt, epoch }, { kind: 'receiving.persisted', pageText: key, attempt, epoch })) return;
    // Acknowledgements still held for an older attempt are dropped: its source has moved on, and resends (with the
    // new attempt) what it still needs. An attempt of the same move (same source and epoch) keeps the block versions
    // and the newest sequence seen: the source may send an older attempt's part again under the new one, and it must
    // not take back a write this server served itself since (a review found it: lossy network, a failed commit).
    const previous = this.next.read('attemptsJoined')[key];
    const sameMove = previous?.source === from && previous.epoch === epoch;
    if (!sameMove) this.next.blockVersions[key] = noBlockVersions;
    const sourceSequenceSeen = sameMove ? previous.sourceSequenceSeen : 0;
    this.next.attemptsJoined[key] = { source: from, epoch, attempt, copyTaken: false, recordDurable: false, acksHeld: [], handedOverBlocks: 0, committedEpoch: null, sourceSequenceSeen };
  }

  /**
   * Acknowledges move data (a piece or chunk stored, a dual write applied, a
   * piece handed over) once the receiving record of the page is durable, not
   * before: a crash that took the record would leave this server unaware that
   * it holds data the source relies on, and a move of the page finished after
   * a restart would release it as the old source copy (see copy.release).
   * Held acknowledgements go out when the record's commit completes (a
   * failed commit is tried again after a pause); they answer move messages of
   * the current attempt only, which the source bounds by the parts it has
   * outstanding and the chunks of one piece.
   */
  #acknowledgeMoveData(pageText: string, to: ServerId, message: PeerMessage): void {
    const joined = this.next.read('attemptsJoined')[pageText];
    // A refusal promises nothing and goes at once.
    const refusal = 'ok' in message && !message.ok;
    if (refusal || joined === undefined || joined.recordDurable) {
      this.effects.push({ type: 'peer.send', to, message });
      return;
    }
    this.next.attemptsJoined[pageText] = { ...joined, acksHeld: [...joined.acksHeld, { to, message }] };
  }

  /** The receiving record of `continuation.attempt` is durable: the acknowledgements held for it go out. */
  #receivingRecordPersisted(continuation: Extract<Continuation, { kind: 'receiving.persisted' }>, ok: boolean): void {
    const joined = this.next.read('attemptsJoined')[continuation.pageText];
    if (joined === undefined || joined.recordDurable) return;
    const record = this.next.replicas.get(continuation.pageText)?.context.record;
    // An older attempt's record: the current one's own completion releases what is held.
    if (record?.status !== 'receiving' || record.attempt !== continuation.attempt || record.epoch !== continuation.epoch || joined.attempt !== continuation.attempt) return;
    if (!ok) {
      // Not durable: the acknowledgements keep waiting, and the same record is written again after a pause.
      this.effects.push({ type: 'timer.set', timerId: receivingRetryTimerId(continuation.pageText, continuation.attempt, continuation.epoch), delayMs: this.next.config.moveRestartDelayMs });
      return;
    }
    this.next.attemptsJoined[continuation.pageText] = { ...joined, recordDurable: true, acksHeld: [] };
    for (const held of joined.acksHeld) this.effects.push({ type: 'peer.send', to: held.to, message: held.message });
  }

  /**
   * A server that has left the group (its own record no longer names it)
   * takes no page: it refuses every move message, before the replica machine
   * hears of it, and tells the sender its record, which names the sender's
   * destination as gone.
   */
  #refusesMoveAsRemoved(from: ServerId): boolean {
    if (memberOf(this.next.membership, this.#self)) return false;
    this.effects.push({ type: 'peer.send', to: from, message: { type: 'membership.update', membership: this.next.membership } });
    return true;
  }

  #receivePiece(from: ServerId, message: Extract<PeerMessage, { type: 'piece.copy' }>): void {
    const { pageKey, attempt, epoch } = message;
    const key = pageKeyText(pageKey);
    if (this.#refusesMoveAsRemoved(from)) return this.#releaseReceivedData(message.dataToken);
    this.#followAttempt(from, pageKey, attempt, epoch);
    if (!this.#acceptsMoveData(pageKey, attempt, epoch, true)) return this.#releaseReceivedData(message.dataToken);
    const joined = this.next.read('attemptsJoined')[key];
    if (joined?.attempt === attempt) {
      this.next.attemptsJoined[key] = {
        ...joined, copyTaken: true, handedOverBlocks: Math.max(joined.handedOverBlocks, message.handedOverBlocks),
        sourceSequenceSeen: Math.max(joined.sourceSequenceSeen, message.sourceSequence, message.sequence),
      };
    }
    const { runs, claim } = this.#newerRuns(key, message.offsetBlocks, message.lengthBlocks, message.sequence);
    // A piece counts as moved only once all of it is durable here: the copied runs and the blocks a newer dual
    // write already holds (those skip the copy, and a power cut must not leave them holding neither value).
    const completionId = this.#await({ kind: 'copy.stored', pageText: key, from, attempt, epoch, piece: message.piece, offsetBlocks: message.offsetBlocks, lengthBlocks: message.lengthBlocks, waitingFor: runs.length + 1, versionClaim: claim });
    for (const [offsetBlocks, lengthBlocks] of runs) {
      this.effects.push({ type: 'data.write', completionId, pageKey, offsetBlocks, lengthBlocks, fromToken: message.dataToken, tokenOffsetBlocks: offsetBlocks - message.offsetBlocks, durable: false });
    }
    this.effects.push({ type: 'data.sync', completionId, pageKey });
    this.#releaseReceivedData(message.dataToken);
  }

  /**
   * Lets go of the bytes a peer message brought once the writes that read
   * them are issued (a `data.write` reads its token as it is carried out).
   * Tokens are named by what minted them, so a token a request in hand here
   * also names (a dual write of a client write that came in through this
   * server) is kept for that request.
   */
  #releaseReceivedData(token: string): void {
    for (const entry of this.next.read('requests').values()) if (entry.writeToken === token || entry.readToken === token) return;
    this.effects.push({ type: 'token.release', token });
  }

  /**
   * The runs of blocks no data newer than `sequence` has claimed (on the disk, or on its way there), which this data
   * may overwrite, and its claim on them (null: no runs), confirmed once the data is written (#confirmClaim).
   */
  #newerRuns(pageText: string, offsetBlocks: number, lengthBlocks: number, sequence: number, claimed = this.#versionsClaimed(pageText, offsetBlocks, lengthBlocks)): { runs: Array<[number, number]>; claim: VersionClaim | null } {
    const runs = applyBlockVersions(claimed, offsetBlocks, lengthBlocks, sequence)[1];
    const joined = this.next.read('attemptsJoined')[pageText];
    const claim = runs.length === 0 ? null : { pageText, source: joined?.source ?? null, epoch: joined?.epoch ?? null, sequence, runs };
    return { runs, claim };
  }

  /** Whether `claim` is on the versions the page keeps now: those of the move it has joined, or of none (a restart's). */
  #claimStands(claim: VersionClaim): boolean {
    const joined = this.next.read('attemptsJoined')[claim.pageText];
    return joined === undefined ? claim.source === null : claim.source === joined.source && claim.epoch === joined.epoch;
  }

  /**
   * The block versions of a receiving page counting the data still on its way to the disk: the confirmed versions
   * (`blockVersions`, data written) raised by the claims of the writes not done yet (their continuations), of the
   * move the page's versions are for. Data is ordered against both (a page's writes reach its disk in the order they
   * are issued), but only confirmed data may stand in for older data that is skipped (#receiveBlockWrite).
   */
  #versionsClaimed(pageText: string, offsetBlocks: number, lengthBlocks: number): BlockVersions {
    // Only claims over the blocks asked about are applied: a page being moved under load holds hundreds of runs and
    // as many claims, and applying every one on every part cost the p99 during moves 16% (bench:ab, BENCH_MOVES_ONLY).
    let versions = this.next.read('blockVersions')[pageText] ?? noBlockVersions;
    const endBlock = offsetBlocks + lengthBlocks;
    for (const claim of this.#standingClaims(pageText)) {
      for (const [start, length] of claim.runs) {
        if (start < endBlock && start + length > offsetBlocks) versions = applyBlockVersions(versions, start, length, claim.sequence)[0];
      }
    }
    return versions;
  }

  /** The newest sequence a write on its way to the page's disk claims (0 if none): a destination's own write goes above it. */
  #newestClaim(pageText: string): number {
    let newest = 0;
    for (const claim of this.#standingClaims(pageText)) newest = Math.max(newest, claim.sequence);
    return newest;
  }

  /** The claims of the writes on their way to the page's disk that stand on its versions now (#claimStands). */
  *#standingClaims(pageText: string): Generator<VersionClaim> {
    for (const continuation of this.next.read('continuations').values()) {
      const claim = 'versionClaim' in continuation ? continuation.versionClaim : undefined;
      if (claim && claim.pageText === pageText && this.#claimStands(claim)) yield claim;
    }
  }

  /**
   * Data of a move written here: its blocks' confirmed versions take its sequence (where none is newer). A write
   * that fails confirms nothing, and its claim goes with its continuation: a review found a failed write's mark, set
   * on receipt, making the destination skip an older write's retry and answer it written (Table 2, two parts failing
   * here: an acknowledged write lost), and a later review a withdrawal of such marks taking back a write of the same
   * sequence that had succeeded.
   */
  #confirmClaim(claim: VersionClaim): void {
    // The versions now are another move's: nothing of this one's stands.
    if (!this.#claimStands(claim)) return;
    let versions = this.next.read('blockVersions')[claim.pageText] ?? noBlockVersions;
    for (const [offsetBlocks, lengthBlocks] of claim.runs) versions = applyBlockVersions(versions, offsetBlocks, lengthBlocks, claim.sequence)[0];
    this.next.blockVersions[claim.pageText] = versions;
  }

  #receiveBlockWrite(from: ServerId, message: Extract<PeerMessage, { type: 'block.write' }>): void {
    const { pageKey } = message;
    const removed = this.#refusesMoveAsRemoved(from);
    if (!removed) this.#followAttempt(from, pageKey, message.attempt, message.epoch);
    if (removed || !this.#acceptsMoveData(pageKey, message.attempt, message.epoch, false)) {
      this.effects.push({ type: 'peer.send', to: from, message: { type: 'block.written', requestId: message.requestId, ok: false, lossEpoch: this.next.lossEpoch } });
      return this.#releaseReceivedData(message.dataToken);
    }
    if (rememberedValue(this.next.forwardedTriesEnded, cancelledPartKey(from, message.requestId, message.sequence)) !== undefined) {
      // A part its source cancelled, arriving late (it waited in this server's socket): it must never land.
      this.#answerPartCancelled(from, message.requestId);
      return this.#releaseReceivedData(message.dataToken);
    }
    const joined = this.next.read('attemptsJoined')[pageKeyText(pageKey)];
    if (joined !== undefined && joined.sourceSequenceSeen < message.sequence) this.next.attemptsJoined[pageKeyText(pageKey)] = { ...joined, sourceSequenceSeen: message.sequence };
    // The same write, already run here whole: the source forwarded it while its move committed (#servingDestination),
    // then served it as a part after the move was interrupted. Running it again would take back writes made since.
    const ranAsForwarded = this.#ranAsForwarded(from, message.requestId);
    const pageText = pageKeyText(pageKey);
    // Computed once for both the check and the runs: this is every part's path at a destination.
    const claimed = this.#versionsClaimed(pageText, message.offsetBlocks, message.lengthBlocks);
    if (!ranAsForwarded && newerOnlyOnItsWay(this.next.read('blockVersions')[pageText] ?? noBlockVersions, claimed, message.offsetBlocks, message.lengthBlocks, message.sequence)) {
      // A newer write to some of its blocks is on its way to the disk here, and this one is not there: skipped and
      // answered written, it would be lost if that write failed (a review's trace). Answered not done, the source
      // sends it again after its retry delay, when the newer write's outcome decides (block-versions.ts).
      this.effects.push({ type: 'peer.send', to: from, message: { type: 'block.written', requestId: message.requestId, ok: false, lossEpoch: this.next.lossEpoch } });
      return this.#releaseReceivedData(message.dataToken);
    }
    const { runs, claim } = ranAsForwarded ? { runs: [], claim: null } : this.#newerRuns(pageText, message.offsetBlocks, message.lengthBlocks, message.sequence, claimed);
    if (runs.length === 0) {
      // Every block already holds a newer write. A FUA write is still answered only once what stands in its place is
      // durable: the newer write may not be synced yet, and a power cut would take the block back past both.
      if (message.fua) {
        this.effects.push({ type: 'data.sync', completionId: this.#await({ kind: 'peer.written', pageText: pageKeyText(pageKey), from, requestId: message.requestId, waitingFor: 1, senderIncarnation: message.senderIncarnation, versionClaim: null }), pageKey });
      } else {
        this.#acknowledgeMoveData(pageKeyText(pageKey), from, { type: 'block.written', requestId: message.requestId, ok: true, lossEpoch: this.next.lossEpoch, pageKey });
      }
      return this.#releaseReceivedData(message.dataToken);
    }
    const completionId = this.#await({ kind: 'peer.written', pageText: pageKeyText(pageKey), from, requestId: message.requestId, waitingFor: runs.length, senderIncarnation: message.senderIncarnation, versionClaim: claim });
    for (const [offsetBlocks, lengthBlocks] of runs) {
      this.effects.push({ type: 'data.write', completionId, pageKey, offsetBlocks, lengthBlocks, fromToken: message.dataToken, tokenOffsetBlocks: offsetBlocks - message.offsetBlocks, durable: message.fua });
    }
    this.#releaseReceivedData(message.dataToken);
  }

  /**
   * `from` gave up waiting for try `retry` of its forwarded write `requestId`
   * and must learn whether it can still run (request-routing.machine.ts,
   * `cancelling`). A write run here is answered ok again, with its holders; a
   * try in hand answers when done; any other try is remembered as cancelled,
   * so that it never runs, and answered so, once this incarnation's fence
   * allows (an earlier incarnation may have passed it on: incarnation-fence.ts).
   * Until then the cancel goes unanswered, and the forwarder asks again.
   */
  #cancelForward(from: ServerId, requestId: string, retry: number, hopCount: number): void {
    const replyTo: ReplyTo = { kind: 'peer', server: from, requestId, retry };
    const holders = rememberedValue(this.next.forwardedWritesDone, `${from}|${requestId}`);
    if (holders !== undefined) return this.#replyDirect(replyTo, { status: 'ok' }, null, holders);
    if (this.#forwardedRequestInHand(from, requestId)) return;
    if (!fenceAllowsCancel(this, hopCount)) return;
    this.#rememberTryEnded(replyTo, 'cancelled');
    this.#replyDirect(replyTo, cancelledTryOutcome);
  }

  /**
   * The source of a move gave up waiting for its part `requestId` (a write to
   * a piece this server serves) and must learn whether it can still land
   * (`#retryServe`). A part being written here answers when done; any other
   * is remembered as cancelled, so that it never lands, and answered so,
   * even one that landed before (its answer lost): an error for a write that
   * took effect before it is allowed, and this needs no judgement of which
   * writes a block's version stands for (a review found an answer of
   * "written" from the versions wrong twice: a version half a step below the
   * part's, and a part whose disk write had failed).
   */
  #cancelPart(from: ServerId, message: Extract<PeerMessage, { type: 'block.cancel' }>): void {
    for (const continuation of this.next.read('continuations').values()) {
      if (continuation.kind === 'peer.written' && continuation.from === from && continuation.requestId === message.requestId) return;
    }
    this.next.forwardedTriesEnded = remember(this.next.forwardedTriesEnded, cancelledPartKey(from, message.requestId, message.sequence), 'cancelled', this.next.config.forwardedTriesEndedRememberedMax);
    this.#answerPartCancelled(from, message.requestId);
  }

  #answerPartCancelled(to: ServerId, requestId: string): void {
    this.effects.push({ type: 'peer.send', to, message: { type: 'block.written', requestId, ok: false, lossEpoch: this.next.lossEpoch, cancelled: true } });
  }

  /** Whether this server ran, or is running, `from`'s request `requestId` as a forwarded write (FIG. 7's at-most-once memory). */
  #ranAsForwarded(from: ServerId, requestId: string): boolean {
    return rememberedValue(this.next.forwardedWritesDone, `${from}|${requestId}`) !== undefined || this.#forwardedRequestInHand(from, requestId);
  }

  /** For incarnation-fence.ts: the highest hop of `from`'s earlier incarnations' forwarded writes in hand here (0: none), Infinity while such a part is written. */
  heldWorkHopCountMax(from: ServerId, incarnation: number): number {
    for (const continuation of this.next.read('continuations').values()) {
      if (continuation.kind === 'peer.written' && continuation.from === from && continuation.senderIncarnation < incarnation) return Infinity;
    }
    let hopCountMax = 0;
    for (const entry of this.next.read('requests').values()) {
      if (entry.operation.kind === 'write' && entry.replyTo.kind === 'peer' && entry.replyTo.server === from && entry.senderIncarnation !== null && entry.senderIncarnation < incarnation) {
        hopCountMax = Math.max(hopCountMax, entry.snapshot.context.hopCount);
      }
    }
    return hopCountMax;
  }

  /** Whether a try of `from`'s request `requestId` is in hand here. (A loop, not a spread into an array: this runs for every forwarded request and every part.) */
  #forwardedRequestInHand(from: ServerId, requestId: string): boolean {
    for (const entry of this.next.read('requests').values()) {
      if (entry.replyTo.kind === 'peer' && entry.replyTo.server === from && entry.replyTo.requestId === requestId) return true;
    }
    return false;
  }

  #receiveBlockRead(from: ServerId, message: Extract<PeerMessage, { type: 'block.read' }>): void {
    const removed = this.#refusesMoveAsRemoved(from);
    if (!removed) this.#followAttempt(from, message.pageKey, message.attempt, message.epoch);
    if (removed || !this.#acceptsMoveData(message.pageKey, message.attempt, message.epoch, false)) {
      this.effects.push({ type: 'peer.send', to: from, message: { type: 'block.readDone', requestId: message.requestId, ok: false, dataToken: null } });
      return;
    }
    const token = this.#newId('peer-read');
    const completionId = this.#await({ kind: 'peer.read', from, requestId: message.requestId, token });
    this.effects.push({ type: 'data.read', completionId, pageKey: message.pageKey, offsetBlocks: message.offsetBlocks, lengthBlocks: message.lengthBlocks, intoToken: token });
  }

  #receiveCommit(from: ServerId, message: Extract<PeerMessage, { type: 'move.commit' }>): void {
    const key = pageKeyText(message.pageKey);
    if (this.#refusesMoveAsRemoved(from)) return;
    // A claim to declare the source's pages lost was accepted here: from its answer on, no copy of them turns valid
    // here but by the declaration (lost-pages.ts).
    if (refusesCommitFrom(this.next, from)) return;
    const record = this.next.replicas.get(key)?.context.record;
    // Ownership is claimed only once it is durable: while the first commit syncs the page or writes its record, a
    // duplicate waits for it.
    if (isCommitUnderWay(this.next.read('continuations'), key)) return;
    if (record?.status === 'valid' && record.epoch === message.epoch) {
      // A repeated commit after the source's restart: already done.
      this.effects.push({ type: 'peer.send', to: from, message: { type: 'move.committed', pageKey: message.pageKey, attempt: message.attempt, epoch: message.epoch, destinationServes: this.#servesCommitted(key) } });
      return;
    }
    this.#followAttempt(from, message.pageKey, message.attempt, message.epoch);
    const current = this.next.replicas.get(pageKeyText(message.pageKey))?.context.record;
    if (message.freshCopy && current?.status === 'receiving' && current.epoch === message.epoch && current.attempt > message.attempt) {
      // Table 1: a source restarted below an attempt it had acted on before that attempt was durable (its dual writes
      // reached this server first). Ignored, it would commit that old attempt for ever; told, it copies again above it.
      this.effects.push({ type: 'peer.send', to: from, message: { type: 'move.copyStale', pageKey: message.pageKey, attempt: message.attempt, epoch: message.epoch, destinationAttempt: current.attempt } });
      return;
    }
    if (current?.status !== 'receiving' || current.attempt !== message.attempt || current.epoch !== message.epoch) return;
    if (message.freshCopy && !this.#tookCopyOf(key, message.attempt)) {
      // Table 1: this copy was taken by an earlier attempt or incarnation, so it may miss writes the source has served.
      this.effects.push({ type: 'peer.send', to: from, message: { type: 'move.copyStale', pageKey: message.pageKey, attempt: message.attempt, epoch: message.epoch, destinationAttempt: message.attempt } });
      return;
    }
    // Table 2's commit comes once every piece is durably handed over: this server serves all of the page meanwhile.
    // (Not Table 1's: a commit that fails here may be followed by a fresh copy, which would take back its writes.)
    const joined = this.next.read('attemptsJoined')[key];
    const volume = ownValue(this.next.read('volumes'), message.pageKey.volume);
    if (joined?.attempt === message.attempt && volume) {
      this.next.attemptsJoined[key] = {
        ...joined, handedOverBlocks: message.freshCopy ? joined.handedOverBlocks : volume.pageSizeBlocks, sourceSequenceSeen: Math.max(joined.sourceSequenceSeen, message.sourceSequence),
      };
    }
    // The destination holds the page durably before it becomes the owner.
    const completionId = this.#await({ kind: 'commit.synced', pageText: pageKeyText(message.pageKey), from, attempt: message.attempt, epoch: message.epoch });
    this.effects.push({ type: 'data.sync', completionId, pageKey: message.pageKey });
  }

  /** Whether this incarnation switched to the page's move attempt itself and has taken that attempt's copy since. */
  #tookCopyOf(pageText: string, attempt: number): boolean {
    const joined = this.next.read('attemptsJoined')[pageText];
    return joined?.attempt === attempt && joined.copyTaken;
  }

  /**
   * Table 2: the source asks before handing a finished piece's reads over. This incarnation must have switched to the
   * attempt itself and taken its copy (a restart may have lost dual writes the source has served); then the page is
   * synced, so every part answered so far is durable, before the answer.
   */
  #receiveHandover(from: ServerId, message: Extract<PeerMessage, { type: 'piece.handover' }>): void {
    if (this.#refusesMoveAsRemoved(from)) return;
    const key = pageKeyText(message.pageKey);
    const record = this.next.replicas.get(key)?.context.record;
    const current = record?.status === 'receiving' && record.attempt === message.attempt && record.epoch === message.epoch && this.#tookCopyOf(key, message.attempt);
    if (!current) {
      this.effects.push({ type: 'peer.send', to: from, message: { type: 'piece.handedOver', pageKey: message.pageKey, attempt: message.attempt, epoch: message.epoch, piece: message.piece, ok: false } });
      return;
    }
    const completionId = this.#await({ kind: 'handover.synced', pageText: key, from, attempt: message.attempt, epoch: message.epoch, piece: message.piece });
    this.effects.push({ type: 'data.sync', completionId, pageKey: message.pageKey });
  }

  // ----- FLUSH: a group barrier; silent members holding none of its writes excused

  #startFlush(requestId: string, connectionId: string, volume: string): void {
    const refusal = !ownValue(this.next.read('volumes'), volume) ? { errno: 22, reason: `unknown volume ${volume}` }
      : !this.#knowConnection(connectionId, volume) ? { errno: 11, reason: 'too many client connections' } : null;
    if (refusal) {
      this.effects.push({ type: 'client.reply', requestId, outcome: { status: 'error', ...refusal }, dataToken: null });
      return;
    }
    const flushId = `${this.#self}:${requestId}`;
    const watch = this.next.read('lossWatches')[volume] ?? noLossWatch;
    const { acks: coveredAcks, lossesFound: lossesFoundAtStart } = watch;
    // Every member and every holder of a write it covers, but members excused for silence (flush-barrier.ts).
    const excusesAllowed = this.next.earlierRunsSynced;
    const holders = flushHolders(watch, coveredAcks, this.next.read('departedLossEpochs'), this.next.membership);
    const remaining = flushWaitsFor(this.#group(), holders, this.next.flushExcused, excusesAllowed);
    this.next.flushes[flushId] = { requestId, connectionId, volume, remaining, retries: 0, coveredAcks, lossesFoundAtStart, answeredEpochs: {}, holders, excusesAllowed };
    if (remaining.length === 0) return answerFlush(this, flushId);
    this.#sendFlush(flushId);
  }

  #sendFlush(flushId: string): void {
    const flush = this.next.flushes[flushId];
    if (!flush) return;
    for (const server of flush.remaining) {
      if (server === this.#self) {
        this.effects.push({ type: 'data.sync', completionId: this.#await({ kind: 'flush.synced', flushId, from: null }), pageKey: null });
      } else {
        this.effects.push({ type: 'peer.send', to: server, message: { type: 'flush.request', flushId, membershipEpoch: this.next.membership.epoch } });
      }
    }
    this.effects.push({ type: 'timer.set', timerId: `flush|${flushId}|${flush.retries}`, delayMs: this.next.config.peerRetryDelayMs });
  }

  #flushPartDone(flushId: string, server: ServerId, ok: boolean, lossEpoch: number): void {
    const flush = this.next.read('flushes')[flushId];
    if (!flush || !flush.remaining.includes(server)) return;
    // A sync that failed is no silence: the member is waited for as a holder (asked again, and the FLUSH fails if it never succeeds).
    if (!ok) {
      if (!flush.holders.includes(server)) this.next.flushes[flushId] = { ...flush, holders: [...flush.holders, server].sort() };
      return;
    }
    this.next.flushes[flushId] = { ...flush, answeredEpochs: { ...flush.answeredEpochs, [server]: lossEpoch } };
    settleFlushParts(this, flushId, [server]);
  }

  // ----- inputs from peers, I/O and timers ------------------------------------

  #receive(from: ServerId, message: PeerMessage): void {
    endFlushExcuse(this.next, from);
    switch (message.type) {
      case 'request.forward':
        // Sent by an incarnation behind its sender's fence: dropped unanswered (that incarnation is gone).
        if (!isFencedOff(this.next.incarnationFence, from, message.senderIncarnation)) {
          this.#acceptRequest(message.requestId, message.operation, { kind: 'peer', server: from, requestId: message.requestId, retry: message.retry }, message.hopCount, message.dataToken, message.senderIncarnation);
        }
        // Refused, answered as a duplicate, or left to another try in hand: then no request here holds the bytes.
        if (message.dataToken) this.#releaseReceivedData(message.dataToken);
        return;
      case 'request.cancel': return this.#cancelForward(from, message.requestId, message.retry, message.hopCount);
      case 'fence.raise': return receiveFence(this, from, message.incarnation, message.hopCountMin);
      case 'fence.confirmed': return fenceConfirmed(this, from, message.incarnation, message.hopCountMin);
      case 'request.answer': {
        const entry = this.next.read('requests').get(message.requestId);
        if (!entry) {
          // A late or duplicated answer: its request is done, and nobody will read what it brought.
          if (message.dataToken) this.#releaseReceivedData(message.dataToken);
          return;
        }
        if (message.outcome.status === 'ok') {
          if (!message.dataToken) {
            // A write's holders go with the answer this server relays (an earlier try's answer names the same write's).
            if (message.holders.length > 0) this.next.requests.set(message.requestId, { ...entry, holders: unionOfHolders(entry.holders, message.holders) });
            return this.#stepRequest(message.requestId, { type: 'forward.replied', retry: message.retry });
          }
          this.next.requests.set(message.requestId, { ...entry, readToken: message.dataToken });
          this.#stepRequest(message.requestId, { type: 'forward.replied', retry: message.retry });
          // The answer of an earlier try is ignored by the machine (answersCurrentTry): the request keeps its own token,
          // and the bytes that answer brought are let go. (An answer taken finishes the request, which lets go of them.)
          const after = this.next.read('requests').get(message.requestId);
          if (after?.readToken === message.dataToken) {
            this.next.requests.set(message.requestId, { ...after, readToken: entry.readToken });
            this.#releaseReceivedData(message.dataToken);
          }
          return;
        }
        if (message.outcome.status === 'stale') {
          // Learn first, so the machine hears whether this server turns out to be the owner (a destination that missed the
          // push). A provisional route is only followed: no table learns a route before its flip is durable.
          const learnsRoute = message.routeProvisional !== true;
          if (learnsRoute) this.#learnRoute(entry.operation.pageKey, { owner: message.outcome.owner, epoch: message.outcome.epoch });
          // The fresher of the answer and this server's own view: an answer that took its time may name a route older
          // than one learnt meanwhile (a session review: s1's answer naming s2 at epoch 2 reached s2 after the page had
          // moved back to s1 at 3, and s2, taking the answer's route, found itself named without a valid copy: EIO).
          const { localCopy, route } = this.#routingView(entry.operation);
          const freshest = route.epoch > message.outcome.epoch ? route : { owner: message.outcome.owner, epoch: message.outcome.epoch };
          return this.#stepRequest(message.requestId, { type: 'forward.stale', retry: message.retry, owner: freshest.owner, epoch: freshest.epoch, localCopy }, learnsRoute);
        }
        return this.#stepRequest(message.requestId, { type: 'forward.failed', retry: message.retry, errno: message.outcome.errno, reason: message.outcome.reason });
      }
      case 'piece.copy': return this.#receivePiece(from, message);
      case 'piece.stored': return this.#pieceStored(from, message);
      case 'block.write':
        if (isFencedOff(this.next.incarnationFence, from, message.senderIncarnation)) return this.#releaseReceivedData(message.dataToken);
        return this.#receiveBlockWrite(from, message);
      case 'block.written':
        if (message.ok && message.pageKey !== undefined) this.#answerStaleMoveAck(from, message.pageKey, null);
        return this.#servePartDone(message.requestId, from, message.ok, null, message.lossEpoch, message.cancelled === true);
      case 'block.cancel': return this.#cancelPart(from, message);
      case 'block.read': return this.#receiveBlockRead(from, message);
      case 'block.readDone': return this.#servePartDone(message.requestId, from, message.ok, message.dataToken, null);
      case 'move.commit': return this.#receiveCommit(from, message);
      case 'move.committed': {
        if (!this.#answersCurrentMove(from, message.pageKey, message.epoch)) return;
        const key = pageKeyText(message.pageKey);
        const move = this.next.read('moves')[key];
        // Only a destination that serves the page until it learns the flip is sent requests meanwhile (#committedDestination).
        if (message.destinationServes && move?.snapshot.status === 'active' && move.snapshot.context.attempt === message.attempt) this.next.moves[key] = { ...move, destinationServesAttempt: message.attempt };
        return this.#stepMove(message.pageKey, { type: 'destination.committed', attempt: message.attempt });
      }
      case 'move.copyStale':
        if (!this.#answersCurrentMove(from, message.pageKey, message.epoch)) return;
        return this.#stepMove(message.pageKey, { type: 'destination.stale', attempt: message.attempt, destinationAttempt: message.destinationAttempt });
      case 'piece.handover': return this.#receiveHandover(from, message);
      case 'piece.handedOver': return this.#pieceHandedOver(from, message);
      case 'route.update': return this.#learnRoute(message.pageKey, { owner: message.owner, epoch: message.epoch });
      case 'move.abandoned': return receiveAbandoned(this, from, message);
      case 'move.released':
        if (!this.#answersCurrentMove(from, message.pageKey, message.epoch)) return;
        return this.#stepMove(message.pageKey, { type: 'destination.released', attempt: message.attempt });
      case 'route.query': return this.#sendRoute(from, message.pageKey);
      case 'flush.request':
        // A sender behind on membership may not know every member that holds data: it learns our record and waits for them too.
        if (this.next.membership.epoch > message.membershipEpoch) this.effects.push({ type: 'peer.send', to: from, message: { type: 'membership.update', membership: this.next.membership } });
        this.effects.push({ type: 'data.sync', completionId: this.#await({ kind: 'flush.synced', flushId: message.flushId, from }), pageKey: null });
        return;
      case 'flush.done':
        // Done under a record we have not adopted yet (its update may still be on its way): the retry asks again once we have it.
        if (message.membershipEpoch > this.next.membership.epoch) return;
        return this.#flushPartDone(message.flushId, from, message.ok, message.lossEpoch);
      case 'volume.define': return this.#defineVolume(message.volume);
      case 'volume.reserve': return receiveReserve(this, from, message.volume, message.reservationId);
      case 'volume.reserveAnswer': return receiveReserveAnswer(this, from, message.name, message.reservationId, message.granted, message.reason);
      case 'volume.release': return receiveRelease(this, from, message.name, message.reservationId);
      case 'volumes.known': return this.#volumesKnownBy(from, message.names);
      case 'membership.update': return receiveMembership(this, from, message.membership);
      case 'leave.check': return receiveLeaveCheck(this, from, message.membership, message.lossEpoch);
      case 'leave.answer': return receiveLeaveAnswer(this, from, message.membership, message.clear);
      case 'forget.check': return receiveForgetCheck(this, from, message.membership, message.servers);
      case 'forget.answer': return receiveForgetAnswer(this, from, message.membership, message.servers, message.clear, message.reason);
      case 'lost.check': return receiveLostCheck(this, from, message.membership, message.servers, message.round, message.pages);
      case 'lost.answer': return receiveLostAnswer(this, from, message.membership, message.servers, message.round, message.pages, message.refusal, message.deferTo);
      default: assertNever(message, 'peer message');
    }
  }

  #resume(completionId: string, ok: boolean): void {
    const continuation = this.next.read('continuations').get(completionId);
    if (!continuation) return;
    const waitsForMore = (continuation.kind === 'copy.stored' || continuation.kind === 'peer.written') && continuation.waitingFor > 1;
    if (waitsForMore && ok) {
      this.next.continuations.set(completionId, { ...continuation, waitingFor: continuation.waitingFor - 1 });
      return;
    }
    this.next.continuations.delete(completionId);
    if (ok && 'versionClaim' in continuation && continuation.versionClaim) this.#confirmClaim(continuation.versionClaim);
    switch (continuation.kind) {
      case 'move.persisted': {
        const move = this.next.moves[continuation.pageText];
        if (!move) return;
        if (!ok) {
          // The stage stays pending (nothing acts on a checkpoint that is not durable); the same write is tried again after a pause.
          this.effects.push({ type: 'timer.set', timerId: `persist|${continuation.pageText}|${continuation.stage}:${continuation.attempt}`, delayMs: this.next.config.moveRestartDelayMs });
          return;
        }
        const pageKey = move.snapshot.context.pageKey;
        this.#stepMove(pageKey, { type: 'stage.persisted', stage: continuation.stage, attempt: continuation.attempt });
        // A failure that came while the record was written: the machine goes on from the stage that write made durable
        // (or, if it began another stage record meanwhile, the failure waits for that one too).
        const after = this.next.moves[continuation.pageText];
        if (after?.failureDeferred === undefined) return;
        const { failureDeferred, ...rest } = after;
        this.next.moves[continuation.pageText] = rest;
        return this.#stepMove(pageKey, failureDeferred);
      }
      case 'serve.localDone': {
        const entry = this.next.read('requests').get(continuation.serveId);
        if (entry?.operation.kind === 'write') {
          const key = pageKeyText(entry.operation.pageKey);
          const sequence = this.next.read('serves').get(continuation.serveId)?.sequence;
          const inFlight = (this.next.read('localWritesInFlight').get(key) ?? []).filter((candidate) => candidate !== sequence);
          // A page without writes in flight has no entry, so the record stays as small as the requests in flight.
          if (inFlight.length > 0) this.next.localWritesInFlight.set(key, inFlight);
          else this.next.localWritesInFlight.delete(key);
        }
        if (!ok) {
          this.next.serves.delete(continuation.serveId);
          return this.#stepRequest(continuation.serveId, { type: 'request.failed', errno: errnoIo, reason: 'local I/O error' });
        }
        return this.#servePartDone(continuation.serveId, this.#self, true, null, entry?.operation.kind === 'write' ? this.next.lossEpoch : null);
      }
      case 'copy.read': {
        const move = this.next.moves[continuation.pageText];
        // Nothing goes once the move is being abandoned (an abandoned move keeps its attempt number).
        const abandoned = move !== undefined && isAbandoning(move.snapshot);
        if (!move || !ok || abandoned || move.snapshot.context.attempt !== continuation.attempt) {
          this.effects.push({ type: 'token.release', token: continuation.token });
          return;
        }
        const context = move.snapshot.context;
        const volume = ownValue(this.next.read('volumes'), context.pageKey.volume);
        assert(volume, 'volume of a moving page exists');
        // Every piece before this one is durably handed over: its start checkpoint is durable (see piece.copy).
        const handedOverBlocks = continuation.piece * movePieceSizeBlocks(volume, context.pieceCount);
        this.effects.push({
          type: 'peer.send', to: context.destination,
          message: { type: 'piece.copy', pageKey: context.pageKey, attempt: continuation.attempt, epoch: context.checkpoint.epoch + 1, piece: continuation.piece, offsetBlocks: continuation.offsetBlocks, lengthBlocks: continuation.lengthBlocks, sequence: continuation.sequence, handedOverBlocks, sourceSequence: this.next.lastWriteSequence, dataToken: continuation.token },
        });
        this.effects.push({ type: 'token.release', token: continuation.token });
        return;
      }
      case 'handover.synced': {
        const replica = this.next.replicas.get(continuation.pageText);
        if (!replica) return;
        this.#acknowledgeMoveData(continuation.pageText, continuation.from, { type: 'piece.handedOver', pageKey: replica.context.pageKey, attempt: continuation.attempt, epoch: continuation.epoch, piece: continuation.piece, ok });
        return;
      }
      case 'copy.stored': {
        if (!ok) return;
        const replica = this.next.replicas.get(continuation.pageText);
        const record = replica?.context.record;
        if (!replica || record?.status !== 'receiving' || record.attempt !== continuation.attempt) return;
        this.#acknowledgeMoveData(continuation.pageText, continuation.from, {
          type: 'piece.stored', pageKey: replica.context.pageKey, attempt: continuation.attempt, epoch: continuation.epoch, piece: continuation.piece, offsetBlocks: continuation.offsetBlocks, lengthBlocks: continuation.lengthBlocks,
        });
        return;
      }
      case 'peer.written':
        this.#acknowledgeMoveData(continuation.pageText, continuation.from, { type: 'block.written', requestId: continuation.requestId, ok, lossEpoch: this.next.lossEpoch, ...(ok ? { pageKey: pageKeyOfText(continuation.pageText)! } : {}) });
        return;
      case 'receiving.persisted': return this.#receivingRecordPersisted(continuation, ok);
      case 'volume.persisted': return this.#volumePersisted(continuation, ok);
      case 'peer.read':
        this.effects.push({ type: 'peer.send', to: continuation.from, message: { type: 'block.readDone', requestId: continuation.requestId, ok, dataToken: ok ? continuation.token : null } });
        this.effects.push({ type: 'token.release', token: continuation.token });
        return;
      case 'commit.synced': {
        if (!ok) return;
        const replica = this.next.replicas.get(continuation.pageText);
        const record = replica?.context.record;
        if (!replica || record?.status !== 'receiving' || record.attempt !== continuation.attempt) return;
        // The valid record is made durable before the replica machine (and anyone asking it) sees the copy as valid.
        const completion = this.#await({ kind: 'commit.persisted', pageText: continuation.pageText, from: continuation.from, attempt: continuation.attempt, epoch: continuation.epoch });
        this.effects.push({ type: 'meta.commit', completionId: completion, writes: [{ kind: 'replica', pageKey: replica.context.pageKey, record: { status: 'valid', epoch: continuation.epoch } }] });
        return;
      }
      case 'commit.persisted': {
        const replica = this.next.replicas.get(continuation.pageText);
        if (!ok || !replica) return;
        this.#stepReplica(replica.context.pageKey, { type: 'replica.commit', attempt: continuation.attempt, epoch: continuation.epoch }, null, true);
        // Kept, with the epoch, until this server learns the flip: it serves the page itself meanwhile (#servesReceivedBlocks).
        const joined = this.next.read('attemptsJoined')[continuation.pageText];
        if (joined?.attempt === continuation.attempt) this.next.attemptsJoined[continuation.pageText] = { ...joined, committedEpoch: continuation.epoch };
        else delete this.next.attemptsJoined[continuation.pageText];
        this.effects.push({ type: 'peer.send', to: continuation.from, message: { type: 'move.committed', pageKey: replica.context.pageKey, attempt: continuation.attempt, epoch: continuation.epoch, destinationServes: this.#servesCommitted(continuation.pageText) } });
        return;
      }
      case 'flush.synced':
        if (continuation.from === null) return this.#flushPartDone(continuation.flushId.toString(), this.#self, ok, this.next.lossEpoch);
        this.effects.push({ type: 'peer.send', to: continuation.from, message: { type: 'flush.done', flushId: continuation.flushId, ok, membershipEpoch: this.next.membership.epoch, lossEpoch: this.next.lossEpoch } });
        return;
      case 'leave.confirm': return answerLeaveCheck(this, continuation.to, continuation.epoch, ok);
      case 'forget.confirm': return answerForgetCheck(this, continuation.to, continuation.servers, continuation.epoch, continuation.takeovers, ok);
      case 'takeover.durable': return takeoversDurable(this, continuation.servers, continuation.takeovers, ok);
      case 'lost.claimed': return claimDurable(this, continuation.claim, continuation.epoch, ok);
      case 'lost.reported': return answerLostCheck(this, continuation, ok);
      case 'lost.deleted': return lostPageDeleted(this, continuation.declaration, ok);
      case 'lost.declared': return lostPageDeclared(this, continuation.declaration, ok);
      case 'abandon.released': return abandonedCopyReleased(this, continuation, ok);
      case 'membership.persisted': return membershipPersisted(this, continuation, ok);
      default: assertNever(continuation, 'continuation');
    }
  }

  #timerFired(timerId: string): void {
    const [kind, subject, detail] = timerId.split('|');
    if (subject === undefined || detail === undefined) return;
    switch (kind) {
      case 'request': return this.#stepRequest(subject, { type: 'timer.fired', timerId: detail });
      case 'serve': return this.#retryServe(subject, Number(detail));
      case 'move': {
        const move = this.next.moves[subject];
        if (move) this.#stepMove(move.snapshot.context.pageKey, { type: 'timer.fired', timerId: detail });
        return;
      }
      case 'persist': {
        const move = this.next.read('moves')[subject];
        if (move && isPersistRetryDue(move, detail)) this.#persistCheckpoint(move.snapshot.context.pageKey, move.snapshot.context, move.snapshot.context.pending!);
        return;
      }
      case 'move-restart': {
        const move = this.next.moves[subject];
        if (move && move.snapshot.matches('interrupted') && String(move.snapshot.context.checkpoint.attempt) === detail) {
          this.#stepMove(move.snapshot.context.pageKey, { type: 'restart' });
        }
        return;
      }
      case 'flush': {
        const timed = this.next.read('flushes')[subject];
        if (!timed || String(timed.retries) !== detail) return;
        // A retry period without an answer: members holding none of its writes are excused; if only they were left, done.
        excuseSilentMembers(this, subject);
        const flush = this.next.read('flushes')[subject];
        if (!flush) return;
        if (flush.retries >= this.next.config.peerRetriesMax) {
          // Its covered writes stay for the next FLUSH to check.
          endFlush(this, subject);
          this.effects.push({ type: 'client.reply', requestId: flush.requestId, outcome: { status: 'error', errno: errnoIo, reason: `flush not confirmed by ${flush.remaining.join(', ')}` }, dataToken: null });
          return;
        }
        this.next.flushes[subject] = { ...flush, retries: flush.retries + 1 };
        return this.#sendFlush(subject);
      }
      case 'handover': {
        // No answer to piece.handover in time: the destination is presumed failed, and the piece is copied again.
        const deferred = this.next.read('handoversDeferred')[subject];
        const move = this.next.read('moves')[subject];
        if (!move || !isHandoverTimerLive(deferred, detail)) return;
        return this.#stepMove(move.snapshot.context.pageKey, { type: 'destination.failed', attempt: deferred!.attempt });
      }
      case 'volume-definition': {
        const volume = ownValue(this.next.read('volumes'), subject);
        return volume ? this.#defineVolumeAgain(volume, detail === noAdminRequest ? null : detail) : undefined;
      }
      case 'move-removal': {
        const pageKey = pageKeyOfText(subject);
        if (pageKey === null || this.next.read('moves')[subject]) return;
        return this.#removeMoveRecord(pageKey);
      }
      case 'receiving': {
        if (!isReceivingRetryDue({ replicas: this.next.replicas, attemptsJoined: this.next.read('attemptsJoined'), continuations: this.next.read('continuations') }, subject, detail)) return;
        const replica = this.next.replicas.get(subject);
        const record = replica?.context.record;
        assert(replica && record?.status === 'receiving', 'a receiving record is retried only while it is current');
        const completionId = this.#await({ kind: 'receiving.persisted', pageText: subject, attempt: record.attempt, epoch: record.epoch });
        this.effects.push({ type: 'meta.commit', completionId, writes: [{ kind: 'replica', pageKey: replica.context.pageKey, record }] });
        return;
      }
      case 'leave': return leaveCheckTimerFired(this, Number(subject), Number(detail));
      case 'forget': return forgetCheckTimerFired(this, Number(subject), Number(detail));
      case 'lost': return lostCheckTimerFired(this, Number(subject), Number(detail));
      case releaseRetryTimer: {
        const pageKey = pageKeyOfText(subject);
        if (pageKey !== null && isReleaseRetryDue(this.next, subject, detail) && !isCommitUnderWay(this.next.read('continuations'), subject)) releaseCopyOfPassedMove(this, pageKey);
        return;
      }
      case membershipCommitTimer: return membershipCommitTimerFired(this, subject);
      case reservationTimer: return reservationTimerFired(this, subject, detail);
      default: return;
    }
  }

  #trace(machine: string, instance: string, event: string, from: unknown, to: unknown): void {
    if (!this.next.config.traceTransitions) return;
    this.effects.push({ type: 'trace', machine, instance, event, from: JSON.stringify(from), to: JSON.stringify(to) });
  }
}

/**
 * Whether a timer would still do anything if it fired now. Runtimes use it to
 * cancel timers of finished work; the simulator uses it so that stale timers
 * do not multiply states.
 */
export function isTimerLive(state: NodeState, timerId: string): boolean {
  // The first three '|'-separated fields, as `split('|')` would give them, without the array and the rest: runtimes
  // ask this for every forward timer they hold, twice per forwarded request or so.
  const kindEnd = timerId.indexOf('|');
  const subjectEnd = kindEnd < 0 ? -1 : timerId.indexOf('|', kindEnd + 1);
  if (subjectEnd < 0) return false;
  const detailEnd = timerId.indexOf('|', subjectEnd + 1);
  const kind = timerId.slice(0, kindEnd);
  const subject = timerId.slice(kindEnd + 1, subjectEnd);
  const detail = detailEnd < 0 ? timerId.slice(subjectEnd + 1) : timerId.slice(subjectEnd + 1, detailEnd);
  switch (kind) {
    case 'request': {
      const entry = state.requests.get(subject);
      // The routing machine's states are all top-level and atomic, so `matches('forwarding')` is this comparison
      // (without the state path XState builds for it).
      if (entry === undefined || entry.snapshot.status !== 'active') return false;
      if (entry.snapshot.value === 'forwarding') return detail === forwardTimerId(entry.snapshot.context);
      return entry.snapshot.value === 'cancelling' && detail === cancelTimerId(entry.snapshot.context);
    }
    case 'serve': {
      const serve = state.serves.get(subject);
      return serve !== undefined && String(serve.retries) === detail && serve.remaining.some((server) => server !== state.config.self);
    }
    case 'move': {
      const move = state.moves[subject];
      if (move !== undefined && move.snapshot.status === 'active' && move.snapshot.matches('abandoned')) return detail === abandonNoticeTimerId(move.snapshot.context);
      return move !== undefined && move.snapshot.status === 'active' && detail === progressTimerId(move.snapshot.context) &&
        (move.snapshot.matches({ moving: { startPiece: 'copying' } }) || move.snapshot.matches({ moving: { startMove: 'copying' } }) || move.snapshot.matches({ moving: 'committing' }));
    }
    case 'persist': {
      const move = state.moves[subject];
      return move !== undefined && isPersistRetryDue(move, detail);
    }
    case 'move-restart': {
      const move = state.moves[subject];
      return move !== undefined && move.snapshot.matches('interrupted') && String(move.snapshot.context.checkpoint.attempt) === detail;
    }
    case 'flush': return String(state.flushes[subject]?.retries) === detail;
    case 'handover': return isHandoverTimerLive(state.handoversDeferred[subject], detail);
    case 'leave': return isLeaveCheckTimerLive(state.leaveCheck, subject, detail);
    case 'forget': return isForgetCheckTimerLive(state.forgetCheck, subject, detail);
    case 'lost': return isLostCheckTimerLive(state.lostCheck, subject, detail);
    case releaseRetryTimer: return isReleaseRetryDue(state, subject, detail);
    case 'receiving': return isReceivingRetryDue(state, subject, detail);
    case 'move-removal': return state.moves[subject] === undefined;
    case 'volume-definition': return ownValue(state.volumes, subject) !== undefined;
    case membershipCommitTimer: return isMembershipCommitRetryDue(state, subject);
    case reservationTimer: return isReservationTimerLive(state, subject, detail);
    default: return false;
  }
}

/** A piece hand-over times out only while the destination's confirmation of that very attempt and stage is awaited. */
function isHandoverTimerLive(deferred: DeferredHandover | undefined, detail: string): boolean {
  return deferred?.kind === 'finishPiece' && deferred.confirming && `${deferred.attempt}:${deferred.stage}` === detail;
}

/**
 * The most volumes a group holds: it bounds the definitions every server
 * keeps and the names each announcement carries (`volumes.known`: at most
 * 4,096 names of at most 64 characters, well inside a peer frame).
 */
export const volumesMax = 4096;

/** The timer's detail when no administrator waits for the definition (admin request ids are never "0"). */
const noAdminRequest = '0';

/** Commits a volume's definition again after a pause; the detail names the administrator's request that waits for it. */
function volumeDefinitionTimerId(volumeName: string, adminRequestId: string | null): string {
  return `volume-definition|${volumeName}|${adminRequestId ?? noAdminRequest}`;
}

/** Why the move machine refused `move.abandon`, for the administrator. */
function abandonRefusal(pageText: string, snapshot: MoveEntry['snapshot']): string {
  const { checkpoint, destination } = snapshot.context;
  if (isAbandoning(snapshot)) return `the move of ${pageText} is already abandoned`;
  if (checkpoint.owner === 'destination' || snapshot.matches({ moving: 'flipping' })) return `the move of ${pageText} has flipped; it is finishing`;
  if (checkpoint.commitAsked === true || snapshot.matches({ moving: 'committing' })) return `${destination} may already own ${pageText} (its commit was asked): the move can only finish; bring ${destination} back`;
  if (checkpoint.pieceModes.includes('atDestination')) return `a piece of ${pageText} is served by ${destination} alone: the move can only finish; bring ${destination} back`;
  return `the move of ${pageText} is recording a stage; try again shortly`;
}

function receivingRetryTimerId(pageText: string, attempt: number, epoch: number): string {
  return `receiving|${pageText}|${attempt}:${epoch}`;
}

/**
 * A receiving record whose commit failed is written again only while it is
 * still the page's record and not durable, and no commit of the page is under
 * way (its valid record must not be overwritten by a late receiving one).
 */
function isReceivingRetryDue(state: Pick<NodeState, 'replicas' | 'attemptsJoined' | 'continuations'>, pageText: string, detail: string): boolean {
  const record = state.replicas.get(pageText)?.context.record;
  const joined = state.attemptsJoined[pageText];
  if (record?.status !== 'receiving' || joined === undefined || joined.recordDurable || joined.attempt !== record.attempt || `${record.attempt}:${record.epoch}` !== detail) return false;
  return !isCommitUnderWay(state.continuations, pageText);
}

/** A checkpoint write that failed is retried only while the move still waits for that very checkpoint (`stage:attempt`). */
function isPersistRetryDue(move: MoveEntry, detail: string): boolean {
  const { pending } = move.snapshot.context;
  return move.snapshot.status === 'active' && pending !== null && `${pending.stage}:${pending.attempt}` === detail;
}

function isWithinOnePiece(volume: VolumeDefinition, operation: BlockOperation): boolean {
  const { pageKey, offsetBlocks, lengthBlocks } = operation;
  if (!Number.isSafeInteger(pageKey.page) || pageKey.page < 0 || pageKey.page >= volume.pageCount) return false;
  if (!Number.isSafeInteger(offsetBlocks) || !Number.isSafeInteger(lengthBlocks) || offsetBlocks < 0 || lengthBlocks < 1) return false;
  if (offsetBlocks + lengthBlocks > volume.pageSizeBlocks) return false;
  return pieceOfBlock(volume, offsetBlocks) === pieceOfBlock(volume, offsetBlocks + lengthBlocks - 1);
}

/** The durable records a server starts with when a volume is defined before the group first boots. */
export function initialDurableRecords(volumes: readonly VolumeDefinition[], self: ServerId): DurableRecords {
  const routes: DurableRecords['routes'][number][] = [];
  const replicas: DurableRecords['replicas'][number][] = [];
  for (const volume of volumes) {
    for (const { pageKey, route, record } of initialPageRecords(volume, self)) {
      routes.push({ pageKey, route });
      if (record !== null) replicas.push({ pageKey, record });
    }
  }
  return { volumes, routes, replicas, moves: [] };
}

/** What a volume's definition sets for each of its pages on `self`: the route at epoch 1, and a valid copy where `self` is the first owner. */
function initialPageRecords(volume: VolumeDefinition, self: ServerId): Array<{ pageKey: PageKey; route: Route; record: ReplicaRecord | null }> {
  return pageKeysOf(volume).map((pageKey) => {
    const owner = initialOwner(volume, pageKey.page);
    return { pageKey, route: { owner, epoch: 1 }, record: owner === self ? { status: 'valid', epoch: 1 } : null };
  });
}
