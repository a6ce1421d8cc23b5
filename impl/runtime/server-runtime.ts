/**
 * One server of the group, on real sockets, disks and clocks.
 *
 * Theory of operation. All decisions are the node's (`machines/node/node.ts`,
 * the same pure step the explorer checks). This runtime only turns the world
 * into `NodeInput`s — NBD requests, peer messages, completed disk and
 * metadata I/O, fired timers, admin commands — and carries out the
 * `NodeEffect`s each step returns, in order. It holds two kinds of state the
 * node does not: the bytes behind data tokens (the node names payloads, it
 * never holds them) and the callbacks of requests waiting for a reply.
 *
 * Ordering. Disk operations on one page run one after another in effect
 * order, as the simulator runs them, so a read issued after a write sees it
 * and a page is deleted only after the reads before it; pages proceed in
 * parallel. Metadata commits are applied in effect order too, by the store:
 * each is handed over at once rather than after the one before it is
 * durable, so commits issued while one is being synced share the next
 * transaction and its sync (a move's checkpoint no longer waits behind the
 * previous move's cleanup or a route push). Completions come back as
 * `io.done` inputs.
 *
 * Steps. Inputs are queued and stepped in arrival order. Whatever is queued
 * when the runtime steps goes through one `nodeStepMany` (the same state and
 * effects as one `nodeStep` per input, in one draft, so the node's maps are
 * copied once per batch rather than once per input), at most
 * `inputsPerStepMax` at a time; the effects then run in order. Inputs arrive
 * while effects run (completions of I/O done at once, see `PageData`), and a
 * caller that has several at hand (the NBD front end with every request of
 * one socket read) can hold them back with `batch`.
 */
