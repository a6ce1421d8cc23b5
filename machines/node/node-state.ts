import type { VolumeReservation } from './volume-reservation.js';
import type { SnapshotFrom } from 'xstate';
import type { PageKey, ServerId } from '../identifiers.js';
import { pageKeyText } from '../identifiers.js';
import { assert } from '../identifiers.js';
import type { MoveCheckpoint, MoveKind } from '../migration/checkpoint.js';
import type { ReplicaRecord } from '../replica/replica-record.js';
import type { MoveMachine } from '../migration/move-machines.js';
import type { MoveEvent } from '../migration/move-setup.js';
import type { replicaMachine } from '../replica/replica.machine.js';
import type { requestRoutingMachine } from '../routing/request-routing.machine.js';
import type { BlockOperation, PeerMessage } from './messages.js';
import type { BlockVersions } from './block-versions.js';
import type { NodeConfig } from './node-config.js';
import type { LossWatch, WriteHolder } from './loss-watch.js';
import type { Takeover } from './dead-source-takeover.js';
import type { RememberedOrigins } from './remembered-origins.js';
import { noOriginsRemembered } from './remembered-origins.js';
import type { Route } from './node-io.js';
import type { VolumeDefinition } from './volume.js';
import { PageMap } from './page-map.js';
import type { Membership } from '../membership/membership.js';
import { bootstrapMembership } from '../membership/membership.js';
import type { IncarnationFence } from './incarnation-fence.js';
import { noIncarnationFence } from './incarnation-fence.js';

/**
 * Everything one server node knows. Records are keyed by text (`volume/page`)
 * and treated as immutable values: a step copies the maps it changes and
 * replaces entries rather than editing them, so the simulator can keep every
 * state it has seen. The records with an entry per page of a volume (`routes`,
 * one per page of every volume; `replicas`, one per copy held) are persistent
 * `PageMap`s (page-map.ts), whose edits share all but a small chunk with the
 * old map: as plain objects, every step that changed one route copied them all
 * (30 ms for a 65,536-page volume). Other records keyed by page are plain
 * objects, small because they hold what is in flight; records keyed by a
 * request or completion id are `Map`s, because their keys are new on every
 * request and V8 copies objects with ever-new keys slowly (~1 µs per entry),
 * while a `Map` copies in a fraction of that (so is `localWritesInFlight`,
 * keyed by page but with entries that come and go with each write). A record
 * a client request changes holds only what is in flight: one that grew with
 * the pages ever written cost every write a copy of it (a counter per page
 * did, until 4 GiB of randomly written pages made a write 35 times dearer).
 */
export type MoveSnapshot = SnapshotFrom<MoveMachine>;
export type ReplicaSnapshot = SnapshotFrom<typeof replicaMachine>;
export type RequestSnapshot = SnapshotFrom<typeof requestRoutingMachine>;

export type ReplyTo =
  | { readonly kind: 'client'; readonly requestId: string }
  | { readonly kind: 'peer'; readonly server: ServerId; readonly requestId: string; readonly retry: number };

/**
 * The id of the entry a client request gets at the server it came to: the
 * messages sent on its behalf (forwards, parts to a move's destination)
 * carry it as their `requestId`.
 */
export function clientEntryId(requestId: string): string {
  return `c:${requestId}`;
}

/**
 * The id of the entry a request forwarded by `from` (its `requestId` and
 * `retry`) gets here: the messages this server sends on its behalf carry it.
 */
export function peerEntryId(from: ServerId, requestId: string, retry: number): string {
  return `p:${from}:${requestId}:${retry}`;
}

/** The key under which `forwardedTriesEnded` remembers that `from` cancelled its part `requestId` of write sequence `sequence`. */
export function cancelledPartKey(from: ServerId, requestId: string, sequence: number): string {
  return `cancel-part|${from}|${requestId}|${sequence}`;
}

/** How a forwarded try or part ended without running (`forwardedTriesEnded`): cancelled by its sender, or answered (refused, an error, stale). */
export type TryEnding = 'cancelled' | 'answered';

/** The key under which `forwardedTriesEnded` remembers that `from` cancelled try `retry` of its request `requestId`. */
export function cancelledTryKey(from: ServerId, requestId: string, retry: number): string {
  return `cancel|${from}|${requestId}|${retry}`;
}

