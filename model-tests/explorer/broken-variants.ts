import { assign } from 'xstate';
import { withPieceMode } from '../../machines/migration/checkpoint.js';
import type { NodeMachines } from '../../machines/node/node-machines.js';
import { standardMachines } from '../../machines/node/node-machines.js';

/**
 * Deliberately broken machines, each a one-line change made with
 * `machine.provide`. The explorer must catch every one with a short trace;
 * if it ever stops doing so, its properties have stopped biting.
 */
export interface BrokenVariant {
  readonly description: string;
  readonly machines: NodeMachines;
  /** The property the explorer is expected to report broken. */
  readonly expectedProperty: string;
}

const piecewise = standardMachines.piecewiseMove;

export const brokenVariants: Readonly<Record<string, BrokenVariant>> = {
  'dual-write-one-side': {
    description: 'the piece in transit is written at the source only, so a write is acknowledged after one side of the move',
    machines: {
      ...standardMachines,
      piecewiseMove: piecewise.provide({
        actions: {
          enterStartStage: assign(({ context }) => ({ pending: { ...context.checkpoint, stage: 2 * context.piece + 2, attempt: context.attempt } })),
        },
      }),
    },
    expectedProperty: 'no acknowledged write is lost',
  },
  'flip-before-copy-durable': {
    description: 'a piece is handed to the destination when its copy starts, before the copy is durable there',
    machines: {
      ...standardMachines,
      piecewiseMove: piecewise.provide({
        actions: {
          enterStartStage: assign(({ context }) => ({
            pending: { ...context.checkpoint, stage: 2 * context.piece + 2, attempt: context.attempt, pieceModes: withPieceMode(context.checkpoint.pieceModes, context.piece, 'atDestination') },
          })),
        },
      }),
    },
    expectedProperty: 'no acknowledged write is lost',
  },
  'restart-one-piece-late': {
    description: 'a restart resumes at the piece after the one in transit',
    machines: {
      ...standardMachines,
      piecewiseMove: piecewise.provide({
        actions: {
          beginNextAttempt: assign(({ context }) => {
            const inTransit = context.checkpoint.pieceModes.indexOf('inTransit');
            const notCopied = context.checkpoint.pieceModes.indexOf('atSource');
            const resume = inTransit >= 0 ? inTransit : notCopied >= 0 ? notCopied : context.pieceCount - 1;
            return { attempt: context.checkpoint.attempt + 1, piece: Math.min(resume + 1, context.pieceCount - 1) };
          }),
        },
      }),
    },
    expectedProperty: 'a restart resumes at the table\'s restart stage',
  },
  'source-copy-stays-valid': {
    description: 'the source\'s copy is never recorded invalid after the flip, so the page keeps two valid copies',
    machines: {
      ...standardMachines,
      replica: standardMachines.replica.provide({ actions: { recordInvalid: assign({}) } }),
    },
    expectedProperty: 'at most one valid copy of a page outside a move',
  },
  'abandon-after-hand-over': {
    description: 'a move may be abandoned whenever no stage is being recorded, even once a piece is served by the destination alone',
    machines: {
      ...standardMachines,
      piecewiseMove: piecewise.provide({ guards: { mayAbandon: ({ context }) => context.pending === null && context.checkpoint.abandoned !== true } }),
    },
    expectedProperty: 'no acknowledged write is lost',
  },
  'abandon-after-commit-asked': {
    description: 'a unit move may be abandoned after its commit was asked, when the destination may already own the page',
    machines: {
      ...standardMachines,
      unitMove: standardMachines.unitMove.provide({
        guards: { mayAbandon: ({ context }) => context.pending === null && context.checkpoint.abandoned !== true && context.checkpoint.owner === 'source' } }),
    },
    expectedProperty: 'every step runs without a failed assertion',
  },
  'serve-from-invalid-copy': {
    description: 'a server serves a request from its copy even after the copy was flagged invalid',
    machines: {
      ...standardMachines,
      requestRouting: standardMachines.requestRouting.provide({
        guards: { holdsValidCopy: ({ context }) => context.localCopy !== 'absent' },
      }),
    },
    expectedProperty: 'no request is served from a copy flagged invalid',
  },
  'charge-every-retry': {
    description: 'every retry of a request counts against its bound, as before 27 Nov, even one that learnt the page had moved on: a write racing a page moved away and back runs out of retries with no fault at all',
    machines: {
      ...standardMachines,
      requestRouting: standardMachines.requestRouting.provide({
        guards: { canRetry: ({ context }) => context.retries < context.retriesMax },
      }),
    },
    expectedProperty: 'a client never sees a routing error while no fault has happened',
  },
  'fail-write-while-forward-may-run': {
    description: 'a write whose forward timed out is failed at once, as before 27 Nov, while the forward may still run at the owner',
    machines: {
      ...standardMachines,
      requestRouting: standardMachines.requestRouting.provide({
        guards: { mayFailAtTimeOut: () => true },
      }),
    },
    expectedProperty: 'no acknowledged write is lost',
  },
};
