import { and, assign, setup } from 'xstate';
import { effectActions } from '../effects.js';
import type { PageKey, ServerId } from '../identifiers.js';
import { pageKeyText } from '../identifiers.js';
import type { MoveCheckpoint, MoveInput, MoveKind, PieceMode } from './checkpoint.js';
import { notStartedCheckpoint, withPieceMode } from './checkpoint.js';
import { finalStage, finishStage, notStartedStage, startStage } from './stage-numbers.js';

/**
 * What both move machines (Table 1 and Table 2) share: their context, events,
 * guards and effect-emitting actions. Each machine file draws its own state
 * graph from these parts, so the tables differ only where the patent's
 * tables differ.
 */
export interface MoveContext {
  readonly pageKey: PageKey;
  readonly kind: MoveKind;
  readonly source: ServerId;
  readonly destination: ServerId;
  readonly pieceCount: number;
  readonly forwardingPointer: boolean;
  readonly progressTimeoutMs: number;
  /** The durable record whose stage is in effect. */
  readonly checkpoint: MoveCheckpoint;
  /** The record being made durable; its stage takes effect when `stage.persisted` confirms it. */
  readonly pending: MoveCheckpoint | null;
  /** The piece whose copy is the current action (always 0 for a unit move). */
  readonly piece: number;
  readonly attempt: number;
}

export type MoveEvent =
  | { type: 'move.begin' }
  | { type: 'stage.persisted'; stage: number; attempt: number }
  | { type: 'piece.copied'; piece: number; attempt: number }
  | { type: 'destination.committed'; attempt: number }
  /**
   * Table 1: the destination refused to commit `attempt` because its copy may miss what the source served, or because
   * it follows a later attempt, `destinationAttempt` (see unit-move.machine.ts).
   */
  | { type: 'destination.stale'; attempt: number; destinationAttempt: number }
  | { type: 'destination.failed'; attempt: number }
  | { type: 'timer.fired'; timerId: string }
  | { type: 'crash' }
  | { type: 'restart' }
  /** The administrator gives the move up (see "Abandoning" below). */
  | { type: 'move.abandon' }
  /** The destination has let go of its partial copy of the abandoned `attempt` (or never held one). */
  | { type: 'destination.released'; attempt: number };

export function progressTimerId(context: MoveContext): string {
  const stage = context.pending?.stage ?? context.checkpoint.stage;
  return `move:${pageKeyText(context.pageKey)}:a${context.attempt}:s${stage}:p${context.piece}`;
}

/** The timer that sends an abandoned move's notice to the destination again until it answers. */
export function abandonNoticeTimerId(context: MoveContext): string {
  return `abandon:${pageKeyText(context.pageKey)}:a${context.checkpoint.attempt}`;
}

/** The epoch at which the source serves the page again after abandoning a move: past the move's own, never reused. */
export function reclaimEpoch(checkpoint: MoveCheckpoint): number {
  return reclaimEpochAfter(checkpoint.epoch + 1);
}

/** The same, from the move's own epoch (the one its destination receives at): the epoch after it. */
export function reclaimEpochAfter(moveEpoch: number): number {
  return moveEpoch + 1;
}

function pendingStage(context: MoveContext, stage: number, pieceModes: readonly PieceMode[]): MoveCheckpoint {
  return { ...context.checkpoint, stage, attempt: context.attempt, pieceModes };
}

/** The piece a restart resumes: the one in transit, else the first not yet copied, else none (only the flip remains). */
export function pieceToResume(checkpoint: MoveCheckpoint): number | null {
  const inTransit = checkpoint.pieceModes.indexOf('inTransit');
  if (inTransit >= 0) return inTransit;
  const notCopied = checkpoint.pieceModes.indexOf('atSource');
  return notCopied >= 0 ? notCopied : null;
}