export interface RequestEntry {
  readonly id: string;
  readonly snapshot: RequestSnapshot;
  readonly operation: BlockOperation;
  readonly replyTo: ReplyTo;
  /** The write payload, held by the runtime. */
  readonly writeToken: string | null;
  /** Where the data of a successful read ends up. */
  readonly readToken: string | null;
  /** A write served or answered: the servers that applied it without making it durable, with their loss epochs. */
  readonly holders: readonly WriteHolder[];
  /** A forwarded request: its sender's incarnation (incarnation-fence.ts); null for a client's. */
  readonly senderIncarnation: number | null;
}

/** A request being served from this server's copy, possibly across both sides of a move. */
export interface ServeEntry {
  readonly id: string;
  readonly kind: 'read' | 'write';
  /** Servers whose part has not completed yet. */
  readonly remaining: readonly ServerId[];
  readonly sequence: number;
  readonly retries: number;
  /** A write not durable at once (no FUA): the servers whose part completed, with their loss epochs. */
  readonly holders: readonly WriteHolder[];
  /** A write whose part timed out: its cancel is asked until the destination answers (node.ts, `#retryServe`). */
  readonly cancelling?: true;
}

export interface MoveEntry {
  readonly kind: MoveKind;
  readonly snapshot: MoveSnapshot;
  /**
   * Source side, while a piece copied in several chunks is in transit: the
   * chunks of that attempt's piece the destination has reported durable (by
   * first block). The move machine hears `piece.copied` once they cover the
   * piece. Absent otherwise, and always for a piece copied in one chunk.
   */
  readonly chunksStored?: ChunksStored;
  /** Source side: the attempt whose destination said, committing, that it serves the page itself until it learns the flip. */
  readonly destinationServesAttempt?: number;
  /** Source side: the administrator's request to abandon the move, answered once the abandoned record is durable. */
  readonly abandonRequestId?: string;
  /**
   * Source side: a destination failure that came while a stage record was being written, handed to the machine once
   * that write's outcome is known (node.ts, `#stepMove`).
   */
  readonly failureDeferred?: Extract<MoveEvent, { type: 'destination.failed' }>;
}

export interface ChunksStored {
  readonly attempt: number;
  readonly piece: number;
  readonly offsetsBlocks: readonly number[];
  readonly storedBlocks: number;
}

/**
 * A destination's claim, on the block versions of a receiving page, for data it is writing (block-versions.ts): the
 * blocks it will overwrite with data of write sequence `sequence`. Counted while the write is under way
 * (node.ts, #versionsClaimed), confirmed into `blockVersions` once it is done; a failed write leaves no mark.
 */
export interface VersionClaim {
  readonly pageText: string;
  /** The move whose versions it is on (the attempt joined), or null: the versions of no joined attempt (a restart's). */
  readonly source: ServerId | null;
  readonly epoch: number | null;
  readonly sequence: number;
  readonly runs: ReadonlyArray<readonly [number, number]>;
}

