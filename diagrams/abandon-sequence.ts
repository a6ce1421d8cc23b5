import type { SnapshotFrom } from 'xstate';
import type { Effect } from '../machines/effects.js';
import { assert } from '../machines/identifiers.js';
import type { MoveInput } from '../machines/migration/checkpoint.js';
import type { MoveEvent } from '../machines/migration/move-setup.js';
import { reclaimEpoch } from '../machines/migration/move-setup.js';
import { piecewiseMoveMachine } from '../machines/migration/piecewise-move.machine.js';
import { start, step } from '../machines/step.js';
import { effectArrow, eventArrow, healthyAnswer, moveSequenceHeader, pieceModesText } from './sequence-diagram.js';

/**
 * The mermaid `sequenceDiagram` of a piecewise move (Table 2) of a 2-piece
 * page from A to B that the administrator abandons after B died (not in the
 * patent; machines/migration/move-setup.ts, "Abandoning").
 *
 * Theory of operation. As the crash-and-restart diagram: the move machine is
 * driven with the project's pure step, every event delivered is an arrow into
 * A and every effect returned an arrow out of it (or a note). A healthy world
 * answers until piece 1 is in transit; B then fails, and the administrator
 * abandons the move from `interrupted`. The run checks that the abandoned
 * record gives every piece back to A, that A serves the page again at the
 * move's epoch + 2, and that the record goes only once B answers. What the
 * node does around the machine (B letting go of its copy) is a note. A
 * changed machine either changes this diagram or makes generation throw.
 */
type MoveSnapshot = SnapshotFrom<typeof piecewiseMoveMachine>;

const pieceCount = 2;
/** Bounds the healthy run, so a machine that stopped making progress throws instead of looping. */
const stepCountMax = 30;

const input: MoveInput = {
  pageKey: { volume: 'v', page: 0 }, kind: 'piecewise', source: 'A', destination: 'B',
  pieceCount, epoch: 1, forwardingPointer: false, progressTimeoutMs: 100,
};

export function abandonSequenceText(): string {
  const lines = moveSequenceHeader(`piecewiseMove (a ${pieceCount}-piece page moved from A to B; B dies with piece 1 in transit and the administrator abandons the move)`);
  let [snapshot, effects] = start(piecewiseMoveMachine, input);
  let stepCount = 0;
  const deliver = (event: MoveEvent): void => {
    stepCount += 1;
    assert(stepCount <= stepCountMax, `the abandon path took more than ${stepCountMax} steps`);
    const durableStageBefore = snapshot.context.checkpoint.stage;
    lines.push(`  ${eventArrow(event)}`);
    [snapshot, effects] = step(piecewiseMoveMachine, snapshot, event) as [MoveSnapshot, Effect[]];
    if (snapshot.context.checkpoint.stage !== durableStageBefore || (event.type === 'stage.persisted' && snapshot.context.checkpoint.abandoned === true)) {
      lines.push(`  Note over Disk,B: stage ${snapshot.context.checkpoint.stage} in effect (${pieceModesText(snapshot.context.checkpoint)})`);
    }
    for (const effect of effects) lines.push(`  ${effectArrow(effect)}`);
  };

  deliver({ type: 'move.begin' });
  // Piece 1's copy is under way (its start stage durable, the copy sent): B dies before it is stored.
  while (!snapshot.matches({ moving: { startPiece: 'copying' } })) deliver(healthyAnswer(effects));
  lines.push('  Note over B: B dies: piece 1 was in transit (written at both sides), so A holds every write');
  deliver({ type: 'destination.failed', attempt: snapshot.context.attempt });
  assert(snapshot.matches('interrupted'), `a failed destination left the move in ${JSON.stringify(snapshot.value)}, not interrupted`);
  lines.push('  Note over A: without an abandon, the move-restart timer would copy piece 1 toward B again, for ever');

  const before = snapshot.context.checkpoint;
  deliver({ type: 'move.abandon' });
  assert(snapshot.matches('abandoning'), `move.abandon from interrupted went to ${JSON.stringify(snapshot.value)}, not abandoning`);
  deliver(healthyAnswer(effects));
  assert(snapshot.matches('abandoned'), `the abandoned record's durability went to ${JSON.stringify(snapshot.value)}, not abandoned`);
  assert(snapshot.context.checkpoint.pieceModes.every((mode) => mode === 'atSource'), 'the abandoned record gives every piece back to the source');
  assert(effects.some((effect) => effect.type === 'copy.reclaim' && effect.epoch === reclaimEpoch(before)), `A serves the page again at epoch ${reclaimEpoch(before)}`);
  lines.push(`  Note over A,Routing: A serves the whole page alone at epoch ${reclaimEpoch(before)}, and B's copy was receiving at epoch ${before.epoch + 1}, which nobody will use`);

  lines.push('  Note over B: B comes back: its receiving copy turns invalid (naming A at the new epoch) and its data is deleted');
  deliver({ type: 'destination.released', attempt: snapshot.context.checkpoint.attempt });
  assert(snapshot.status === 'done' && snapshot.matches('released'), `the move ended in ${JSON.stringify(snapshot.value)}, not released`);
  lines.push(`  Note over A,B: done: A owns the page at epoch ${reclaimEpoch(before)} and no copy of the move is left`);
  return `${lines.join('\n')}\n`;
}
