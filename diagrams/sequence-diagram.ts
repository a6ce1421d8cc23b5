import type { SnapshotFrom } from 'xstate';
import type { Effect } from '../machines/effects.js';
import { assert, assertNever } from '../machines/identifiers.js';
import type { MoveCheckpoint, MoveInput } from '../machines/migration/checkpoint.js';
import type { MoveEvent } from '../machines/migration/move-setup.js';
import { piecewiseMoveMachine } from '../machines/migration/piecewise-move.machine.js';
import { restartStage } from '../machines/migration/queries.js';
import { start, step } from '../machines/step.js';
import { generatedHeader } from './state-diagram.js';

/**
 * The mermaid `sequenceDiagram` of one piecewise move (Table 2) of a 2-piece
 * page from A to B, with a crash of A and a restart.
 *
 * Theory of operation. Nothing here is drawn by hand: the move machine is
 * driven with the project's pure step (XState's `initialTransition` and
 * `transition`), every event delivered becomes an arrow into A, and every
 * effect the step returns becomes an arrow out of A (or a note). The runtime
 * is played by a healthy world that answers each request the machine makes,
 * until the machine waits for the durable record of piece 1's finish stage:
 * A crashes right then, so piece 1 has been copied but its move is not yet
 * durable. After `restart` the diagram states where the machine resumed,
 * read from its snapshot, and the run is checked against the table's restart
 * stage (`restartStage`) and must end in `routingTableUpdated`. A changed
 * machine therefore either changes this diagram or makes generation throw.
 *
 * It draws the move machine alone. The node around it adds what the machine
 * does not see: the restart comes from the source's own move-restart timer,
 * and between a piece's copy and its finish stage the node holds the piece's
 * reads and confirms the hand-over with the destination (`piece.handover`).
 * Pieces are numbered from 1, as in the patent's Table 2 and `npm run tables`.
 */
export const crashRestartPieceCount = 2;

/** Bounds the healthy run, so a machine that stopped making progress throws instead of looping. */
const stepCountMax = 50;

type MoveSnapshot = SnapshotFrom<typeof piecewiseMoveMachine>;

const input: MoveInput = {
  pageKey: { volume: 'v', page: 0 }, kind: 'piecewise', source: 'A', destination: 'B',
  pieceCount: crashRestartPieceCount, epoch: 1, forwardingPointer: false, progressTimeoutMs: 100,
};

/** The first lines of a move's sequence diagram: its generated header and the participants every such diagram draws. */
export function moveSequenceHeader(title: string): string[] {
  return [
    generatedHeader(title),
    'sequenceDiagram',
    '  autonumber',
    '  participant Admin',
    '  participant Disk as A durable store',
    '  participant A as A source (piecewiseMove)',
    '  participant B as B destination',
    '  participant Routing as routing tables',
  ];
}

export function crashRestartSequenceText(): string {
  const lines = moveSequenceHeader(`piecewiseMove (a ${crashRestartPieceCount}-piece page moved from A to B, A crashes and restarts)`);
  let [snapshot, effects] = start(piecewiseMoveMachine, input);
  let stepCount = 0;
  // `explain` notes what a step did, between its event and the effects it sent.
  const deliver = (event: MoveEvent, explain?: (next: MoveSnapshot) => string): void => {
    stepCount += 1;
    assert(stepCount <= stepCountMax, `the crash-and-restart path took more than ${stepCountMax} steps`);
    const durableStageBefore = snapshot.context.checkpoint.stage;
    lines.push(`  ${eventArrow(event)}`);
    [snapshot, effects] = step(piecewiseMoveMachine, snapshot, event);
    if (explain !== undefined) lines.push(`  ${explain(snapshot)}`);
    // A stage's routing takes effect when its record is durable, before the effects of the next stage go out.
    if (snapshot.context.checkpoint.stage !== durableStageBefore) {
      lines.push(`  Note over Disk,B: stage ${snapshot.context.checkpoint.stage} in effect (${pieceModesText(snapshot.context.checkpoint)})`);
    }
    for (const effect of effects) lines.push(`  ${effectArrow(effect)}`);
  };

  deliver({ type: 'move.begin' });
  while (!isWaitingForLastFinishStage(snapshot)) {
    assert(snapshot.status === 'active', 'the move finished without reaching the crash point (piece 1 finish stage being persisted)');
    deliver(healthyAnswer(effects));
  }

  // A crash loses the pending record; the durable one decides where the move resumes.
  const durable = snapshot.context.checkpoint;
  lines.push(`  Note over Disk,A: crash during stage ${snapshot.context.pending?.stage} (finish piece ${snapshot.context.piece + 1}): the pending record is lost, durable stage ${durable.stage} is kept`);
  deliver({ type: 'crash' });
  assert(snapshot.matches('interrupted'), `a crash left the move in ${JSON.stringify(snapshot.value)}, not interrupted`);
  deliver({ type: 'restart' }, (next) => {
    const resumed = next.context;
    const tableRestartStage = restartStage('piecewise', durable);
    assert(resumed.pending?.stage === tableRestartStage, `restart resumed at stage ${resumed.pending?.stage}, the table's restart stage is ${tableRestartStage}`);
    assert(durable.pieceModes[resumed.piece] === 'inTransit', `restart resumed piece ${resumed.piece}, which was ${durable.pieceModes[resumed.piece]}, not in transit`);
    return `Note over Disk,B: restart resumes at stage ${resumed.pending.stage}: start piece ${resumed.piece + 1} again, the piece in transit (attempt ${resumed.attempt})`;
  });

  while (snapshot.status === 'active') deliver(healthyAnswer(effects));
  assert(snapshot.matches('routingTableUpdated'), `the move ended in ${JSON.stringify(snapshot.value)}, not routingTableUpdated`);
  lines.push(`  Note over A,B: done: B owns the page at epoch ${snapshot.context.checkpoint.epoch}`);
  return `${lines.join('\n')}\n`;
}