export type Continuation =
  | { readonly kind: 'move.persisted'; readonly pageText: string; readonly stage: number; readonly attempt: number }
  | { readonly kind: 'serve.localDone'; readonly serveId: string; readonly versionClaim?: VersionClaim }
  | { readonly kind: 'copy.read'; readonly pageText: string; readonly attempt: number; readonly piece: number; readonly sequence: number; readonly token: string; readonly offsetBlocks: number; readonly lengthBlocks: number }
  | { readonly kind: 'copy.stored'; readonly pageText: string; readonly from: ServerId; readonly attempt: number; readonly epoch: number; readonly piece: number; readonly offsetBlocks: number; readonly lengthBlocks: number; readonly waitingFor: number; readonly versionClaim: VersionClaim | null }
  | { readonly kind: 'peer.written'; readonly pageText: string; readonly from: ServerId; readonly requestId: string; readonly waitingFor: number; readonly senderIncarnation: number; readonly versionClaim: VersionClaim | null }
  /** A destination's receiving record being made durable: the acknowledgements of move data held until then go out (see AttemptJoined). */
  | { readonly kind: 'receiving.persisted'; readonly pageText: string; readonly attempt: number; readonly epoch: number }
  /** The definition of a volume the administrator created here: answered once it is durable. */
  | { readonly kind: 'volume.persisted'; readonly volumeName: string; readonly requestId: string }
  | { readonly kind: 'peer.read'; readonly from: ServerId; readonly requestId: string; readonly token: string }
  | { readonly kind: 'commit.synced'; readonly pageText: string; readonly from: ServerId; readonly attempt: number; readonly epoch: number }
  | { readonly kind: 'commit.persisted'; readonly pageText: string; readonly from: ServerId; readonly attempt: number; readonly epoch: number }
  | { readonly kind: 'handover.synced'; readonly pageText: string; readonly from: ServerId; readonly attempt: number; readonly epoch: number; readonly piece: number }
  | { readonly kind: 'flush.synced'; readonly flushId: string; readonly from: ServerId | null }
  | { readonly kind: 'leave.confirm'; readonly to: ServerId; readonly epoch: number }
  /** A forget check's record being made durable here: then the asker `to` is told whether anything here still names one of `servers`. */
  | { readonly kind: 'forget.confirm'; readonly to: ServerId; readonly servers: readonly ServerId[]; readonly epoch: number; readonly takeovers: readonly Takeover[] }
  /** Pages of `servers` (being forgotten) this server takes over as their committed destination, their routes being made durable (dead-source-takeover.ts). */
  | { readonly kind: 'takeover.durable'; readonly servers: readonly ServerId[]; readonly takeovers: readonly Takeover[] }
  /** This server's claim to declare the pages of `claim.servers` lost being made durable: then its first round of asks goes out (lost-pages.ts). */
  | { readonly kind: 'lost.claimed'; readonly claim: LostClaim; readonly epoch: number }
  /** A claim accepted here being made durable (with pages taken over meanwhile): then the claimant hears the report on `pages`. */
  | { readonly kind: 'lost.reported'; readonly to: ServerId; readonly claim: LostClaim; readonly epoch: number; readonly round: string; readonly pages: readonly PageKey[]; readonly takeovers: readonly Takeover[] }
  /** A page declared lost: its data file here being deleted, before its valid record and route are committed. */
  | { readonly kind: 'lost.deleted'; readonly declaration: LostDeclaration }
  /** A page declared lost: its valid record and route being made durable, before it is served and its route pushed. */
  | { readonly kind: 'lost.declared'; readonly declaration: LostDeclaration }
  /** A destination's partial copy of an abandoned move being recorded invalid: then its data goes and the source is told. */
  | { readonly kind: 'abandon.released'; readonly pageText: string; readonly to: ServerId; readonly attempt: number; readonly epoch: number; readonly receiving: ReplicaRecord; readonly invalid: ReplicaRecord }
  /** A membership record being persisted: what to do once it is durable (see node-membership.ts). */
  | { readonly kind: 'membership.persisted'; readonly membership: Membership; readonly previousMembers: readonly ServerId[]; readonly change: MembershipChangeMade | null };

/** A change made here (on an administrator's request; or a merge of two records, null): whom to tell and whom to answer once the new record is durable. */
export interface MembershipChangeMade {
  readonly requestId: string | null;
  readonly told: readonly ServerId[];
  readonly removal: boolean;
}

export type DeferredHandover =
  | { readonly kind: 'commit'; readonly destination: ServerId; readonly attempt: number; readonly epoch: number; readonly freshCopy: boolean }
  /** The abandoned record, made durable once no part is outstanding at the destination (see #fenced). */
  | { readonly kind: 'abandon'; readonly destination: ServerId; readonly attempt: number; readonly checkpoint: MoveCheckpoint }
  /**
   * `confirming`: the parts have drained and the destination was asked to confirm (piece.handover); the checkpoint
   * waits for its answer. `sequenceDrained`: the newest write sequence handed out when the hand-over began; the drain
   * waits for the parts of writes up to it only (writes after it still reach both sides, see `#fenced`).
   */
  | { readonly kind: 'finishPiece'; readonly destination: ServerId; readonly attempt: number; readonly stage: number; readonly piece: number; readonly confirming: boolean; readonly sequenceDrained: number };

/**
 * A destination's in-memory account of the move attempt it follows for a
 * page (made in this incarnation, so its block versions cover every part of
 * the attempt it applied). Kept after the commit until this server learns the
 * flip (a route naming it), so it serves the page at once meanwhile.
 */
