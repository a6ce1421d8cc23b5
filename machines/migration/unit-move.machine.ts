import { abandonStates, abandonTransition, moveContextFromInput, moveSetup, armProgressTimer, copyCurrentPiece, flipStates, interruptions, persistPending, recoveryTransitions, routingTableUpdatedState } from './move-setup.js';

/**
 * Unit move of one page from a source to a destination server (the patent's
 * Table 1).
 *
 * Theory of operation. The source owns the page for the whole move and runs
 * this machine. Every stage is entered by persisting its checkpoint
 * (`persisting`), and the stage's routing takes effect only once
 * `stage.persisted` confirms it:
 *
 * 1. notStarted — reads and writes at the source.
 * 2. moving.startMove — the page is in transit: reads at the source, writes at
 *    both sides; the source copies the whole page (`piece.copy`) and waits for
 *    `piece.copied`, which the destination sends once the copy is durable.
 * 3. moving.finishMove — copied: still reads at the source, writes at both.
 * 4. routingTableUpdated — after the destination holds the page durably as
 *    owner (`destination.committed`) and the flip is persisted: reads and
 *    writes at the destination; the source copy is invalid and released.
 *
 * A crash of the source, a failure of the destination or a progress time-out
 * sends the machine to `interrupted`, keeping only the durable checkpoint.
 * `restart` resumes at the table's restart stage: any failure before the copy
 * is finished restarts the whole copy (stage 2, with a new attempt number so
 * that late messages of the old attempt are ignored); a failure after it only
 * completes the flip, which copies nothing again (N/A). A machine rebuilt from
 * the flip's own record (the crash took only the record's removal) goes
 * straight to routingTableUpdated and releases the copy again: the
 * destination committed before the flip was written, and may since have
 * moved the page on, so it is not asked again.
 *
 * The flip hands reads from the source to the destination, so the two copies
 * must then agree on everything the source has served. A failure after the
 * copy can break that: a source crash loses the dual writes still on their way
 * to the destination (which the source may have applied and served), and a
 * power cut on either side loses writes not yet synced there but kept on the
 * other. So the destination commits an attempt only if it took that
 * attempt's copy itself, in its current incarnation; otherwise it answers
 * `destination.stale` and the move copies the page again (a new attempt of
 * stage 2) before it commits. A restart that only completes the flip is the
 * table's N/A; the copy again is the commit's refusal, not the restart.
 *
 * Abandoning (not in the patent; move-setup.ts): while the source alone holds
 * the page's data as clients have it, an administrator may give the move up
 * (`move.abandon`, from `interrupted` or a piece's copy). The source persists
 * that, serves the page alone again at an epoch past the move's, and tells the
 * destination until it has let go of its partial copy (`released`).
 */
const unitFlip = flipStates('unitMove');

export const unitMoveMachine = moveSetup.createMachine({
  id: 'unitMove',
  context: ({ input }) => moveContextFromInput(input),
  initial: 'notStarted',
  states: {
    notStarted: {
      meta: { action: 'Not started' },
      always: recoveryTransitions,
      on: { 'move.begin': { target: 'moving', actions: 'beginFirstAttempt' } },
    },
    moving: {
      initial: 'startMove',
      on: { ...interruptions, ...abandonTransition },
      states: {
        startMove: {
          meta: { action: 'Start move' },
          entry: 'enterStartStage',
          initial: 'persisting',
          states: {
            persisting: {
              entry: persistPending,
              on: { 'stage.persisted': { guard: 'confirmsPending', target: 'copying', actions: 'confirmPending' } },
            },
            copying: {
              entry: [copyCurrentPiece, armProgressTimer],
              on: { 'piece.copied': { guard: 'copiedCurrentPiece', target: '#unitMove.moving.finishMove' } },
            },
          },
        },
        finishMove: {
          meta: { action: 'Finish Move' },
          entry: 'enterFinishStage',
          initial: 'persisting',
          states: {
            persisting: {
              entry: persistPending,
              on: { 'stage.persisted': { guard: 'confirmsPending', target: '#unitMove.moving.committing', actions: 'confirmPending' } },
            },
          },
        },
        ...unitFlip,
        committing: {
          ...unitFlip.committing,
          on: {
            ...unitFlip.committing.on,
            'destination.stale': { guard: 'isCurrentAttempt', target: '#unitMove.moving.startMove', actions: 'beginCopyAgain' },
          },
        },
      },
    },
    interrupted: {
      on: {
        ...abandonTransition,
        restart: [
          { guard: 'resumesWithCopy', target: 'moving.startMove', actions: 'beginNextAttempt' },
          { target: 'moving.committing', actions: 'beginNextAttempt' },
        ],
      },
    },
    ...abandonStates('unitMove'),
    routingTableUpdated: { ...routingTableUpdatedState, meta: { action: 'Routing Table updated' } },
  },
});
