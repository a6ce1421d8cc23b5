import { and, assign, setup } from 'xstate';
import { effectActions } from '../effects.js';
import type { PageKey, ServerId } from '../identifiers.js';
import { pageKeyText } from '../identifiers.js';
import type { MoveCheckpoint, MoveInput, MoveKind, PieceMode } from './checkpoint.js';
import { notStartedCheckpoint, withPieceMode } from './checkpoint.js';
import { finalStage, finishStage, startStage } from './stage-numbers.js';

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
  | { type: 'restart' };

export function progressTimerId(context: MoveContext): string {
  const stage = context.pending?.stage ?? context.checkpoint.stage;
  return `move:${pageKeyText(context.pageKey)}:a${context.attempt}:s${stage}:p${context.piece}`;
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
    ...effectActions(['stage.persist', 'piece.copy', 'commit.request', 'copy.release', 'routing.publish', 'timer.set']),
    enterStartStage: assign(({ context }) => ({
      pending: pendingStage(context, startStage(context.kind, context.piece), withPieceMode(context.checkpoint.pieceModes, context.piece, 'inTransit')),
    })),
    enterFinishStage: assign(({ context }) => ({
      pending: pendingStage(
        context,
        finishStage(context.kind, context.piece),
        // Table 1 keeps the source serving reads until the flip; Table 2 hands a finished piece to the destination at once.
        withPieceMode(context.checkpoint.pieceModes, context.piece, context.kind === 'unit' ? 'copied' : 'atDestination'),
      ),
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
  },
});

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
  { guard: 'isRecovered', target: 'interrupted' },
] as const;

/** A failure anywhere in a move under way interrupts it; `restart` then resumes at the table's restart stage. */
export const interruptions = {
  crash: { target: 'interrupted', actions: 'forgetVolatile' },
  'destination.failed': { guard: 'isCurrentAttempt', target: 'interrupted', actions: 'forgetVolatile' },
  'timer.fired': { guard: 'isProgressTimer', target: 'interrupted', actions: 'forgetVolatile' },
} as const;

export const routingTableUpdatedState = {
  type: 'final',
  entry: [releaseSourceCopy, publishRoute],
} as const;
