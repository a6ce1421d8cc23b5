import type { ServerId } from '../identifiers.js';
import type { MoveCheckpoint, MoveKind } from './checkpoint.js';
import type { MoveContext } from './move-setup.js';
import { pieceToResume } from './move-setup.js';
import { finalStage, startStage } from './stage-numbers.js';

/**
 * Pure questions asked of a move's snapshot context. They read only the
 * durable checkpoint, because only a durable stage's routing is in effect.
 */
export function readServer(context: MoveContext, piece: number): ServerId {
  const mode = context.checkpoint.pieceModes[pieceIndex(context, piece)];
  return mode === 'atDestination' ? context.destination : context.source;
}

/** The servers a write to `piece` must reach before it is acknowledged. */
export function writeServers(context: MoveContext, piece: number): ServerId[] {
  switch (context.checkpoint.pieceModes[pieceIndex(context, piece)]) {
    case 'atSource': return [context.source];
    case 'inTransit':
    case 'copied': return [context.source, context.destination];
    case 'atDestination': return [context.destination];
    default: throw new Error(`piece ${piece} out of range`);
  }
}

/** The "Destination" column of the tables: the server that owns the page. */
export function owner(context: MoveContext): ServerId {
  return context.checkpoint.owner === 'destination' ? context.destination : context.source;
}

/** The routing epoch the move gives the page: the checkpoint's once the flip is durable, the next one until then. */
export function moveEpoch(context: MoveContext): number {
  return context.checkpoint.epoch + (context.checkpoint.owner === 'destination' ? 0 : 1);
}

/**
 * The stage a failure now would resume at, or null when nothing is copied
 * again (N/A: only the flip remains, or it is done). For a "not started"
 * checkpoint it names the first start stage, which is where the machine goes
 * if it is still running; no "not started" record of a move under way is
 * ever made durable, so a source that crashes before its stage-2 record is
 * durable has no move left to resume (the README's restart column says so).
 * (An abandoned move's record is stage 1 with `abandoned` set: nothing is
 * resumed from it; move-setup.ts, "Abandoning".)
 */
export function restartStage(kind: MoveKind, checkpoint: MoveCheckpoint): number | null {
  if (checkpoint.owner === 'destination') return null;
  const piece = pieceToResume(checkpoint);
  return piece === null ? null : startStage(kind, piece);
}

/** The stage whose action is under way: the pending checkpoint's, else the one after the durable stage. */
export function stageInProgress(context: MoveContext): number {
  if (context.pending !== null) return context.pending.stage;
  return Math.min(context.checkpoint.stage + 1, finalStage(context.kind, context.pieceCount));
}

function pieceIndex(context: MoveContext, piece: number): number {
  // A unit move routes the whole page as its one piece.
  return context.kind === 'unit' ? 0 : piece;
}