export interface AttemptJoined {
  /** The move's source and new epoch: attempts of one move share them, and the write sequences compared are the source's. */
  readonly source: ServerId;
  readonly epoch: number;
  readonly attempt: number;
  readonly copyTaken: boolean;
  /** Whether the receiving record of this attempt is durable; until then acknowledgements of move data wait in `acksHeld`. */
  readonly recordDurable: boolean;
  readonly acksHeld: ReadonlyArray<{ readonly to: ServerId; readonly message: PeerMessage }>;
  /** Blocks [0, handedOverBlocks) lie in pieces the source has durably handed over (piece.copy says so): served here. */
  readonly handedOverBlocks: number;
  /** The epoch this server committed the attempt at (its copy valid), or null while it receives. */
  readonly committedEpoch: number | null;
  /**
   * The newest source write sequence this server has seen for the page in
   * this incarnation, in any attempt of the move (parts, and the
   * `sourceSequence` of copies and commits): a source may send an older
   * attempt's write again under a newer attempt, so this is carried from
   * attempt to attempt of one move (same source and epoch), never to another
   * move, whose source numbers its writes on its own.
   */
  readonly sourceSequenceSeen: number;
}

export interface FlushEntry {
  readonly requestId: string;
  readonly connectionId: string;
  readonly volume: string;
  readonly remaining: readonly ServerId[];
  readonly retries: number;
  /** The volume's acknowledgements this FLUSH covers (those made before it started; see loss-watch.ts). */
  readonly coveredAcks: number;
  /** The volume's losses found when it started: one found since may have taken a write it covers. */
  readonly lossesFoundAtStart: number;
  /** Each member's loss epoch as it answered its sync. */
  readonly answeredEpochs: Readonly<Record<ServerId, number>>;
  /** The servers that may not be excused: those holding a write it covers when it began, and any whose sync failed (flush-barrier.ts). */
  readonly holders: readonly ServerId[];
  /** Whether a member that holds none of them may be excused (`earlierRunsSynced` when it began). */
  readonly excusesAllowed: boolean;
}

/** A drained server's request to leave: which remaining members confirmed, at membership epoch `epoch`, that they run no move toward it. */
export interface LeaveCheck {
  readonly epoch: number;
  readonly confirmed: readonly ServerId[];
  readonly retries: number;
}

/**
 * An administrator's request to forget `servers` (member-forget.ts; sorted): which other members confirmed, at
 * membership epoch `epoch`, that nothing they know names them, and what the others that answered found instead.
 */
export interface ForgetCheck {
  readonly servers: readonly ServerId[];
  readonly epoch: number;
  readonly confirmed: readonly ServerId[];
  /** Members that answered not clear, with what they found (at most one entry per member). */
  readonly refusals: Readonly<Record<ServerId, string>>;
  readonly retries: number;
}

/** A member's acceptance (or, at the claimant, its own claim) that `claimant` alone may declare the pages of `servers` lost (lost-pages.ts); durable. */
export interface LostClaim {
  readonly servers: readonly ServerId[];
  readonly claimant: ServerId;
  /** The membership epoch it was made at: servers added (again) after it are not its servers (lost-pages.ts, `claimStands`). */
  readonly epoch: number;
}

/** What a member knows of a page a claimant asks about: its route and its own copy's record. */
export interface LostPageReport {
  readonly pageKey: PageKey;
  readonly route: Route | null;
  readonly copy: ReplicaRecord | null;
}

/** A page this server declared lost, and the route that gives it to this server. */
export interface LostDeclaration {
  readonly pageKey: PageKey;
  readonly route: Route;
  /** The servers whose pages the claim was about (told nothing). */
  readonly servers: readonly ServerId[];
}

/** The claimant's round of asks (lost-pages.ts): the pages asked about at membership epoch `epoch`, and each member's report or refusal. */
export interface LostCheck {
  readonly servers: readonly ServerId[];
  readonly epoch: number;
  /** Names the round (this incarnation, a fresh id): answers carry it. */
  readonly round: string;
  /** Page texts, sorted. */
  readonly pages: readonly string[];
  readonly reports: Readonly<Record<ServerId, readonly LostPageReport[]>>;
  /** Members that refused, why, and the smaller claimant whose claim they hold (to ask instead), if any. */
  readonly refusals: Readonly<Record<ServerId, { readonly reason: string; readonly deferTo: ServerId | null }>>;
  readonly retries: number;
}

