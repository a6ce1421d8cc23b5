import { describe, expect, it } from 'vitest';
import { piecewiseMoveMachine } from '../../machines/migration/piecewise-move.machine.js';
import type { TraceLine } from './trace-check.js';
import { checkTrace } from './trace-check.js';
import { transitionGraph } from './transition-graph.js';

const step = (event: string, from: unknown, to: unknown, instance = 'v/0'): TraceLine =>
  ({ server: 's1', type: 'trace', machine: 'piecewiseMove', instance, event, from: JSON.stringify(from), to: JSON.stringify(to) });

/** A piecewise move of two pieces, as the node logs it. */
const validMove: TraceLine[] = [
  step('move.begin', 'notStarted', { moving: { startPiece: 'persisting' } }),
  step('stage.persisted', { moving: { startPiece: 'persisting' } }, { moving: { startPiece: 'copying' } }),
  step('piece.copied', { moving: { startPiece: 'copying' } }, { moving: { finishPiece: 'persisting' } }),
  step('stage.persisted', { moving: { finishPiece: 'persisting' } }, { moving: { startPiece: 'persisting' } }),
  step('stage.persisted', { moving: { startPiece: 'persisting' } }, { moving: { startPiece: 'copying' } }),
  step('crash', { moving: { startPiece: 'copying' } }, 'interrupted'),
  step('restart', 'interrupted', { moving: { startPiece: 'persisting' } }),
  step('stage.persisted', { moving: { startPiece: 'persisting' } }, { moving: { startPiece: 'copying' } }),
  step('piece.copied', { moving: { startPiece: 'copying' } }, { moving: { finishPiece: 'persisting' } }),
  step('stage.persisted', { moving: { finishPiece: 'persisting' } }, { moving: 'committing' }),
  step('destination.committed', { moving: 'committing' }, { moving: 'flipping' }),
  step('stage.persisted', { moving: 'flipping' }, 'routingTableUpdated'),
];

describe('trace conformance checker', () => {
  it('accepts a logged move that is a path of the piecewise machine', () => {
    const graph = transitionGraph(piecewiseMoveMachine);
    expect(graph.initial.has('notStarted')).toBe(true);
    expect(graph.initial.has('interrupted'), 'a recovered move rests in interrupted').toBe(true);
    const result = checkTrace(validMove);
    expect(result.problems).toEqual([]);
    expect(result.steps).toBe(validMove.length);
  });

  it('bites: a skipped stage, a broken chain and an unknown machine are each reported', () => {
    const skipped = [...validMove];
    skipped[2] = step('piece.copied', { moving: { startPiece: 'copying' } }, 'routingTableUpdated');
    expect(checkTrace(skipped).problems.join('\n')).toContain('is not a step of piecewiseMove');
    const broken = validMove.filter((_, index) => index !== 1);
    expect(checkTrace(broken).problems.join('\n')).toContain('but the instance was in');
    expect(checkTrace([{ ...validMove[0]!, machine: 'teleport' }]).problems).toHaveLength(1);
  });

  it('an event the state does not handle is ignored in place, and only in place', () => {
    // A late piece.stored reaching a source whose move a restart interrupted: XState ignores it, the node still logs it.
    const late = [...validMove.slice(0, 6), step('piece.copied', 'interrupted', 'interrupted'), ...validMove.slice(6)];
    expect(checkTrace(late).problems).toEqual([]);
    const moved = [...validMove.slice(0, 6), step('piece.copied', 'interrupted', { moving: { startPiece: 'persisting' } }), ...validMove.slice(7)];
    expect(checkTrace(moved).problems.join('\n')).toContain('interrupted --piece.copied--> moving.startPiece.persisting is not a step');
  });

  it('a process start begins every chain of that server afresh', () => {
    const restarted: TraceLine[] = [...validMove.slice(0, 5), { server: 's1', type: 'start' }, ...validMove.slice(6)];
    expect(checkTrace(restarted).problems).toEqual([]);
  });
});
