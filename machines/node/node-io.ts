import type { RequestOutcome } from '../effects.js';
import type { PageKey, ServerId } from '../identifiers.js';
import type { MoveCheckpoint, MoveInput, MoveKind } from '../migration/checkpoint.js';
import type { ReplicaRecord } from '../replica/replica-record.js';
import type { BlockOperation, PeerMessage } from './messages.js';
import type { VolumeDefinition } from './volume.js';
import type { LostClaim } from './node-state.js';
import type { Membership, MembershipChange, MembershipRefusal } from '../membership/membership.js';

/**
 * The inputs a server node accepts and the effects it returns. A runtime (the
 * TCP server or the simulator) turns sockets, disks and clocks into inputs
 * and carries out effects; the node decides everything else.
 */
export interface Route {
  readonly owner: ServerId;
  readonly epoch: number;
}

/** A node's durable records, as its metadata store holds them. */
export interface DurableRecords {
  readonly volumes: readonly VolumeDefinition[];
  readonly routes: ReadonlyArray<{ pageKey: PageKey; route: Route }>;
  readonly replicas: ReadonlyArray<{ pageKey: PageKey; record: ReplicaRecord }>;
  readonly moves: ReadonlyArray<{ pageKey: PageKey; input: MoveInput; checkpoint: MoveCheckpoint }>;
  /** The newest membership record this server persisted (or its runtime's bootstrap record); absent: the configured group. */
  readonly membership?: Membership | null;
  /**
   * How many restarts of this server may have lost writes it had applied but not synced (absent: 0). The runtime
   * keeps it durably and raises it, before the node starts, whenever the previous run may have ended in such a loss:
   * a power cut or an operating-system crash, not a process kill (the page cache keeps a killed process's writes).
   * FLUSH compares it across a write's acknowledgement and its own sync (see loss-watch.ts).
   */
  readonly lossEpoch?: number;
  /**
   * Whether every write any earlier run of this server acknowledged is known durable wherever it landed (absent:
   * false). The runtime says so only when the previous run stopped cleanly after a FLUSH of every volume succeeded
   * with `earlierRunsSynced` set (impl/runtime/stop-barrier.ts): FLUSH may then excuse a silent member from the
   * first barrier of this run, instead of failing while a member is down (flush-barrier.ts).
   */
  readonly earlierRunsSynced?: boolean;
  /**
   * Whether this server may have run before on its data (absent: true). A first incarnation has no earlier one whose
   * forwards could still be on their way, so it needs no fence before it answers a cancel (incarnation-fence.ts).
   */
  readonly earlierIncarnations?: boolean;
  /** The claim to declare pages lost this server accepted or made last (lost-pages.ts); absent: none. */
  readonly lostClaim?: LostClaim | null;
}

export type MetadataWrite =
  | { readonly kind: 'route'; readonly pageKey: PageKey; readonly route: Route }
  | { readonly kind: 'replica'; readonly pageKey: PageKey; readonly record: ReplicaRecord }
  | { readonly kind: 'move'; readonly pageKey: PageKey; readonly input: MoveInput; readonly checkpoint: MoveCheckpoint }
  | { readonly kind: 'move.delete'; readonly pageKey: PageKey }
  | { readonly kind: 'volume'; readonly volume: VolumeDefinition }
  | { readonly kind: 'membership'; readonly membership: Membership }
  | { readonly kind: 'lostClaim'; readonly claim: LostClaim };