export interface NodeState {
  readonly config: NodeConfig;
  readonly started: boolean;
  readonly volumes: Readonly<Record<string, VolumeDefinition>>;
  /** Volume names reserved for a creation in progress, here or on another member (volume-reservation.ts); volatile. */
  readonly volumeReservations: Readonly<Record<string, VolumeReservation>>;
  readonly routes: PageMap<Route>;
  readonly replicas: PageMap<ReplicaSnapshot>;
  readonly moves: Readonly<Record<string, MoveEntry>>;
  readonly requests: ReadonlyMap<string, RequestEntry>;
  readonly serves: ReadonlyMap<string, ServeEntry>;
  readonly continuations: ReadonlyMap<string, Continuation>;
  readonly flushes: Readonly<Record<string, FlushEntry>>;
  /**
   * The newest write sequence handed out by this incarnation, to a write of any page (it starts at the incarnation's
   * base). One counter for all pages keeps every page's sequences increasing, which is all a move needs; a counter per
   * page was a record that grew with every page ever written and was copied on every write.
   */
  readonly lastWriteSequence: number;
  /**
   * Source side: write sequences applied to the local copy but not yet completed, per page; a page has an entry only
   * while it has such writes, so the record is bounded by the requests in flight.
   */
  readonly localWritesInFlight: ReadonlyMap<string, readonly number[]>;
  /** Destination side: the newest write sequence applied to each block of a receiving page. */
  readonly blockVersions: Readonly<Record<string, BlockVersions>>;
  /**
   * Forwarded writes this server executed and answered (`sender|requestId`), each with the holders its answer named (a
   * duplicate is answered with them again); newest last, at most `forwardedWritesRememberedMax`.
   */
  readonly forwardedWritesDone: RememberedOrigins<readonly WriteHolder[]>;
  /**
   * Tries of forwarded writes and parts that ended here without being run by this server since: cancelled by their
   * sender, refused, or answered with an error or stale (`cancelledTryKey`, `cancelledPartKey`; an error answer may
   * follow a write that took effect in part, which is allowed); such a try that arrives late is refused. Newest last,
   * at most `forwardedTriesEndedRememberedMax`. Kept apart from the writes done, which come some thousands a second
   * under load and would push out an ended try within a fraction of a second, while tries end only at a time-out or
   * a stale route.
   */
  readonly forwardedTriesEnded: RememberedOrigins<TryEnding>;
  /** Source side: requests held back while their page's move commits and flips, per page (bounded by requestsInFlightMax). */
  readonly parked: Readonly<Record<string, readonly string[]>>;
  /**
   * Source side: a hand-over to the destination waiting until every part already sent there has been answered — the
   * commit request, or (Table 2) the checkpoint that hands a finished piece's reads to the destination.
   */
  readonly handoversDeferred: Readonly<Record<string, DeferredHandover>>;
  /**
   * Destination side: the move attempt of each page this incarnation itself switched to (by the attempt's first
   * message here), and whether it has since taken that attempt's piece copy. A unit move commits only an attempt whose
   * copy was taken here in this incarnation: a restart may have lost writes the source served (see unit-move.machine.ts).
   */
  readonly attemptsJoined: Readonly<Record<string, AttemptJoined>>;
  /** Who is in the group (machines/membership): starts as the configured group at epoch 0, then follows the newest record learned. */
  readonly membership: Membership;
  /** This server's leave check while it is drained and asks to leave; null otherwise (reset whenever the record changes). */
  readonly leaveCheck: LeaveCheck | null;
  /** The forget check this server runs for the administrator; null otherwise (reset whenever the record changes). */
  readonly forgetCheck: ForgetCheck | null;
  /** The claim to declare pages lost this server accepted or made (lost-pages.ts); durable, null if none. */
  readonly lostClaim: LostClaim | null;
  /** This server's round of asks as a claimant; null otherwise (reset whenever the record changes). */
  readonly lostCheck: LostCheck | null;
  /**
   * Whether the routing table may name a server that is no longer a member: set at start and when a member departs,
   * cleared once a look finds none (node-membership.ts, `askAboutRoutesNamingNonMembers`), so that announcements do
   * not scan every route every time (42 ms per announcement at 262,144 pages).
   */
  readonly nonMemberRoutesMayRemain: boolean;
  /** Names effects and tokens uniquely within this incarnation. */
  readonly nextId: number;
  readonly incarnation: number;
  /** Raised by the runtime on every restart that may have lost applied-but-unsynced writes (see loss-watch.ts). */
  readonly lossEpoch: number;
  /** Per volume: the holders of writes acknowledged to clients here that no FLUSH has covered yet, and the connections. */
  readonly lossWatches: Readonly<Record<string, LossWatch>>;
  /**
   * Servers that left the group: the loss epoch each reported when it asked to leave, or, for one this server confirmed
   * a forget of without such an epoch, `unknownDepartedLossEpoch` (member-forget.ts). At most `departedServersRememberedMax`.
   */
  readonly departedLossEpochs: Readonly<Record<ServerId, number>>;
  /**
   * Whether a FLUSH barrier in which every member synced has completed since this server started. Until one has, the
   * writes its earlier runs acknowledged may be held unsynced by any member (their holders went with the loss
   * watches), so no member is excused from a barrier (flush-barrier.ts). Set at start when the previous run stopped
   * cleanly with every volume flushed (DurableRecords.earlierRunsSynced); otherwise volatile.
   */
  readonly earlierRunsSynced: boolean;
  /**
   * Members excused from FLUSH barriers: each failed to answer one within a retry period while holding none of the
   * writes it covered, and has sent nothing since (any message from it ends its excuse). Sorted. Volatile.
   */
  readonly flushExcused: readonly ServerId[];
  /** This incarnation's fence, and the fences of restarted peers (incarnation-fence.ts). Volatile. */
  readonly incarnationFence: IncarnationFence;
}