export const moveSetup = setup({
  types: {} as { context: MoveContext; events: MoveEvent; input: MoveInput },
  actions: {
    ...effectActions(['stage.persist', 'piece.copy', 'commit.request', 'copy.release', 'routing.publish', 'timer.set', 'copy.reclaim', 'abandon.notify', 'record.forget']),
    enterStartStage: assign(({ context }) => ({
      pending: pendingStage(context, startStage(context.kind, context.piece), withPieceMode(context.checkpoint.pieceModes, context.piece, 'inTransit')),
    })),
    enterFinishStage: assign(({ context }) => {
      const finished = pendingStage(
        context,
        finishStage(context.kind, context.piece),
        // Table 1 keeps the source serving reads until the flip; Table 2 hands a finished piece to the destination at once.
        withPieceMode(context.checkpoint.pieceModes, context.piece, context.kind === 'unit' ? 'copied' : 'atDestination'),
      );
      // Table 1 asks for the commit once this record is durable; the mark stays on every later record of the move.
      return { pending: context.kind === 'unit' ? { ...finished, commitAsked: true as const } : finished };
    }),
    enterAbandonStage: assign(({ context }) => ({
      pending: {
        ...context.checkpoint, stage: notStartedStage, attempt: context.attempt,
        pieceModes: context.checkpoint.pieceModes.map(() => 'atSource' as const), abandoned: true as const,
      },
    })),
    enterFlipStage: assign(({ context }) => ({
      pending: {
        stage: finalStage(context.kind, context.pieceCount),
        attempt: context.attempt,
        pieceModes: context.checkpoint.pieceModes.map(() => 'atDestination' as const),
        epoch: context.checkpoint.epoch + 1,
        owner: 'destination' as const,
      },
    })),
    /** The pending record is durable: its stage, and so its routing, now takes effect. */
    confirmPending: assign(({ context }) => ({ checkpoint: context.pending ?? context.checkpoint, pending: null })),
    advancePiece: assign(({ context }) => ({ piece: context.piece + 1 })),
    beginFirstAttempt: assign({ attempt: 1, piece: 0 }),
    /** A crash loses everything volatile; only the durable checkpoint survives. */
    forgetVolatile: assign({ pending: null }),
    /**
     * Table 1, after the destination refused to commit: a new attempt, above the refused one and above the one the
     * destination follows, copies the page again. The destination may be ahead: attempts are acted on before they are
     * durable here (a restart into the commit, and this very action, persist none), so a crash can restart the move
     * below an attempt whose dual writes the destination has followed; a commit it would ignore for ever.
     */
    beginCopyAgain: assign(({ context, event }) => ({
      attempt: Math.max(context.attempt, event.type === 'destination.stale' ? event.destinationAttempt : 0) + 1,
      piece: 0,
    })),
    /**
     * A restart takes the attempt after the checkpoint's, or the one this run of the machine was already on if that
     * is higher: Table 1 copies again under a new attempt before that attempt's stage is durable, and its dual writes
     * already carry it, so the destination may follow it; a restart that went back below it would ask the destination
     * with an attempt it refuses as old, for ever (a random walk found it: a time-out while the copy was made again).
     * Keeping that attempt is safe, as a restart after a crash reusing the checkpoint's attempt + 1 always was: a
     * commit asks for a fresh copy the destination must have taken under that very attempt, or it copies again under
     * a new one. Not going higher keeps restarts from a stage that never becomes durable at one attempt number.
     */
    beginNextAttempt: assign(({ context }) => ({
      attempt: Math.max(context.checkpoint.attempt + 1, context.attempt),
      piece: pieceToResume(context.checkpoint) ?? context.pieceCount - 1,
    })),
  },
  guards: {
    isRecovered: ({ context }) => context.checkpoint.stage > 1,
    /** The durable record is the flip itself: the destination had committed before it was written, so nothing is left but the release. */
    hasFlipped: ({ context }) => context.checkpoint.owner === 'destination',
    confirmsPending: ({ context, event }) =>
      event.type === 'stage.persisted' && context.pending !== null &&
      event.stage === context.pending.stage && event.attempt === context.pending.attempt,
    isCurrentAttempt: ({ context, event }) => 'attempt' in event && event.attempt === context.attempt,
    copiedCurrentPiece: ({ context, event }) =>
      event.type === 'piece.copied' && event.attempt === context.attempt && event.piece === context.piece,
    isProgressTimer: ({ context, event }) => event.type === 'timer.fired' && event.timerId === progressTimerId(context),
    hasNextPiece: ({ context }) => context.piece + 1 < context.pieceCount,
    resumesWithCopy: ({ context }) => pieceToResume(context.checkpoint) !== null,
    mayAbandon: ({ context }) => mayAbandon(context),
    hasAbandoned: ({ context }) => context.checkpoint.abandoned === true,
    isAbandonNoticeTimer: ({ context, event }) => event.type === 'timer.fired' && event.timerId === abandonNoticeTimerId(context),
    releasesAbandonedAttempt: ({ context, event }) => event.type === 'destination.released' && event.attempt === context.checkpoint.attempt,
  },
});

