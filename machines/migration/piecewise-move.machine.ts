import { and } from 'xstate';
import { abandonStates, abandonTransition, moveContextFromInput, moveSetup, armProgressTimer, copyCurrentPiece, flipStates, interruptions, persistPending, recoveryTransitions, routingTableUpdatedState } from './move-setup.js';

/**
 * Piecewise move of one page, piece by piece (the patent's Table 2).
 *
 * Theory of operation. The source owns the page until the flip and runs this
 * machine. Pieces move one at a time; every stage is entered by persisting its
 * checkpoint, and its routing takes effect once `stage.persisted` confirms it:
 *
 * - startPiece k (stage 2k+2): piece k is in transit — reads at the source,
 *   writes at both sides; moved pieces are served by the destination alone,
 *   the rest by the source alone. The source copies piece k and waits for
 *   `piece.copied`, which the destination sends once the piece is durable.
 * - finishPiece k (stage 2k+3): piece k has moved — reads and writes at the
 *   destination, before the routing table flips. Unlike a unit move, a
 *   finished piece is no longer written at the source.
 * - routingTableUpdated (stage 2m+2): the destination holds the page durably
 *   as owner, the flip is persisted, the source copy is invalid and released.
 *
 * A crash, a destination failure or a progress time-out sends the machine to
 * `interrupted` with only the durable checkpoint. `restart` resumes from the
 * piece that was in transit (or, between pieces, the next piece to move), as
 * the patent says: a failure while finishing piece k restarts piece k, never
 * an earlier piece (whose data the destination already holds) and never a
 * later one (which would skip a copy). Once every piece has moved, only the
 * flip remains to be completed. A machine rebuilt from the flip's own record
 * finishes at once, releasing the copy, as a unit move does.
 *
 * Abandoning (not in the patent; move-setup.ts): while the source alone holds
 * the page's data as clients have it, an administrator may give the move up
 * (`move.abandon`, from `interrupted` or a piece's copy). The source persists
 * that, serves the page alone again at an epoch past the move's, and tells the
 * destination until it has let go of its partial copy (`released`).
 */
export const piecewiseMoveMachine = moveSetup.createMachine({
  id: 'piecewiseMove',
  context: ({ input }) => moveContextFromInput(input),
  initial: 'notStarted',
  states: {
    notStarted: {
      meta: { action: 'Not started' },
      always: recoveryTransitions,
      on: { 'move.begin': { target: 'moving', actions: 'beginFirstAttempt' } },
    },
    moving: {
      initial: 'startPiece',
      on: { ...interruptions, ...abandonTransition },
      states: {
        startPiece: {
          meta: { action: 'Start move, piece {piece}' },
          entry: 'enterStartStage',
          initial: 'persisting',
          states: {
            persisting: {
              entry: persistPending,
              on: { 'stage.persisted': { guard: 'confirmsPending', target: 'copying', actions: 'confirmPending' } },
            },
            copying: {
              entry: [copyCurrentPiece, armProgressTimer],
              on: { 'piece.copied': { guard: 'copiedCurrentPiece', target: '#piecewiseMove.moving.finishPiece' } },
            },
          },
        },
        finishPiece: {
          meta: { action: 'Finish move, piece {piece}' },
          entry: 'enterFinishStage',
          initial: 'persisting',
          states: {
            persisting: {
              entry: persistPending,
              on: {
                'stage.persisted': [
                  { guard: and(['confirmsPending', 'hasNextPiece']), target: '#piecewiseMove.moving.startPiece', actions: ['confirmPending', 'advancePiece'] },
                  { guard: 'confirmsPending', target: '#piecewiseMove.moving.committing', actions: 'confirmPending' },
                ],
              },
            },
          },
        },
        ...flipStates('piecewiseMove'),
      },
    },
    interrupted: {
      on: {
        ...abandonTransition,
        restart: [
          { guard: 'resumesWithCopy', target: 'moving.startPiece', actions: 'beginNextAttempt' },
          { target: 'moving.committing', actions: 'beginNextAttempt' },
        ],
      },
    },
    ...abandonStates('piecewiseMove'),
    routingTableUpdated: { ...routingTableUpdatedState, meta: { action: 'Routing Table updated' } },
  },
});