/**
 * Write sequences are volatile, so each incarnation numbers its writes above
 * every earlier incarnation's: a destination that kept versions from before
 * the source's restart must still take the source's newer writes.
 */
export function writeSequenceBase(incarnation: number): number {
  assert(Number.isInteger(incarnation) && incarnation >= 0 && incarnation < incarnationsMax, 'incarnation fits the write sequence space');
  return incarnation * writeSequencesPerIncarnation;
}

/**
 * The write sequence space, within JavaScript's exact integers (2^53): 2^16 incarnations (restarts) of 2^36 writes
 * each. One counter serves every page of a server, so an incarnation's range is a budget of writes in all: 2^36 is
 * about 8 days of 100k writes per second (a counter per page had 2^32 per page; an assertion stops a server that
 * runs out rather than let its writes be numbered below an earlier incarnation's).
 */
export const writeSequencesPerIncarnation = 2 ** 36;
export const incarnationsMax = 2 ** 16;

export function emptyNodeState(config: NodeConfig, incarnation: number): NodeState {
  return {
    config, started: false, volumes: {}, volumeReservations: {}, routes: PageMap.empty(), replicas: PageMap.empty(), moves: {}, requests: new Map(), serves: new Map(), continuations: new Map(),
    flushes: {}, lastWriteSequence: writeSequenceBase(incarnation), localWritesInFlight: new Map(), blockVersions: {}, forwardedWritesDone: noOriginsRemembered(), forwardedTriesEnded: noOriginsRemembered(), parked: {}, handoversDeferred: {}, attemptsJoined: {},
    membership: bootstrapMembership(config.group.map((id) => ({ id, peer: null, admin: null, capacityWeight: 1, draining: false }))), leaveCheck: null, forgetCheck: null, lostClaim: null, lostCheck: null, nonMemberRoutesMayRemain: true, nextId: 0, incarnation,
    lossEpoch: 0, lossWatches: {}, departedLossEpochs: {}, earlierRunsSynced: false, flushExcused: [], incarnationFence: noIncarnationFence,
  };
}

/** Whether this server is declaring the page lost (its data being deleted, or its valid record and route committed: lost-pages.ts). */
export function isDeclarationUnderWay(continuations: NodeState['continuations'], pageText: string): boolean {
  for (const continuation of continuations.values()) {
    if ((continuation.kind === 'lost.deleted' || continuation.kind === 'lost.declared') && pageKeyText(continuation.declaration.pageKey) === pageText) return true;
  }
  return false;
}

/** Whether the destination side of a commit of the page is under way (its sync or its valid record). */
export function isCommitUnderWay(continuations: NodeState['continuations'], pageText: string): boolean {
  for (const continuation of continuations.values()) {
    if ((continuation.kind === 'commit.synced' || continuation.kind === 'commit.persisted') && continuation.pageText === pageText) return true;
  }
  return false;
}