/** The crash point: piece 1 is copied, but the record of its finish stage is not yet durable. */
function isWaitingForLastFinishStage(snapshot: MoveSnapshot): boolean {
  return snapshot.matches({ moving: { finishPiece: 'persisting' } }) && snapshot.context.piece === crashRestartPieceCount - 1;
}

/** A healthy world answers the request among the last step's effects: the record is durable, the piece stored, the commit made. */
export function healthyAnswer(effects: readonly Effect[]): MoveEvent {
  for (const effect of effects) {
    if (effect.type === 'stage.persist') return { type: 'stage.persisted', stage: effect.checkpoint.stage, attempt: effect.checkpoint.attempt };
    if (effect.type === 'piece.copy') return { type: 'piece.copied', piece: effect.piece, attempt: effect.attempt };
    if (effect.type === 'commit.request') return { type: 'destination.committed', attempt: effect.attempt };
  }
  throw new Error(`the move waits, but nothing among its effects asks for an answer: ${JSON.stringify(effects)}`);
}

export function eventArrow(event: MoveEvent): string {
  switch (event.type) {
    case 'move.begin': return 'Admin->>A: move.begin';
    case 'stage.persisted': return `Disk-->>A: stage.persisted stage ${event.stage} (attempt ${event.attempt})`;
    case 'piece.copied': return `B-->>A: piece.copied piece ${event.piece + 1} (attempt ${event.attempt})`;
    case 'destination.committed': return `B-->>A: destination.committed (attempt ${event.attempt})`;
    case 'destination.failed': return `B-->>A: destination.failed (attempt ${event.attempt})`;
    case 'destination.stale': return `B-->>A: destination.stale (attempt ${event.attempt})`;
    case 'timer.fired': return 'A->>A: timer.fired';
    case 'crash': return 'A-xA: crash';
    case 'restart': return 'A->>A: restart (its move-restart timer)';
    case 'move.abandon': return 'Admin->>A: move.abandon';
    case 'destination.released': return `B-->>A: destination.released (attempt ${event.attempt})`;
    default: return assertNever(event, 'move event');
  }
}

export function effectArrow(effect: Effect): string {
  switch (effect.type) {
    case 'stage.persist': return `A->>Disk: stage.persist stage ${effect.checkpoint.stage} (${pieceModesText(effect.checkpoint)})`;
    case 'piece.copy': return `A->>B: piece.copy piece ${effect.piece + 1} of ${effect.pieceCount} (attempt ${effect.attempt})`;
    case 'timer.set': return effect.timerId.startsWith('abandon:') ? `A->>A: timer.set notice again after ${effect.delayMs} ms` : `A->>A: timer.set progress time-out ${effect.delayMs} ms`;
    case 'commit.request': return `A->>B: commit.request epoch ${effect.epoch} (attempt ${effect.attempt})`;
    case 'copy.release': return `A->>Disk: copy.release epoch ${effect.epoch}`;
    case 'routing.publish': return `A->>Routing: routing.publish owner ${effect.owner} epoch ${effect.epoch}`;
    case 'copy.reclaim': return `A->>A: copy.reclaim valid at epoch ${effect.epoch}`;
    case 'abandon.notify': return `A->>B: abandon.notify receiving epoch ${effect.epoch} (attempt ${effect.attempt})`;
    case 'record.forget': return 'A->>Disk: record.forget';
    case 'routing.learn':
    case 'request.serveLocal':
    case 'request.forward':
    case 'request.cancel':
    case 'request.reply':
    case 'replica.persist':
      throw new Error(`a move machine emitted ${effect.type}, which is not a move effect`);
    default: return assertNever(effect, 'effect');
  }
}

export function pieceModesText(checkpoint: MoveCheckpoint): string {
  return checkpoint.pieceModes.map((mode, piece) => `piece ${piece + 1} ${mode}`).join(', ');
}
