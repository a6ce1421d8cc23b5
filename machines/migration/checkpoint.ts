import type { PageKey, ServerId } from '../identifiers.js';

/**
 * Where one piece of a page lives while its page moves.
 *
 * - `atSource`: not copied yet; the source alone holds and serves it.
 * - `inTransit`: being copied; reads from the source, writes to both sides.
 * - `copied`: copied by a unit move (Table 1) but the routing table has not
 *   flipped; the source still serves reads, writes still reach both sides.
 * - `atDestination`: moved; the destination alone holds and serves it.
 */
export type PieceMode = 'atSource' | 'inTransit' | 'copied' | 'atDestination';

export type MoveKind = 'unit' | 'piecewise';

/**
 * The durable record of a move, written on the source server. Every stage of
 * Table 1 and Table 2 is entered by persisting one of these; the stage's
 * routing takes effect only once the record is durable, so a crash can never
 * resume from a stage whose routing some client has not yet relied on.
 */
export interface MoveCheckpoint {
  /** The stage number as the patent's tables count them (1 = not started). */
  readonly stage: number;
  /** Increases on every (re)start, so late messages of an earlier attempt are recognised and ignored. */
  readonly attempt: number;
  readonly pieceModes: readonly PieceMode[];
  /** The page epoch: it grows by exactly one when the routing table flips. */
  readonly epoch: number;
  readonly owner: 'source' | 'destination';
  /**
   * Table 1: the copy was finished once at this epoch, so a commit may have been asked of the destination (and the
   * destination may hold the page as owner) even after a refusal sends the move back to copy again. Such a move can
   * no longer be abandoned. Carried by every later checkpoint of the move.
   */
  readonly commitAsked?: true;
  /**
   * The administrator gave the move up before the destination held any of the page alone (see move-setup.ts,
   * "Abandoning"): the source serves the whole page at `epoch + 2` and keeps this record until the destination
   * confirms that it has let go of its partial copy.
   */
  readonly abandoned?: true;
}

export interface MoveInput {
  readonly pageKey: PageKey;
  readonly kind: MoveKind;
  readonly source: ServerId;
  readonly destination: ServerId;
  readonly pieceCount: number;
  /** The page epoch when the move was requested. */
  readonly epoch: number;
  /** Optional embodiment: the source keeps a forwarding pointer instead of answering late requests with an error. */
  readonly forwardingPointer: boolean;
  /** Time the move may make no progress before the destination is presumed failed. */
  readonly progressTimeoutMs: number;
  /** When set, the machine is rebuilt after a crash from this durable record and starts `interrupted`. */
  readonly recovered?: MoveCheckpoint;
}

export function notStartedCheckpoint(pieceCount: number, epoch: number): MoveCheckpoint {
  return { stage: 1, attempt: 0, pieceModes: Array<PieceMode>(pieceCount).fill('atSource'), epoch, owner: 'source' };
}

export function withPieceMode(modes: readonly PieceMode[], piece: number, mode: PieceMode): PieceMode[] {
  const next = modes.slice();
  next[piece] = mode;
  return next;
}
