import { assign } from 'xstate';
import { describe, expect, it } from 'vitest';
import { piecewiseMoveMachine } from '../../machines/migration/piecewise-move.machine.js';
import { unitMoveMachine } from '../../machines/migration/unit-move.machine.js';
import { withPieceMode } from '../../machines/migration/checkpoint.js';
import { deriveTable, describeTargets } from '../../machines/tables/derive-tables.js';
import { patentTable1, patentTable2ThreePieces } from './patent-tables.js';

describe('tables derived by walking the machines equal the patent', () => {
  it('Table 1: unit move', () => {
    expect(deriveTable(unitMoveMachine, 'unit', 1)).toEqual(patentTable1);
  });

  it('Table 2: piecewise move of 3 pieces', () => {
    expect(deriveTable(piecewiseMoveMachine, 'piecewise', 3)).toEqual(patentTable2ThreePieces);
  });

  it('Table 2 for 2 pieces keeps the patent rows 1-3 verbatim', () => {
    const rows = deriveTable(piecewiseMoveMachine, 'piecewise', 2);
    expect(rows.slice(0, 3)).toEqual(patentTable2ThreePieces.slice(0, 3));
    expect(rows).toHaveLength(6);
  });
});

describe('the comparison bites: a machine whose stage routes differently no longer matches', () => {
  it('a unit move that hands the page to the destination when the copy finishes (Table 2 behaviour) fails Table 1', () => {
    const broken = unitMoveMachine.provide({
      actions: {
        enterFinishStage: assign(({ context }) => ({
          pending: { ...context.checkpoint, stage: 3, attempt: context.attempt, pieceModes: withPieceMode(context.checkpoint.pieceModes, 0, 'atDestination') },
        })),
      },
    });
    const rows = deriveTable(broken, 'unit', 1);
    expect(rows).not.toEqual(patentTable1);
    expect(rows[2]?.read).toBe('Server B');
  });

  it('a piecewise move that forgets to write the piece in transit at the destination fails Table 2', () => {
    const broken = piecewiseMoveMachine.provide({
      actions: {
        enterStartStage: assign(({ context }) => ({
          pending: { ...context.checkpoint, stage: 2 * context.piece + 2, attempt: context.attempt, pieceModes: context.checkpoint.pieceModes },
        })),
      },
    });
    const rows = deriveTable(broken, 'piecewise', 3);
    expect(rows).not.toEqual(patentTable2ThreePieces);
    expect(rows[1]?.write).toBe('Server A');
  });

  it('a piecewise move that restarts one piece too late fails Table 2', () => {
    const broken = piecewiseMoveMachine.provide({
      actions: {
        beginNextAttempt: assign(({ context }) => ({ attempt: context.checkpoint.attempt + 1, piece: Math.min(context.piece + 1, context.pieceCount - 1) })),
      },
    });
    expect(deriveTable(broken, 'piecewise', 3)).not.toEqual(patentTable2ThreePieces);
  });
});

describe('describeTargets speaks the patent wording', () => {
  it.each([
    [[['A'], ['A'], ['A']], 'Server A'],
    [[['A', 'B'], ['A'], ['A']], 'Servers A and B for piece 1, server A for others'],
    [[['B'], ['B'], ['A', 'B'], ['A']], 'Server B for pieces 1 and 2, servers A and B for piece 3, server A for others'],
  ])('%j → %s', (targets, text) => {
    expect(describeTargets(targets)).toBe(text);
  });
});
