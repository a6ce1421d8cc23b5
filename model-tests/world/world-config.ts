import type { MoveKind } from '../../machines/migration/checkpoint.js';

export type NetworkMode = 'ordered' | 'unordered' | 'lossy' | 'duplicating';

/** The bounds of one exhaustive exploration. Every dimension is bounded so the search ends. */
export interface WorldConfig {
  readonly servers: number;
  readonly pages: number;
  /** Pieces per page (the volume's split granularity); the model gives each piece one block. */
  readonly pieces: number;
  /**
   * The piece count each move asks for (`admin.move`'s pieceCount); it must
   * divide `pieces`. Absent: the volume's own, as before per-move pieces.
   */
  readonly movePieces?: number;
  /**
   * Blocks per copy chunk (absent: the node's default, 1 MiB, so a piece is one chunk). With 1, a piece of two blocks
   * is copied in two chunks, each acknowledged on its own, as a 4 MiB piece is in the TCP runtime.
   */
  readonly copyChunkBlocks?: number;
  readonly writes: number;
  readonly reads: number;
  readonly moves: number;
  /** How many times the administrator may abandon a move (absent: never); asked only while the move may be abandoned. */
  readonly abandons?: number;
  readonly crashes: number;
  /** Drops (lossy) or duplicates (duplicating) the network may commit. */
  readonly networkFaults: number;
  readonly network: NetworkMode;
  readonly moveKinds: readonly MoveKind[];
  readonly forwardingPointer: boolean;
  readonly messagesMax: number;
  /** Timers fire only when nothing else can happen (no message in flight, no pending I/O). */
  readonly timersOnlyWhenQuiet: boolean;
  /**
   * Without `timersOnlyWhenQuiet`: how many time-outs may fire while the
   * group is not quiet (racing a message, a down server or a commit); after
   * that, timers fire only when quiet again. Absent, any number (random walks
   * and replays): retries then make the state space infinite, so an
   * exhaustive search of timers that race sets it.
   */
  readonly earlyTimersMax?: number;
  /**
   * A crash is a power cut: page data neither written with FUA nor synced is
   * lost with it. Clients then write with FUA, so every acknowledged write
   * must survive, and what is tested is the group's own durability
   * discipline (piece copies durable before they count, commit after sync).
   */
  readonly powerLoss?: boolean;
  /**
   * With `powerLoss`: clients write without FUA (and flush only with `flushes`), so a power
   * cut may lose any acknowledged write; the register then lets a cut roll a
   * block back but never bring a lost value back (see register-check.ts).
   * This is what tests that both sides of a move hold the same unflushed data
   * when readers switch from one to the other.
   */
  readonly unflushedWrites?: boolean;
  /**
   * With `unflushedWrites`: FLUSHes the clients may send (through any
   * server). A FLUSH answered `ok` makes the writes acknowledged through
   * that server before it durable, which the register then holds the group
   * to (see register-check.ts); a power cut in between must make it fail.
   */
  readonly flushes?: number;
  /**
   * A crash keeps the messages the crashed server had already sent (they are
   * still delivered), as a TCP peer may still read what a killed process had
   * written to its socket. By default a crash drops them with its connections.
   */
  readonly crashKeepsSent?: boolean;
  /**
   * Commits nobody waits for (a null completion id: learnt routes, a
   * finished move's record removed, a volume definition) stay pending like the others, and a crash loses those
   * not yet durable, as it may in the TCP runtime, which hands them to the
   * store and goes on. By default they are durable at once, unless an earlier
   * commit is still pending: then they wait behind it (a store makes commits
   * durable in order), each made durable by a step of its own, and a crash
   * may take them too.
   */
  readonly unawaitedCommitsLost?: boolean;
  /**
   * How many metadata commits may fail (absent: none). A failed commit is
   * skipped and later ones still become durable, as in the TCP runtime's
   * store; the node hears `ok: false` if it waits for the commit, and
   * `meta.failed` if it does not. Commits nobody waits for then queue like
   * the others, so that any of them may fail, and so a crash may take them
   * too, as with `unawaitedCommitsLost`.
   */
  readonly commitFailures?: number;
  /**
   * With `commitFailures`: a commit reported failed was made durable all the
   * same (an fsync that failed after the pages reached the disk): the outcome
   * of a failed commit is unknown to the node, which must be ready for both.
   */
  readonly failedCommitsDurable?: boolean;
  /**
   * How many page-data writes may fail (absent: none), as a disk fails one
   * with EIO or ENOSPC. Deterministic: the action `disk.fail` arms a server
   * (spending one unit), and its next `data.write` completes `ok: false`
   * with the page data left as it was; a crash disarms it. What is tested is
   * that a write the node was told failed is never counted as on the disk.
   */
  readonly dataWriteFailures?: number;
  /** Run the nodes on a deliberately broken machine set (see explorer/broken-variants.ts). */
  readonly variant: string | null;
  /**
   * Let a client see a routing error with no fault having happened (world.ts, `isFaultFree`): only for a broken
   * variant whose request loop that property would catch first, to show that another property bites as well.
   */
  readonly routingErrorsAllowed?: boolean;
}

/**
 * The reference bound: 3 servers, 1 page of 2 pieces, 2 writes,
 * 1 move, 1 crash, unordered network — no reads (acknowledged writes are
 * audited on the owner's disk once everything settles, see properties.ts).
 * `npm run check` with no arguments explores it; bench:explorer times it.
 */
export const referenceBound: WorldConfig = {
  servers: 3, pages: 1, pieces: 2, writes: 2, reads: 0, moves: 1, crashes: 1, networkFaults: 0,
  network: 'unordered', moveKinds: ['piecewise'], forwardingPointer: false, messagesMax: 12, timersOnlyWhenQuiet: true, variant: null,
};