/**
 * Whether the move may be given up now: no stage is being made durable, and the source alone holds the page's data as
 * clients have it. Every piece is at the source or in transit (written at both sides, so the source has every write),
 * and no commit was ever asked of the destination at this epoch (Table 1's copy never finished). A piece the
 * destination serves alone (Table 2), or a destination that may already own the page, can only be finished.
 */
export function mayAbandon(context: MoveContext): boolean {
  const { checkpoint } = context;
  return context.pending === null && checkpoint.abandoned !== true && checkpoint.commitAsked !== true && checkpoint.owner === 'source' &&
    checkpoint.pieceModes.every((mode) => mode === 'atSource' || mode === 'inTransit');
}

export function moveContextFromInput(input: MoveInput): MoveContext {
  const checkpoint = input.recovered ?? notStartedCheckpoint(input.kind === 'unit' ? 1 : input.pieceCount, input.epoch);
  return {
    pageKey: input.pageKey,
    kind: input.kind,
    source: input.source,
    destination: input.destination,
    pieceCount: input.kind === 'unit' ? 1 : input.pieceCount,
    forwardingPointer: input.forwardingPointer,
    progressTimeoutMs: input.progressTimeoutMs,
    checkpoint,
    pending: null,
    piece: 0,
    attempt: checkpoint.attempt,
  };
}

/** Effect parameter builders, shared by both graphs. */
export const persistPending = {
  type: 'stage.persist',
  params: ({ context }: { context: MoveContext }) => ({ pageKey: context.pageKey, checkpoint: context.pending ?? context.checkpoint }),
} as const;

export const copyCurrentPiece = {
  type: 'piece.copy',
  params: ({ context }: { context: MoveContext }) => ({
    pageKey: context.pageKey, destination: context.destination, attempt: context.attempt, piece: context.piece, pieceCount: context.pieceCount,
  }),
} as const;

export const armProgressTimer = {
  type: 'timer.set',
  params: ({ context }: { context: MoveContext }) => ({ timerId: progressTimerId(context), delayMs: context.progressTimeoutMs }),
} as const;

export const requestCommit = {
  type: 'commit.request',
  params: ({ context }: { context: MoveContext }) => ({
    pageKey: context.pageKey, destination: context.destination, attempt: context.attempt, epoch: context.checkpoint.epoch + 1,
  }),
} as const;

export const releaseSourceCopy = {
  type: 'copy.release',
  params: ({ context }: { context: MoveContext }) => ({
    pageKey: context.pageKey, epoch: context.checkpoint.epoch, forwardTo: context.forwardingPointer ? context.destination : null,
  }),
} as const;

export const publishRoute = {
  type: 'routing.publish',
  params: ({ context }: { context: MoveContext }) => ({ pageKey: context.pageKey, owner: context.destination, epoch: context.checkpoint.epoch }),
} as const;

/**
 * The flip, shared by both tables: the destination first holds the page
 * durably as owner at the next epoch, then the source durably records the
 * flip (its copy invalid, the routing table pointing at the destination), and
 * only then releases its data and publishes the new route.
 */
export function flipStates(machineId: string) {
  return {
    committing: {
      entry: [requestCommit, armProgressTimer],
      on: { 'destination.committed': { guard: 'isCurrentAttempt', target: 'flipping' } },
    },
    flipping: {
      // The stage this state makes durable is the tables' last row.
      meta: { action: 'Routing Table updated' },
      entry: ['enterFlipStage', persistPending],
      on: { 'stage.persisted': { guard: 'confirmsPending', target: `#${machineId}.routingTableUpdated`, actions: 'confirmPending' } },
    },
  } as const;
}

