import type { MoveKind } from './checkpoint.js';

/**
 * Stage numbers exactly as the patent's tables count them.
 *
 * Table 1 (unit move): 1 not started, 2 start move, 3 finish move, 4 routing
 * table updated. Table 2 (piecewise move of m pieces, piece 0 is the patent's
 * "piece 1"): 1 not started, 2k+2 start piece k, 2k+3 finish piece k,
 * 2m+2 routing table updated.
 */
export const notStartedStage = 1;

export function finalStage(kind: MoveKind, pieceCount: number): number {
  return kind === 'unit' ? 4 : 2 * pieceCount + 2;
}

export function startStage(kind: MoveKind, piece: number): number {
  return kind === 'unit' ? 2 : 2 * piece + 2;
}

export function finishStage(kind: MoveKind, piece: number): number {
  return kind === 'unit' ? 3 : 2 * piece + 3;
}