export type NodeInput =
  | { type: 'node.start'; durable: DurableRecords }
  /** `requestId` must be unique across every incarnation of this server: owners run a forwarded write once per sender and id. */
  | { type: 'client.request'; requestId: string; connectionId: string; operation: BlockOperation }
  /** NBD FLUSH on a connection to `volume`: answered `ok` only if every write acknowledged before it is durable. */
  | { type: 'client.flush'; requestId: string; connectionId: string; volume: string }
  /** A client connection closed: the node forgets it (see loss-watch.ts). */
  | { type: 'client.disconnected'; connectionId: string }
  | { type: 'peer.message'; from: ServerId; message: PeerMessage }
  /**
   * The runtime withdrew try `retry` of this server's forward `requestId` before it left the process (its link was
   * down): the target never had it, so its cancel is settled here (request-routing.machine.ts, `cancelling`).
   */
  | { type: 'forward.unsent'; requestId: string; retry: number }
  | { type: 'io.done'; completionId: string; ok: boolean }
  /** A `meta.commit` nobody waited for (a null completion id) failed: the store skipped it and went on. */
  | { type: 'meta.failed'; writes: readonly MetadataWrite[] }
  | { type: 'timer.fired'; timerId: string }
  /** `pieceCount`: the move's pieces (Table 2 rows); absent means the volume's piecesPerPage (1 for a unit move). */
  | { type: 'admin.move'; requestId: string; pageKey: PageKey; to: ServerId; kind: MoveKind; pieceCount?: number }
  /** Give up the page's move, asked of its source: only while the source alone holds the page's data (move-setup.ts, "Abandoning"). */
  | { type: 'admin.abandonMove'; requestId: string; pageKey: PageKey }
  | { type: 'admin.createVolume'; requestId: string; volume: VolumeDefinition }
  /** Add a server, mark one draining, or (asked of the leaving server itself) remove it. */
  | { type: 'admin.changeMembership'; requestId: string; change: MembershipChange }
  /** The runtime's periodic nudge: send our membership record to every other member. */
  | { type: 'membership.announce' };

export type NodeEffect =
  | { type: 'peer.send'; to: ServerId; message: PeerMessage }
  | { type: 'client.reply'; requestId: string; outcome: RequestOutcome; dataToken: string | null }
  /**
   * `flipPending`: a move refused only because this server has not yet learnt its last move's flip (worth asking again
   * soon). `refusal`: why a membership change was refused, for a program (membership.ts, MembershipRefusal).
   */
  | { type: 'admin.reply'; requestId: string; ok: boolean; message: string; flipPending?: true; refusal?: MembershipRefusal }
  /** Read blocks of this server's copy of a page into the token's buffer. */
  | { type: 'data.read'; completionId: string; pageKey: PageKey; offsetBlocks: number; lengthBlocks: number; intoToken: string }
  /** Write blocks from the token's buffer (starting `tokenOffsetBlocks` into it); `durable` = FUA. */
  | { type: 'data.write'; completionId: string; pageKey: PageKey; offsetBlocks: number; lengthBlocks: number; fromToken: string; tokenOffsetBlocks: number; durable: boolean }
  /** Make every write to the page (or, with null, to any page) durable. */
  | { type: 'data.sync'; completionId: string; pageKey: PageKey | null }
  /**
   * Delete this server's copy of a page: a move's source after its flip (`moved`), a destination whose move was
   * abandoned, or a page this server is about to serve empty (`declaredLost`, lost-pages.ts). With a completion id,
   * answered `io.done` once the deletion is durable; without, nobody waits.
   */
  | { type: 'data.delete'; pageKey: PageKey; reason: 'moved' | 'abandoned' | 'declaredLost'; completionId?: string }
  /** Forget the bytes held under a token. */
  | { type: 'token.release'; token: string }
  /** Apply the writes atomically and durably, then answer `io.done` (a null id: nobody waits, and a crash may lose it). */
  | { type: 'meta.commit'; completionId: string | null; writes: readonly MetadataWrite[] }
  | { type: 'timer.set'; timerId: string; delayMs: number }
  /** The node adopted a membership record: the runtime connects to its members and tells its balancer. */
  | { type: 'membership.changed'; membership: Membership }
  /** One machine transition, for the structured trace that conformance tests replay. */
  | { type: 'trace'; machine: string; instance: string; event: string; from: string; to: string };
