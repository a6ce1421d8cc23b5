import type { RequestOutcome } from '../effects.js';
import type { PageKey, ServerId } from '../identifiers.js';
import type { VolumeDefinition } from './volume.js';
import type { Membership } from '../membership/membership.js';
import type { WriteHolder } from './loss-watch.js';
import type { LostPageReport } from './node-state.js';

/**
 * What servers say to each other. Bytes never appear here: a message that
 * carries data names a `dataToken`, and the runtime attaches the bytes it
 * holds under that token when it sends (and files them under the same token
 * when it receives). The simulator does the same with small integers.
 */
export interface BlockOperation {
  readonly kind: 'read' | 'write';
  readonly pageKey: PageKey;
  readonly offsetBlocks: number;
  readonly lengthBlocks: number;
  /** Force unit access: the write is durable on every server that holds it before it is acknowledged. */
  readonly fua: boolean;
}

export type PeerMessage =
  /**
   * FIG. 7: a request forwarded to the server believed to own its page. `senderIncarnation`: the forwarder's, so that
   * a receiver drops the forwards of an incarnation behind a fence its restarted sender raised (incarnation-fence.ts).
   */
  | { type: 'request.forward'; requestId: string; hopCount: number; retry: number; operation: BlockOperation; dataToken: string | null; senderIncarnation: number }
  /**
   * Cancel try `retry` of a forwarded write that timed out, unless it ran: answered by `request.answer` (node.ts,
   * `#cancelForward`). `hopCount`: the try's, which a restarted target's fence needs (incarnation-fence.ts).
   */
  | { type: 'request.cancel'; requestId: string; retry: number; hopCount: number }
  /** A restarted server asks every member to drop its earlier incarnations' forwards and parts (incarnation-fence.ts). */
  | { type: 'fence.raise'; incarnation: number; hopCountMin: number }
  /** The answer, once nothing of those earlier incarnations of hop `hopCountMin` or more is in hand here. */
  | { type: 'fence.confirmed'; incarnation: number; hopCountMin: number }
  /**
   * `holders`: for a write not durable at once, the servers that applied it and their loss epochs (see loss-watch.ts);
   * else empty. `routeProvisional`: a stale answer whose route is ahead of the answering server's durable records (a
   * source sends a request to its committed destination before its own flip is durable): the request follows it, but
   * no routing table learns it, so that a table's route is always one some server has durably flipped to.
   */
  | { type: 'request.answer'; requestId: string; retry: number; outcome: RequestOutcome; dataToken: string | null; holders: readonly WriteHolder[]; routeProvisional?: true }
  /**
   * Source → destination during a move: one piece of the page, or one chunk of it (`offsetBlocks`, `lengthBlocks`),
   * as it stood at write sequence `sequence`. `handedOverBlocks`: the blocks below it lie in pieces whose hand-over
   * the source has made durable in this attempt (Table 2: served by the destination alone), as a piece is copied
   * only once the checkpoint of its start, and so of every earlier piece's finish, is durable. `sourceSequence`: the
   * newest write sequence the source had handed out when it sent this, so no part it sent before, or sends again
   * later, is numbered above it (a destination versions its own writes above it: directWriteSequence).
   */
  | { type: 'piece.copy'; pageKey: PageKey; attempt: number; epoch: number; piece: number; offsetBlocks: number; lengthBlocks: number; sequence: number; handedOverBlocks: number; sourceSequence: number; dataToken: string }
  /** Destination → source: that piece.copy's blocks are durable here (the same range, so the source can count the chunks). */
  | { type: 'piece.stored'; pageKey: PageKey; attempt: number; epoch: number; piece: number; offsetBlocks: number; lengthBlocks: number }
  /** Source → destination: a write (dual write, or to a moved piece) with the source's write sequence and incarnation (incarnation-fence.ts). */
  | { type: 'block.write'; requestId: string; pageKey: PageKey; attempt: number; epoch: number; offsetBlocks: number; lengthBlocks: number; sequence: number; fua: boolean; dataToken: string; senderIncarnation: number }
  /**
   * `lossEpoch`: the writer's, for the holders of a write not durable at once. `pageKey`: the page a write was applied
   * to (ok), so that a source no longer moving it there can tell the destination (see #answerStaleMoveAck).
   */
  | { type: 'block.written'; requestId: string; ok: boolean; lossEpoch: number; pageKey?: PageKey; cancelled?: true }
  /**
   * Source → destination: the part `requestId` of write sequence `sequence` (a write to a piece the destination
   * serves) got no answer within the forward time-out; answered `block.written` when done if it is being written,
   * else `cancelled`, and the part is remembered so that it never lands (node.ts, `#cancelPart`).
   */
  | { type: 'block.cancel'; requestId: string; pageKey: PageKey; sequence: number }
  /** Source → destination: a read of a piece the destination already serves (Table 2). */
  | { type: 'block.read'; requestId: string; pageKey: PageKey; attempt: number; epoch: number; offsetBlocks: number; lengthBlocks: number }
  | { type: 'block.readDone'; requestId: string; ok: boolean; dataToken: string | null }
  /** `freshCopy` (Table 1): commit only if this attempt's copy was taken here, by this incarnation, else answer `move.copyStale`. */
  | { type: 'move.commit'; pageKey: PageKey; attempt: number; epoch: number; freshCopy: boolean; sourceSequence: number }
  /** `destinationServes`: the destination serves the page itself until it learns the flip (so the source may send requests there meanwhile). */
  | { type: 'move.committed'; pageKey: PageKey; attempt: number; epoch: number; destinationServes: boolean }
  /**
   * Destination → source: the commit of `attempt` is refused because the copy here may miss what the source served,
   * or because this server already follows a later attempt of the move, `destinationAttempt`; copy again above it.
   */
  | { type: 'move.copyStale'; pageKey: PageKey; attempt: number; epoch: number; destinationAttempt: number }
  /**
   * Source → destination (Table 2), before a finished piece's reads move there: confirm that this incarnation took this
   * attempt's copy and holds every part since, durably. `ok` false: it restarted (or never took it); copy the piece again.
   */
  | { type: 'piece.handover'; pageKey: PageKey; attempt: number; epoch: number; piece: number }
  | { type: 'piece.handedOver'; pageKey: PageKey; attempt: number; epoch: number; piece: number; ok: boolean }
  /**
   * Source → destination: the move whose copy this server receives at `epoch` is abandoned, and the source serves the
   * page at the next epoch (`reclaimEpochAfter` in move-setup.ts); let go of the partial copy. Sent again until answered by `move.released`.
   */
  | { type: 'move.abandoned'; pageKey: PageKey; attempt: number; epoch: number }
  /** Destination → source: no partial copy of that move is held here any more (durably). */
  | { type: 'move.released'; pageKey: PageKey; attempt: number; epoch: number }
  /** Lazy routing: pushed after a flip, and pulled implicitly by stale answers. */
  | { type: 'route.update'; pageKey: PageKey; owner: ServerId; epoch: number }
  /** A restarted server that holds a page's valid copy but not the route naming it asks the route's owner what it knows. */
  | { type: 'route.query'; pageKey: PageKey }
  /**
   * A FLUSH barrier asks every member to sync (flush-barrier.ts). `membershipEpoch`: the sender's record; a receiver
   * that knows a newer one answers with it, and the barrier then waits for its new members too.
   */
  | { type: 'flush.request'; flushId: string; membershipEpoch: number }
  /**
   * `membershipEpoch`: the responder's record; a part done under a record newer than the sender's counts only once
   * the sender has it. `lossEpoch`: the responder's when it synced; higher than a covered write's holder epoch means
   * that write may be lost.
   */
  | { type: 'flush.done'; flushId: string; ok: boolean; membershipEpoch: number; lossEpoch: number }
  /** A volume created on any server is defined on every server of the group. */
  | { type: 'volume.define'; volume: VolumeDefinition }
  /** Before that, its name is reserved on every member (volume-reservation.ts): one creation of a name at a time. */
  | { type: 'volume.reserve'; volume: VolumeDefinition; reservationId: string }
  | { type: 'volume.reserveAnswer'; name: string; reservationId: string; granted: boolean; reason: string | null }
  | { type: 'volume.release'; name: string; reservationId: string }
  /**
   * Volumes are lazy like routes and membership: with each membership
   * announcement a server names the volumes it knows, and a member that knows
   * one the list lacks sends its definition (a server that lost a definition
   * in a crash, or missed it while down, learns it back).
   */
  | { type: 'volumes.known'; names: readonly string[] }
  /** Dynamic membership: a changed record sent to every member, or an announcement; the newer record wins. */
  | { type: 'membership.update'; membership: Membership }
  /** A drained server about to leave asks each remaining member to confirm, durably at this record, that it runs no move toward it. */
  /** `lossEpoch`: the asker's, which FLUSHes covering writes it held compare against once it has left (see loss-watch.ts). */
  | { type: 'leave.check'; membership: Membership; lossEpoch: number }
  /** The answer, sent once the member's record (marking the asker draining) is durable; `clear`: no move toward the asker. */
  | { type: 'leave.answer'; membership: Membership; clear: boolean }
  /** A member asked to forget `servers` (down for good) asks each other member to confirm, durably at this record (marking them draining), that nothing it knows names them. */
  | { type: 'forget.check'; membership: Membership; servers: readonly ServerId[] }
  /**
   * The answer, once that record is durable; `clear`: no route here names any of `servers` as owner, no move here
   * runs toward one, no volume being created here names one. `reason`: what this member found instead (null if clear).
   */
  | { type: 'forget.answer'; membership: Membership; servers: readonly ServerId[]; clear: boolean; reason: string | null }
  /** A claimant asks each other member to accept, durably at this record, its claim to declare the pages of `servers` lost, and to report on `pages` (lost-pages.ts). */
  | { type: 'lost.check'; membership: Membership; servers: readonly ServerId[]; round: string; pages: readonly PageKey[] }
  /**
   * The answer, once the claim is durable: the member's route and copy of each page asked and of those its table names
   * one of `servers` owner of; or (null) why it refuses, and `deferTo`, the smaller claimant whose claim it holds.
   */
  | { type: 'lost.answer'; membership: Membership; servers: readonly ServerId[]; round: string; pages: readonly LostPageReport[] | null; refusal: string | null; deferTo: ServerId | null };

export type PeerMessageType = PeerMessage['type'];

/*
 * Answers about a move (piece.stored, piece.handedOver, move.committed, move.copyStale, move.released) carry the
 * move's `epoch` as the destination receives it (the source's page epoch + 1), with the attempt: attempts count from 1
 * in every move of a page, so after an abandoned move a late answer of its destination could otherwise count toward
 * the next move of the page (a review found a chunk acknowledged by the old destination counted for the new one, and
 * an acknowledged write lost). The source takes them only from its move's destination at its move's epoch.
 */