/**
 * A move rebuilt from its durable record starts `interrupted`, to resume at the
 * table's restart stage, unless that record is the flip: then the routing
 * table has updated already (the tables' last stage, whose restart is N/A),
 * and the machine finishes at once, releasing the source copy again. (The
 * crash took the release's own record, or the page would not have a move.)
 */
export const recoveryTransitions = [
  { guard: 'hasFlipped', target: 'routingTableUpdated' },
  { guard: 'hasAbandoned', target: 'abandoned' },
  { guard: 'isRecovered', target: 'interrupted' },
] as const;

/** A failure anywhere in a move under way interrupts it; `restart` then resumes at the table's restart stage. */
export const interruptions = {
  crash: { target: 'interrupted', actions: 'forgetVolatile' },
  'destination.failed': { guard: 'isCurrentAttempt', target: 'interrupted', actions: 'forgetVolatile' },
  'timer.fired': { guard: 'isProgressTimer', target: 'interrupted', actions: 'forgetVolatile' },
} as const;

/**
 * Abandoning, shared by both tables (not in the patent). An administrator may give a move up while the source alone
 * holds the page's data (`mayAbandon`): typically because the destination is gone and the move would otherwise restart
 * toward it for ever, failing every write to the piece in transit. The source persists an `abandoned` record that
 * turns every piece back to the source and, atomically with it, its copy valid and its route at `reclaimEpoch` (two
 * past the move's epoch: the move's own next epoch, which a destination's partial copy is receiving at, is never used).
 * Once that is durable it serves the whole page alone, publishes the route (a destination that learns it lets go of
 * its partial copy), and tells the destination so directly (`abandon.notify`), again on a timer until it answers
 * `destination.released`; only then is the record removed. A crash in between rebuilds the machine in `abandoned`.
 */
export const abandonTransition = { 'move.abandon': { guard: 'mayAbandon', target: 'abandoning' } } as const;

export function abandonStates(machineId: string) {
  return {
    abandoning: {
      meta: { action: 'Abandon move' },
      entry: ['enterAbandonStage', persistPending],
      on: { 'stage.persisted': { guard: 'confirmsPending', target: `#${machineId}.abandoned`, actions: 'confirmPending' } },
    },
    abandoned: {
      meta: { action: 'Abandoned' },
      entry: [reclaimSourceCopy, publishReclaimedRoute],
      initial: 'notifying',
      on: { 'destination.released': { guard: 'releasesAbandonedAttempt', target: `#${machineId}.released` } },
      states: {
        notifying: {
          entry: [notifyDestination, armAbandonNoticeTimer],
          on: { 'timer.fired': { guard: 'isAbandonNoticeTimer', target: 'notifying', reenter: true } },
        },
      },
    },
    released: { type: 'final', entry: [forgetRecord] },
  } as const;
}

const reclaimSourceCopy = {
  type: 'copy.reclaim',
  params: ({ context }: { context: MoveContext }) => ({ pageKey: context.pageKey, epoch: reclaimEpoch(context.checkpoint) }),
} as const;

const publishReclaimedRoute = {
  type: 'routing.publish',
  params: ({ context }: { context: MoveContext }) => ({ pageKey: context.pageKey, owner: context.source, epoch: reclaimEpoch(context.checkpoint) }),
} as const;

const notifyDestination = {
  type: 'abandon.notify',
  params: ({ context }: { context: MoveContext }) => ({
    pageKey: context.pageKey, destination: context.destination, attempt: context.checkpoint.attempt,
    epoch: context.checkpoint.epoch + 1,
  }),
} as const;

const armAbandonNoticeTimer = {
  type: 'timer.set',
  params: ({ context }: { context: MoveContext }) => ({ timerId: abandonNoticeTimerId(context), delayMs: context.progressTimeoutMs }),
} as const;

const forgetRecord = {
  type: 'record.forget',
  params: ({ context }: { context: MoveContext }) => ({ pageKey: context.pageKey }),
} as const;

export const routingTableUpdatedState = {
  type: 'final',
  entry: [releaseSourceCopy, publishRoute],
} as const;