import { CopyPacer } from './copy-pacer.js';
import type { CopyPacing } from './copy-pacer.js';
import { NodeTimers } from './node-timers.js';
import { RequestPathLatencies } from './request-path-latency.js';
import { PeerRoundTrips } from './peer-round-trips.js';
import type { RequestOutcome } from '../../machines/effects.js';
import { assertNever, pageKeyText, ownValue } from '../../machines/identifiers.js';
import type { PageKey, ServerId } from '../../machines/identifiers.js';
import type { BlockOperation, PeerMessage } from '../../machines/node/messages.js';
import type { NodeConfig } from '../../machines/node/node-config.js';
import type { DurableRecords, MetadataWrite, NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { clientEntryId, emptyNodeState, peerEntryId } from '../../machines/node/node-state.js';
import { isTimerLive, nodeStepMany } from '../../machines/node/node.js';
import type { MoveKind } from '../../machines/migration/checkpoint.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import type { Membership, MembershipChange, MembershipRefusal } from '../../machines/membership/membership.js';
import { receivedDataToken } from '../../machines/node/received-data-token.js';
import { firstIncarnation } from '../storage/incarnation-counter.js';

/** Page data as the runtime needs it; `impl/storage` provides it on files. */
export interface PageData {
  read(pageKey: PageKey, offsetBlocks: number, lengthBlocks: number, blockSizeBytes: number): Promise<Buffer>;
  write(pageKey: PageKey, offsetBlocks: number, data: Buffer, blockSizeBytes: number, durable: boolean): Promise<void>;
  /**
   * Optional: `read` done at once when nothing has to be waited for, or null
   * (nothing done) when it cannot be; a throw is the read's failure. The
   * runtime then reports the completion in the same turn, without promises.
   */
  readNow?(pageKey: PageKey, offsetBlocks: number, lengthBlocks: number, blockSizeBytes: number): Buffer | null;
  /** Optional: a write without `durable` done at once, as `readNow`; false when it was not done. */
  writeNow?(pageKey: PageKey, offsetBlocks: number, data: Buffer, blockSizeBytes: number): boolean;
  sync(pageKey: PageKey | null): Promise<void>;
  delete(pageKey: PageKey): Promise<void>;
}

/**
 * Durable metadata as the runtime needs it; `impl/storage` provides it on lmdb.
 * `commit` is called again before earlier commits have resolved: commits must
 * be applied (and their promises resolved) in call order, and may share one
 * durable transaction (lmdb does both). A commit that fails with its outcome
 * unknown (it may be durable all the same) rejects with an error whose
 * `outcomeUnknown` is true; any other rejection applied nothing.
 */
export interface Metadata {
  load(): DurableRecords;
  commit(writes: readonly MetadataWrite[]): Promise<void>;
}

export interface Peers {
  send(to: ServerId, message: PeerMessage, data: Buffer | null): void;
  /** Optional: drops messages not yet sent (queued for a link that is down) that `isWithdrawn` picks (peer-transport.ts). */
  withdrawQueued?(isWithdrawn: (message: PeerMessage, to: ServerId) => boolean): number;
}

export interface RuntimeReply {
  readonly outcome: RequestOutcome;
  readonly data: Buffer | null;
}

export interface ServerRuntimeOptions {
  readonly config: NodeConfig;
  readonly incarnation: number;
  /** This run's loss epoch (impl/storage/loss-epoch.ts); absent: 0. */
  readonly lossEpoch?: number;
  /** This is the first run, or the previous one stopped cleanly with every volume flushed (impl/storage/loss-epoch.ts, DurableRecords.earlierRunsSynced); absent: false. */
  readonly earlierRunsSynced?: boolean;
  readonly pages: PageData;
  readonly metadata: Metadata;
  readonly peers: Peers;
  readonly log: (line: string) => void;
  /** Receives one structured event per machine transition when the node config asks for them. */
  readonly trace?: (event: Extract<NodeEffect, { type: 'trace' }>) => void;
  /** Bytes held under a token longer than this are forgotten (a message the node ignored leaves its token behind). */
  readonly tokenLifetimeMs?: number;
  /** How fast page copies go with clients quiet and with clients active (copy-pacer.ts); absent: unpaced. */
  readonly copyPacing?: CopyPacing;
  /** The group as configured (epoch 0, with peer addresses and weights), used until the store holds a newer record. */
  readonly bootstrapMembership?: Membership;
  /** Called whenever the node adopts a membership record (the transport connects to new members, the balancer follows). */
  readonly onMembership?: (membership: Membership) => void;
  /**
   * A metadata commit failed and may be durable all the same. The node takes
   * a failed commit for one not applied, and the explorer
   * (`--failed-commits-durable`) finds a move that never ends when it was, so
   * the server process stops here and recovers from what is durable (the
   * server's handler exits). Absent (tests), the failure goes to the node.
   */
  readonly onCommitOutcomeUnknown?: (error: Error) => void;
}

/** The node's answer to an administrative request (`flipPending`: see `move`; `refusal`: see `changeMembership`). */
interface AdminReply {
  readonly ok: boolean;
  readonly message: string;
  readonly flipPending: boolean;
  readonly refusal?: MembershipRefusal;
}

/** How long `move` waits for this server to learn a flip before it passes the refusal on (`flipPending`). */
export const flipWaitMsMax = 2_000;
/** The pause between two tries of such a move starts at 1 ms (the push is normally about to land) and doubles up to this. */
const flipRetryDelayMsMax = 64;

/** The most inputs one node step takes; more wait for the next step (a bound on the work between effects). */
export const inputsPerStepMax = 256;

interface HeldToken {
  readonly data: Buffer;
  /** The number of token sweeps done when the bytes were taken (a clock of the sweeper's period: no clock read per token). */
  readonly heldSinceSweep: number;
}

/** At most this many callers wait for moves to finish at once (`moveFinished`). */
export const moveFinishedWaitersMax = 1024;

/** The answer to a client request or FLUSH the server will not run: it is stopping (or stopped), ESHUTDOWN. */
const shuttingDownReply: RuntimeReply = { outcome: { status: 'error', errno: 108, reason: 'server shutting down' }, data: null };

export class ServerRuntime {
  readonly #options: ServerRuntimeOptions;
  #state: NodeState;
  readonly #tokens = new Map<string, HeldToken>();
  readonly #clientWaiters = new Map<string, (reply: RuntimeReply) => void>();
  /** Latency of client requests by the path each took here (GET /latency). */
  readonly requestLatencies = new RequestPathLatencies();
  /** Round trips of this server's requests to its peers and its service of theirs (peer-round-trips.ts), for GET /latency. */
  readonly peerRoundTrips = new PeerRoundTrips();
  readonly #adminWaiters = new Map<string, (reply: AdminReply) => void>();
  /** Callers waiting until this server holds no move of a page (see `moveFinished`), by page key. */
  readonly #moveFinishedWaiters = new Map<string, Array<() => void>>();
  #moveFinishedWaitersCount = 0;
  readonly #timers: NodeTimers;
  readonly #pageQueues = new Map<string, Promise<void>>();
  readonly #inputs: NodeInput[] = [];
  /**
   * The bytes a queued peer message carries, held under its token just
   * before that message's effects are carried out, as the simulator does
   * when it delivers a message: the node lets a message's bytes go once its
   * writes are issued, and a later message of the same batch may carry the
   * same token (a repeated dual write) or need it longer (a retried forward).
   */
  readonly #dataOfInputs = new Map<NodeInput, { token: string; data: Buffer }>();
  #stepping = false;
  /** How many `batch` calls are running: while any is, inputs wait in the queue. */
  #batchDepth = 0;
  /** After a batch threw, this many inputs are stepped one at a time (see `#stepQueued`). */
  #singleStepsLeft = 0;
  #nextRequest = 0;
  /** The page-copy pacer, if either of its rates is set: a piece is sent when its slot starts. */
  readonly #copyPacer: CopyPacer | null;
  #stopped = false;
  #lastFlushRequestAtMs = Number.NEGATIVE_INFINITY;
  /** Pages whose durable move record is an abandoned move's, for the log's wording (at most one per move record). */
  readonly #abandonedRecords = new Set<string>();
  readonly #sweeper: NodeJS.Timeout;
  #sweepsDone = 0;

  constructor(options: ServerRuntimeOptions) {
    const copyPacer = options.copyPacing ? new CopyPacer(options.copyPacing) : null;
    this.#copyPacer = copyPacer?.paces ? copyPacer : null;
    this.#options = options;
    // Every forwarded request sets a forward timer that nearly always outlives it; a dead one would step the node for
    // nothing, so it is dropped when it falls due and, to free it young, pruned long before (see NodeTimers). Only
    // request timers are: a dead one stays dead unless set again (its machine sets it on every entry to forwarding,
    // and its retry count, part of its id, only grows), and that setting queues it anew. The others always reach the node.
    const isDeadRequestTimer = (timerId: string): boolean => timerId.startsWith('request|') && !isTimerLive(this.#state, timerId);
    this.#timers = new NodeTimers((timerId) => {
      if (!isDeadRequestTimer(timerId)) this.#input({ type: 'timer.fired', timerId });
    }, undefined, { isDead: isDeadRequestTimer });
    this.#state = emptyNodeState(options.config, options.incarnation);
    const lifetimeMs = options.tokenLifetimeMs ?? 120_000;
    const sweepPeriodMs = Math.min(lifetimeMs, 10_000);
    // A token is forgotten at the first sweep at least `lifetimeMs` after it was taken (up to one period later).
    const sweepsPerLifetime = Math.ceil(lifetimeMs / sweepPeriodMs);
    this.#sweeper = setInterval(() => this.#sweepTokens(sweepsPerLifetime), sweepPeriodMs);
    this.#sweeper.unref();
  }

  get self(): ServerId {
    return this.#options.config.self;
  }

  /** The node's state, read-only, for status reports. */
  /** How many tokens hold bytes now (a message's, a client write's, a read's); for tests and status. */
  get tokensHeld(): number {
    return this.#tokens.size;
  }

  get state(): NodeState {
    return this.#state;
  }

  /** When a peer last asked this server to sync for its FLUSH (performance.now() ms; -Infinity: never), for a stop's linger (stop-barrier.ts). */
  get lastFlushRequestAtMs(): number {
    return this.#lastFlushRequestAtMs;
  }

  /** `durable`: the records the caller already loaded from the store at start (server-main sweeps with them first), or loaded here. */
  start(durable: DurableRecords = this.#options.metadata.load()): void {
    // An epoch-0 record is the configuration's, and the configuration given now wins over one stored: such a record
    // could be stored only by adopting a peer's (before epoch-0 records stopped travelling, node-membership.ts), and
    // kept an old config's addresses after a rollout.
    const stored = durable.membership && durable.membership.epoch > 0 ? durable.membership : null;
    // A move abandoned before a restart still waits for its destination: its record's removal is logged as such.
    for (const { pageKey, checkpoint } of durable.moves) if (checkpoint.abandoned === true) this.#abandonedRecords.add(pageKeyText(pageKey));
    this.#input({ type: 'node.start', durable: { ...durable, membership: stored ?? this.#options.bootstrapMembership ?? durable.membership ?? null, lossEpoch: this.#options.lossEpoch ?? 0, earlierRunsSynced: this.#options.earlierRunsSynced === true,
      earlierIncarnations: this.#options.incarnation > firstIncarnation,
    } });
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#sweeper);
    this.#timers.stop();
    for (const waiter of this.#clientWaiters.values()) waiter(shuttingDownReply);
    this.#clientWaiters.clear();
    for (const waiter of this.#adminWaiters.values()) waiter({ ok: false, message: 'server shutting down', flipPending: false });
    this.#adminWaiters.clear();
  }

  /**
   * A block operation within one piece of one page, as the NBD front end
   * splits them. `connectionId` names the client connection it came on, unique
   * within this server's lifetime (FLUSH reports losses per connection).
   */
  request(operation: BlockOperation, data: Buffer | null, connectionId: string): Promise<RuntimeReply> {
    if (this.#stopped) return Promise.resolve(shuttingDownReply);
    const requestId = this.#newRequestId('');
    const nowMs = performance.now();
    this.#copyPacer?.clientRequestArrived(nowMs);
    this.requestLatencies.started(requestId, this.#state.moves[pageKeyText(operation.pageKey)] !== undefined, nowMs);
    if (operation.kind === 'write') {
      if (!data) throw new Error('a write carries data');
      this.#hold(`client:${requestId}`, data);
    }
    return this.#awaitClientReply(requestId, { type: 'client.request', requestId, connectionId, operation });
  }

  /**
   * Registers the waiter of a client request or FLUSH and steps its input. A
   * step that throws rejects the caller's promise and takes the waiter away
   * with it, so none is left for a reply that may never come.
   */
  #awaitClientReply(requestId: string, input: NodeInput): Promise<RuntimeReply> {
    return new Promise((resolve, reject) => {
      this.#clientWaiters.set(requestId, resolve);
      try {
        this.#input(input);
      } catch (error) {
        this.#clientWaiters.delete(requestId);
        reject(error);
      }
    });
  }

  /**
   * NBD FLUSH on a connection to `volume`: every write acknowledged before it
   * becomes durable on every server holding it, or the reply is an error
   * (EIO if a power cut may have taken one; see machines/node/loss-watch.ts).
   */
  flush(connectionId: string, volume: string): Promise<RuntimeReply> {
    if (this.#stopped) return Promise.resolve(shuttingDownReply);
    const requestId = this.#newRequestId('');
    return this.#awaitClientReply(requestId, { type: 'client.flush', requestId, connectionId, volume });
  }

  /** A client connection closed: the node stops tracking it. */
  connectionClosed(connectionId: string): void {
    if (!this.#stopped) this.#input({ type: 'client.disconnected', connectionId });
  }

  /** `pieceCount` is the move's own (it must divide the volume's piecesPerPage); absent, the volume's. */
  async move(pageKey: PageKey, to: ServerId, kind: MoveKind, pieceCount?: number): Promise<{ ok: boolean; message: string }> {
    // A page that has just arrived here is moved on as soon as this server learns its source's flip (the source's
    // route push, normally on its way; each refusal also asks for the route): the refusal is waited out, for a while.
    const deadlineMs = performance.now() + flipWaitMsMax;
    for (let delayMs = 1; ; delayMs = Math.min(2 * delayMs, flipRetryDelayMsMax)) {
      const { flipPending, ...result } = await this.#admin((requestId) => ({ type: 'admin.move', requestId, pageKey, to, kind, pieceCount }));
      if (!flipPending || performance.now() >= deadlineMs) return result;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      if (this.#stopped) return result;
    }
  }

  /** Gives up the page's move, run here as its source (machines/migration/move-setup.ts, "Abandoning"). */
  abandonMove(pageKey: PageKey): Promise<{ ok: boolean; message: string }> {
    return this.#admin((requestId) => ({ type: 'admin.abandonMove', requestId, pageKey }));
  }

  /**
   * Resolves once this server holds no move of the page (at once if it holds
   * none; an abandoned move is held until its destination has let go of its
   * copy, which may be never): the source's move ends with the flip made durable and its copy
   * released. Waiting costs nothing per step unless someone waits, where
   * polling `/status` cost the server a status report per poll. Bounded: at
   * most `moveFinishedWaitersMax` callers wait at once; past that, null.
   */
  moveFinished(pageKey: PageKey): Promise<void> | null {
    const key = pageKeyText(pageKey);
    if (this.#state.moves[key] === undefined) return Promise.resolve();
    if (this.#moveFinishedWaitersCount >= moveFinishedWaitersMax) return null;
    return new Promise((resolve) => {
      const waiting = this.#moveFinishedWaiters.get(key);
      if (waiting) waiting.push(resolve);
      else this.#moveFinishedWaiters.set(key, [resolve]);
      this.#moveFinishedWaitersCount += 1;
    });
  }

  #settleMoveFinishedWaiters(): void {
    for (const [key, waiting] of this.#moveFinishedWaiters) {
      if (this.#state.moves[key] !== undefined) continue;
      this.#moveFinishedWaiters.delete(key);
      this.#moveFinishedWaitersCount -= waiting.length;
      for (const resolve of waiting) resolve();
    }
  }

  createVolume(volume: VolumeDefinition): Promise<{ ok: boolean; message: string }> {
    return this.#admin((requestId) => ({ type: 'admin.createVolume', requestId, volume }));
  }

  /** Add a member, mark one draining, or (on the leaving server) remove it; see machines/node/node-membership.ts. */
  /** A refused change says why in `refusal` (machines/membership/membership.ts, MembershipRefusal), for a program to act on. */
  async changeMembership(change: MembershipChange): Promise<{ ok: boolean; message: string; refusal?: MembershipRefusal }> {
    const { ok, message, refusal } = await this.#admin((requestId) => ({ type: 'admin.changeMembership', requestId, change }));
    return refusal === undefined ? { ok, message } : { ok, message, refusal };
  }

  /** Sends this server's membership record to every other member; a member with a newer one answers with it. */
  announceMembership(): void {
    this.#input({ type: 'membership.announce' });
  }

  receive(from: ServerId, message: PeerMessage, data: Buffer | null): void {
    if (this.#stopped) return;
    const token = 'dataToken' in message && message.dataToken !== null ? receivedDataToken(from, message.dataToken) : null;
    if ('requestId' in message) this.peerRoundTrips.received(from, message, performance.now());
    if (message.type === 'request.forward') this.#copyPacer?.clientRequestArrived(performance.now());
    else if (message.type === 'flush.request') this.#lastFlushRequestAtMs = performance.now();
    const input: NodeInput = { type: 'peer.message', from, message };
    if (token && data) this.#dataOfInputs.set(input, { token, data });
    this.#input(input);
  }

  #admin(input: (requestId: string) => NodeInput): Promise<AdminReply> {
    const requestId = this.#newRequestId('admin-');
    return new Promise((resolve) => {
      if (this.#stopped) {
        resolve({ ok: false, message: 'server shutting down', flipPending: false });
        return;
      }
      this.#adminWaiters.set(requestId, resolve);
      this.#input(input(requestId));
    });
  }

  /**
   * Request ids name a request across the group (the owner of a page remembers
   * the forwarded writes it executed by sender and id, to run each once), so
   * they carry the incarnation: a restarted server must never reuse an id
   * from its previous life. The fault harness found exactly that: ids that
   * restarted at 1 made an owner drop new writes as duplicates of old ones.
   */
  #newRequestId(kind: string): string {
    this.#nextRequest += 1;
    return `${this.self}.${this.#options.incarnation}-${kind}${this.#nextRequest}`;
  }

  /**
   * Runs `body` with the inputs it causes held back, then steps them together
   * (the NBD front end wraps each socket read in it, so the requests of one
   * read cost one node step). Calls may nest; the outermost one steps.
   */
  batch<T>(body: () => T): T {
    this.#batchDepth += 1;
    try {
      return body();
    } finally {
      this.#batchDepth -= 1;
      if (this.#batchDepth === 0) this.#drain();
    }
  }

  #input(input: NodeInput): void {
    if (this.#stopped) return;
    this.#inputs.push(input);
    if (this.#batchDepth === 0) this.#drain();
  }

  /** Steps until the queue is empty; a failure is thrown once the rest is stepped, so one bad input holds up no other. */
  #drain(): void {
    if (this.#stepping) return;
    this.#stepping = true;
    let failure: { error: unknown } | null = null;
    try {
      while (this.#inputs.length > 0) {
        try {
          this.#stepQueued();
        } catch (error) {
          failure ??= { error };
        }
      }
    } finally {
      this.#stepping = false;
    }
    if (failure !== null) throw failure.error;
  }

  /**
   * Steps the queued inputs (up to the bound) and runs their effects. A node
   * assertion that fails in a batch would take the inputs before it down with
   * it, which a step of its own would not: so the batch's inputs go back to
   * the queue and are stepped one at a time, and the failure surfaces from
   * the input that causes it, as before batching. Likewise an effect that
   * throws does not stop the effects after it.
   */
  #stepQueued(): void {
    const single = this.#singleStepsLeft > 0;
    const inputs = this.#inputs.splice(0, single ? 1 : inputsPerStepMax);
    if (single) this.#singleStepsLeft -= 1;
    let stepped: [NodeState, NodeEffect[]];
    const effectStarts: number[] = [];
    try {
      stepped = nodeStepMany(this.#state, inputs, effectStarts);
    } catch (error) {
      if (inputs.length === 1) throw error;
      this.#inputs.unshift(...inputs);
      this.#singleStepsLeft = inputs.length;
      return;
    }
    this.#state = stepped[0];
    if (this.#moveFinishedWaitersCount > 0) this.#settleMoveFinishedWaiters();
    // Effects of several inputs run here, so one that throws must not cost the others theirs: every effect runs, then
    // the first failure surfaces.
    let failure: { error: unknown } | null = null;
    const effects = stepped[1];
    for (let input = 0; input < inputs.length; input += 1) {
      const carried = this.#dataOfInputs.get(inputs[input] as NodeInput);
      if (carried !== undefined) {
        this.#dataOfInputs.delete(inputs[input] as NodeInput);
        this.#hold(carried.token, carried.data);
      }
      const end = input + 1 < inputs.length ? (effectStarts[input + 1] as number) : effects.length;
      for (let index = effectStarts[input] as number; index < end; index += 1) {
        try {
          this.#execute(effects[index] as NodeEffect);
        } catch (error) {
          failure ??= { error };
        }
      }
    }
    if (failure !== null) throw failure.error;
  }

  #execute(effect: NodeEffect): void {
    switch (effect.type) {
      case 'peer.send': {
        // Likewise for a request forwarded to this server and answered with an error (a hop of a longer path).
        // Its forwards carry this server's entry id for it (node-state.ts, peerEntryId), not the asker's request id.
        if (effect.message.type === 'request.answer' && effect.message.outcome.status !== 'ok') this.#withdrawForwards(peerEntryId(effect.to, effect.message.requestId, effect.message.retry));
        if (effect.message.type === 'request.cancel' && this.#cancelUnsent(effect.to, effect.message)) return;
        // A part's cancel asked again replaces the one still queued for a link that is down (one per part there).
        if (effect.message.type === 'block.cancel') {
          const { requestId } = effect.message;
          this.#options.peers.withdrawQueued?.((message) => message.type === 'block.cancel' && message.requestId === requestId);
        }
        // A fence asked again (at every cancel it holds back: incarnation-fence.ts) replaces the one at the same hop
        // still queued for the same member's link while it is down: at most one queued per hop asked, as the member
        // confirms each hop on its own (a lower one may wait for work that only a higher one's confirmation frees).
        if (effect.message.type === 'fence.raise') {
          const { to } = effect;
          const { hopCountMin } = effect.message;
          this.#options.peers.withdrawQueued?.((message, queuedTo) => message.type === 'fence.raise' && queuedTo === to && message.hopCountMin === hopCountMin);
          this.#options.log(`incarnation fence: a cancel waits for ${to} to confirm it drops this server's earlier runs' writes (from hop ${hopCountMin})`);
        }
        if (effect.message.type === 'fence.confirmed') this.#options.log(`incarnation fence: confirmed to ${effect.to} (its run ${effect.message.incarnation}, from hop ${effect.message.hopCountMin})`);
        if ('requestId' in effect.message) {
          this.requestLatencies.sent(effect.message.requestId, effect.message.type);
          this.peerRoundTrips.sent(effect.to, effect.message, performance.now());
        }
        const token = 'dataToken' in effect.message ? effect.message.dataToken : null;
        const data = token ? this.#tokens.get(token)?.data ?? null : null;
        if (effect.message.type !== 'piece.copy' || this.#copyPacer === null || !data) {
          this.#options.peers.send(effect.to, effect.message, data);
          return;
        }
        const delayMs = this.#copyPacer.reserve(data.length);
        // A piece within its budget goes now: a zero-delay timer would still cost a turn of the event loop.
        if (delayMs === 0) {
          this.#options.peers.send(effect.to, effect.message, data);
          return;
        }
        const { to, message } = effect;
        setTimeout(() => { if (!this.#stopped) this.#options.peers.send(to, message, data); }, delayMs);
        return;
      }
      case 'client.reply': {
        this.requestLatencies.answered(effect.requestId, performance.now());
        // A request answered with an error must not run later: its forwards still queued for an owner that is down go.
        if (effect.outcome.status !== 'ok') this.#withdrawForwards(clientEntryId(effect.requestId));
        const waiter = this.#clientWaiters.get(effect.requestId);
        this.#clientWaiters.delete(effect.requestId);
        this.#tokens.delete(`client:${effect.requestId}`);
        waiter?.({ outcome: effect.outcome, data: effect.dataToken ? this.#tokens.get(effect.dataToken)?.data ?? null : null });
        return;
      }
      case 'admin.reply': {
        const waiter = this.#adminWaiters.get(effect.requestId);
        this.#adminWaiters.delete(effect.requestId);
        waiter?.({ ok: effect.ok, message: effect.message, flipPending: effect.flipPending === true, ...(effect.refusal ? { refusal: effect.refusal } : {}) });
        return;
      }
      case 'data.read': {
        const blockSizeBytes = this.#blockSizeBytes(effect.pageKey);
        if (this.#readNow(effect, blockSizeBytes)) return;
        this.#onPage(effect.pageKey, effect.completionId, async () => {
          this.#hold(effect.intoToken, await this.#options.pages.read(effect.pageKey, effect.offsetBlocks, effect.lengthBlocks, blockSizeBytes));
        });
        return;
      }
      case 'data.write': {
        const blockSizeBytes = this.#blockSizeBytes(effect.pageKey);
        const source = this.#tokens.get(effect.fromToken)?.data;
        const start = effect.tokenOffsetBlocks * blockSizeBytes;
        const lengthBytes = effect.lengthBlocks * blockSizeBytes;
        // The whole token (a client's 4 KiB write) needs no view of itself.
        const part = start === 0 && source?.length === lengthBytes ? source : source?.subarray(start, start + lengthBytes);
        if (!effect.durable && part && part.length === lengthBytes && this.#writeNow(effect, part, blockSizeBytes)) return;
        const write = async () => {
          if (!part || part.length !== effect.lengthBlocks * blockSizeBytes) throw new Error(`token ${effect.fromToken} holds no data for this write`);
          await this.#options.pages.write(effect.pageKey, effect.offsetBlocks, part, blockSizeBytes, false);
        };
        if (effect.durable) this.#onPageThenSync(effect.pageKey, effect.completionId, write);
        else this.#onPage(effect.pageKey, effect.completionId, write);
        return;
      }
      case 'data.sync':
        if (effect.pageKey) this.#afterPage(effect.pageKey, effect.completionId, () => this.#options.pages.sync(effect.pageKey));
        else this.#afterAllPages(effect.completionId, () => this.#options.pages.sync(null));
        return;
      case 'data.delete':
        if (effect.reason === 'abandoned') this.#options.log(`checkpoint ${pageKeyText(effect.pageKey)} partial copy of an abandoned move let go`);
        if (effect.reason === 'declaredLost') this.#options.log(`checkpoint ${pageKeyText(effect.pageKey)} declared lost (its only copy was on a server being forgotten): what this server held of it is deleted, and it is served empty from here once its record is durable`);
        this.#onPage(effect.pageKey, effect.completionId ?? null, () => this.#options.pages.delete(effect.pageKey));
        return;
      case 'token.release':
        this.#tokens.delete(effect.token);
        return;
      case 'meta.commit': {
        const { completionId, writes } = effect;
        let committed: Promise<void>;
        try {
          committed = this.#options.metadata.commit(writes);
        } catch (error) {
          committed = Promise.reject(error);
        }
        void committed.then(() => true, (error: unknown) => {
          this.#options.log(`metadata commit failed: ${(error as Error).message}`);
          const unknownOutcome = (error as { outcomeUnknown?: unknown }).outcomeUnknown === true;
          if (unknownOutcome && this.#options.onCommitOutcomeUnknown) {
            this.#options.onCommitOutcomeUnknown(error as Error);
            return null;
          }
          return false;
        }).then((ok) => {
          if (ok === null) return;
          if (ok) this.#logCheckpoints(writes);
          if (completionId) this.#input({ type: 'io.done', completionId, ok });
          // The store skipped it and goes on; the node decides whether it is worth another try.
          else if (!ok) this.#input({ type: 'meta.failed', writes });
        });
        return;
      }
      case 'timer.set':
        this.#timers.set(effect.timerId, effect.delayMs);
        return;
      case 'trace':
        this.#options.trace?.(effect);
        return;
      case 'membership.changed':
        this.#options.log(`membership epoch ${effect.membership.epoch}: ${effect.membership.members.map((member) => `${member.id}${member.draining ? ' (draining)' : ''}`).join(', ')}`);
        this.#options.onMembership?.(effect.membership);
        return;
      default:
        assertNever(effect, 'node effect');
    }
  }

  /** One line per durable move checkpoint: operators follow moves by it, and the crash tests time their kills by it. */
  #logCheckpoints(writes: readonly MetadataWrite[]): void {
    for (const write of writes) {
      if (write.kind !== 'move' && write.kind !== 'move.delete') continue;
      const key = pageKeyText(write.pageKey);
      if (write.kind === 'move' && write.checkpoint.abandoned === true) {
        this.#abandonedRecords.add(key);
        this.#options.log(`checkpoint ${key} move abandoned (${write.input.kind} move ${write.input.source}→${write.input.destination}, attempt ${write.checkpoint.attempt}): ${write.input.source} serves the page alone, ${write.input.destination} is told to let go of its copy`);
      } else if (write.kind === 'move') {
        this.#abandonedRecords.delete(key);
        this.#options.log(`checkpoint ${key} stage ${write.checkpoint.stage} attempt ${write.checkpoint.attempt} durable (${write.input.kind} move ${write.input.source}→${write.input.destination})`);
      }
      // An abandoned move's record goes once its destination has let go; a finished move's once its copy is released.
      if (write.kind === 'move.delete') {
        this.#options.log(`checkpoint ${key} ${this.#abandonedRecords.delete(key) ? 'abandoned move record removed (its destination let go of its copy)' : 'move finished'}`);
      }
    }
  }

  #blockSizeBytes(pageKey: PageKey): number {
    return ownValue(this.#state.volumes, pageKey.volume)?.blockSizeBytes ?? 512;
  }

  /**
   * Tries a read at once: only when no earlier operation on the page is
   * still queued (they run in effect order), and only if the page data says
   * it could do it without waiting. Its completion is then an input queued
   * now, stepped with the others of this turn (a 4 KiB request's completion
   * costs no promise and no extra turn). Returns false, having done nothing,
   * when the operation must be queued instead.
   */
  #readNow(effect: Extract<NodeEffect, { type: 'data.read' }>, blockSizeBytes: number): boolean {
    const { pages } = this.#options;
    if (!pages.readNow || (this.#pageQueues.size > 0 && this.#pageQueues.has(pageKeyText(effect.pageKey)))) return false;
    let ok = true;
    try {
      const data = pages.readNow(effect.pageKey, effect.offsetBlocks, effect.lengthBlocks, blockSizeBytes);
      if (data === null) return false;
      this.#hold(effect.intoToken, data);
    } catch (error) {
      ok = false;
      this.#options.log(`disk operation failed: ${(error as Error).message}`);
    }
    this.#input({ type: 'io.done', completionId: effect.completionId, ok });
    return true;
  }

  /** `#readNow` for a write that need not be durable (the two are spelt out, not one helper taking a callback: a closure per request costs more). */
  #writeNow(effect: Extract<NodeEffect, { type: 'data.write' }>, part: Buffer, blockSizeBytes: number): boolean {
    const { pages } = this.#options;
    if (!pages.writeNow || (this.#pageQueues.size > 0 && this.#pageQueues.has(pageKeyText(effect.pageKey)))) return false;
    let ok = true;
    try {
      if (!pages.writeNow(effect.pageKey, effect.offsetBlocks, part, blockSizeBytes)) return false;
    } catch (error) {
      ok = false;
      this.#options.log(`disk operation failed: ${(error as Error).message}`);
    }
    this.#input({ type: 'io.done', completionId: effect.completionId, ok });
    return true;
  }

  /** Runs a disk operation after the earlier ones on the same page, then reports its completion. */
  #onPage(pageKey: PageKey, completionId: string | null, operation: () => Promise<void>): void {
    const key = pageKeyText(pageKey);
    const previous = this.#pageQueues.get(key) ?? Promise.resolve();
    const next = previous.then(() => this.#complete(completionId, operation));
    this.#pageQueues.set(key, next);
    void next.then(() => {
      if (this.#pageQueues.get(key) === next) this.#pageQueues.delete(key);
    });
  }

  /**
   * A FUA write: the write takes its turn on the page, the sync that makes it
   * durable does not. The page's later operations start as soon as the bytes
   * are written, instead of waiting out an fdatasync (2-15 ms on this host)
   * behind it; the write is reported done only once the sync, which covers
   * it (see `#afterPage`), is. A failed write is reported without a sync.
   */
  #onPageThenSync(pageKey: PageKey, completionId: string, write: () => Promise<void>): void {
    const key = pageKeyText(pageKey);
    const previous = this.#pageQueues.get(key) ?? Promise.resolve();
    let written = true;
    const next = previous.then(async () => {
      try {
        await write();
      } catch (error) {
        written = false;
        this.#options.log(`disk operation failed: ${(error as Error).message}`);
      }
    });
    this.#pageQueues.set(key, next);
    void next.then(() => {
      if (this.#pageQueues.get(key) === next) this.#pageQueues.delete(key);
      if (!written) {
        this.#input({ type: 'io.done', completionId, ok: false });
        return;
      }
      void this.#complete(completionId, () => this.#options.pages.sync(pageKey));
    });
  }

  /**
   * A sync of one page waits for the operations issued on the page before it
   * (so it covers them) but does not hold up those issued after it: the page
   * store syncs whatever had completed when the sync began, and a later write
   * is covered by a later sync. A write queued behind a 4 MiB fdatasync would
   * otherwise wait the whole sync out (a destination syncs its page once per
   * piece it receives, while dual writes to that page keep coming).
   */
  #afterPage(pageKey: PageKey, completionId: string, operation: () => Promise<void>): void {
    const previous = this.#pageQueues.get(pageKeyText(pageKey)) ?? Promise.resolve();
    void previous.then(() => this.#complete(completionId, operation));
  }

  /** A sync of every page waits for every page operation issued before it. */
  #afterAllPages(completionId: string, operation: () => Promise<void>): void {
    const before = [...this.#pageQueues.values()];
    void Promise.all(before).then(() => this.#complete(completionId, operation));
  }

  async #complete(completionId: string | null, operation: () => Promise<void>): Promise<void> {
    let ok = true;
    try {
      await operation();
    } catch (error) {
      ok = false;
      this.#options.log(`disk operation failed: ${(error as Error).message}`);
    }
    if (completionId) this.#input({ type: 'io.done', completionId, ok });
  }

  /**
   * Withdraws the forwards of a request answered with an error that are still
   * queued for a peer that is down (peer-transport.ts, `withdrawQueued`): the
   * client was told the write failed, and it must not land when the link
   * comes back, over a write acknowledged since. A forward already handed to
   * a live connection can still run late (the owner paused, or a partition
   * TCP rides out): README, "Limits".
   */
  #withdrawForwards(requestId: string): void {
    const withdrawn = this.#options.peers.withdrawQueued?.((message) => message.type === 'request.forward' && message.requestId === requestId) ?? 0;
    if (withdrawn > 0) this.#options.log(`request ${requestId} failed: ${withdrawn} forward${withdrawn === 1 ? '' : 's'} of it still queued for a peer that is down withdrawn`);
  }

  /**
   * A write's forward timed out and the node asks its target to cancel that
   * try (request-routing.machine.ts, `cancelling`). If the forward is still
   * queued for a link that is down, it has never left this process: it is
   * withdrawn and the node told so (`forward.unsent`: it fails the write as a
   * target would that never received the try; not as a message from the
   * target, which would count as word from a peer that is down). Else
   * an earlier cancel of the same try still queued is withdrawn, so that a
   * target that stays down costs one queued cancel per request, and the
   * cancel is sent. True if it was answered here.
   */
  #cancelUnsent(to: ServerId, cancel: Extract<PeerMessage, { type: 'request.cancel' }>): boolean {
    let forwardWithdrawn = false;
    this.#options.peers.withdrawQueued?.((message) => {
      if (message.type !== 'request.forward' && message.type !== 'request.cancel') return false;
      if (message.requestId !== cancel.requestId || message.retry !== cancel.retry) return false;
      if (message.type === 'request.forward') forwardWithdrawn = true;
      return true;
    });
    if (!forwardWithdrawn) return false;
    this.#options.log(`request ${cancel.requestId}: its forward to ${to} timed out still queued (the link is down) and was withdrawn unsent`);
    this.#input({ type: 'forward.unsent', requestId: cancel.requestId, retry: cancel.retry });
    return true;
  }

  #hold(token: string, data: Buffer): void {
    this.#tokens.set(token, { data, heldSinceSweep: this.#sweepsDone });
  }

  #sweepTokens(sweepsPerLifetime: number): void {
    this.#sweepsDone += 1;
    // Taken at sweep count n, a token has been held longer than a lifetime once sweepsPerLifetime + 1 more sweeps began.
    for (const [token, held] of this.#tokens) if (this.#sweepsDone - held.heldSinceSweep > sweepsPerLifetime) this.#tokens.delete(token);
  }
}
