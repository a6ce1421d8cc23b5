import { createTestModel } from 'xstate/graph';
import { describe, expect, it } from 'vitest';
import type { Effect } from '../../machines/effects.js';
import type { MoveInput, MoveKind } from '../../machines/migration/checkpoint.js';
import type { MoveMachine } from '../../machines/migration/move-machines.js';
import type { MoveContext, MoveEvent } from '../../machines/migration/move-setup.js';
import { progressTimerId } from '../../machines/migration/move-setup.js';
import { piecewiseMoveMachine } from '../../machines/migration/piecewise-move.machine.js';
import { readServer, restartStage, stageInProgress, writeServers } from '../../machines/migration/queries.js';
import { finalStage } from '../../machines/migration/stage-numbers.js';
import { unitMoveMachine } from '../../machines/migration/unit-move.machine.js';
import { start, step } from '../../machines/step.js';
import { CoverageRecorder } from './coverage.js';
import { moveEvents as possibleEvents } from './event-alphabets.js';
import { patentTable1, patentTable2ThreePieces } from './patent-tables.js';

type MoveSnapshot = { value: unknown; status: string; context: MoveContext; matches(value: string): boolean };

function inputFor(kind: MoveKind, pieceCount: number): MoveInput {
  return { pageKey: { volume: 'v', page: 0 }, kind, source: 'A', destination: 'B', pieceCount, epoch: 1, forwardingPointer: false, progressTimeoutMs: 100 };
}


/** Bounded abstraction of a snapshot: attempt numbers are left out so crash/restart loops close. */
function serializeMove(snapshot: MoveSnapshot): string {
  const { checkpoint, pending, piece } = snapshot.context;
  return JSON.stringify([snapshot.value, checkpoint.stage, checkpoint.pieceModes, pending?.stage ?? null, piece, checkpoint.commitAsked ?? false, checkpoint.abandoned ?? false]);
}

/**
 * The patent's restart column for the stage whose action a failure
 * interrupts: Table 1 as printed; Table 2 by its pattern for m pieces (start
 * and finish of piece k both restart at start of piece k), which the test
 * below checks against the printed rows.
 */
function patentRestartStage(kind: MoveKind, pieceCount: number, stage: number): string {
  if (kind === 'unit') {
    const row = patentTable1.find((candidate) => candidate.stage === String(stage));
    if (!row) throw new Error(`no patent row for stage ${stage}`);
    return row.restartStage;
  }
  if (stage === 1 || stage === finalStage(kind, pieceCount)) return 'N/A';
  return String(stage % 2 === 0 ? stage : stage - 1);
}

it('the Table 2 restart pattern reproduces the printed restart column', () => {
  for (const row of patentTable2ThreePieces) expect(patentRestartStage('piecewise', 3, Number(row.stage))).toBe(row.restartStage);
});

/** Checks every step of a path against the properties the tables promise. */
function checkPath(machine: MoveMachine, input: MoveInput, events: readonly MoveEvent[]): void {
  let [snapshot, effects] = start(machine, input) as [MoveSnapshot, Effect[]];
  // Whether the destination was ever asked to commit on this path: from then on it may own the page.
  let commitRequested = false;
  for (const event of events) {
    const before = snapshot;
    [snapshot, effects] = step(machine, snapshot as never, event as never) as [MoveSnapshot, Effect[]];
    const context = snapshot.context;
    if (snapshot.matches('abandoning') && !before.matches('abandoning')) {
      // Abandoned only while the source holds every write: no piece served by the destination alone, no commit asked.
      expect(before.context.checkpoint.pieceModes.every((mode) => mode === 'atSource' || mode === 'inTransit')).toBe(true);
      expect(commitRequested).toBe(false);
    }
    if (effects.some((effect) => effect.type === 'commit.request')) commitRequested = true;
    for (let piece = 0; piece < context.pieceCount; piece += 1) {
      // A read is only ever served by a server every acknowledged write reached.
      expect(writeServers(context, piece)).toContain(readServer(context, piece));
    }
    for (const effect of effects) {
      if (effect.type === 'stage.persist') expect(effect.checkpoint).toEqual(context.pending);
      if (effect.type === 'piece.copy') {
        // A piece is copied only once its start stage is durable, so dual writes are already in force.
        expect(context.checkpoint.pieceModes[effect.piece]).toBe('inTransit');
      }
      if (effect.type === 'copy.release') expect(context.checkpoint.owner).toBe('destination');
      if (effect.type === 'copy.reclaim' || effect.type === 'abandon.notify' || effect.type === 'record.forget') {
        // The source serves the whole page alone only once the abandoned record is durable, at an epoch past the move's.
        expect(context.checkpoint.abandoned).toBe(true);
        expect(context.checkpoint.pieceModes.every((mode) => mode === 'atSource')).toBe(true);
      }
      if (effect.type === 'copy.reclaim') expect(effect.epoch).toBe(input.epoch + 2);
    }
    if (event.type === 'restart' && before.matches('interrupted')) {
      // The stage in progress at the failure was the one after the durable stage.
      const interruptedStage = Math.min(before.context.checkpoint.stage + 1, finalStage(input.kind, input.pieceCount));
      const expected = patentRestartStage(input.kind, input.pieceCount, interruptedStage);
      const resumed = restartStage(input.kind, before.context.checkpoint);
      if (expected === 'N/A') {
        expect(snapshot.matches('moving.committing')).toBe(true);
        expect(resumed).toBeNull();
      } else {
        expect(String(context.pending?.stage)).toBe(expected);
        expect(String(resumed)).toBe(expected);
      }
      expect(context.attempt).toBe(before.context.checkpoint.attempt + 1);
    }
    if (snapshot.status === 'done' && context.checkpoint.abandoned === true) {
      expect(snapshot.matches('released')).toBe(true);
      expect(event.type).toBe('destination.released');
    } else if (snapshot.status === 'done') {
      expect(context.checkpoint.owner).toBe('destination');
      expect(context.checkpoint.epoch).toBe(input.epoch + 1);
      expect(context.checkpoint.pieceModes.every((mode) => mode === 'atDestination')).toBe(true);
    }
  }
}

/** The move's input as rebuilt after a crash that came after its flip was durable (and before its record was removed). */
function flipRecoveredInput(input: MoveInput): MoveInput {
  const flip = { stage: finalStage(input.kind, input.pieceCount), attempt: 1, pieceModes: Array(input.pieceCount).fill('atDestination'), epoch: input.epoch + 1, owner: 'destination' as const };
  return { ...input, recovered: flip };
}

const cases: [string, MoveMachine, MoveKind, number][] = [
  ['unit move (Table 1)', unitMoveMachine, 'unit', 1],
  ['piecewise move of 2 pieces (Table 2)', piecewiseMoveMachine, 'piecewise', 2],
  ['piecewise move of 3 pieces (Table 2)', piecewiseMoveMachine, 'piecewise', 3],
];

describe.each(cases)('model-based paths: %s', (_name, machine, kind, pieceCount) => {
  const input = inputFor(kind, pieceCount);
  const model = createTestModel(machine);
  const paths = model.getShortestPaths({ allowDuplicatePaths: true, input, events: (snapshot) => possibleEvents(snapshot as never), serializeState: (snapshot) => serializeMove(snapshot as never), limit: 10_000 });

  it('covers every state and every transition, and every path keeps the tables\' promises', () => {
    const recorder = new CoverageRecorder(machine);
    // Each shortest path to a state, extended by every event possible there, reaches every transition.
    for (const path of paths) {
      const prefix = path.steps.map((pathStep) => pathStep.event as MoveEvent);
      // The events possible where the path's own steps lead: a path's `state` is one snapshot of its serialized class,
      // whose attempt may be another's (attempts are left out of the key), and an event of another attempt is ignored.
      let [reached] = start(machine, input) as [MoveSnapshot, Effect[]];
      for (const event of prefix) if ((event.type as string) !== 'xstate.init') [reached] = step(machine, reached as never, event as never) as [MoveSnapshot, Effect[]];
      for (const event of possibleEvents(reached as never)) {
        checkPath(machine, input, [...prefix, event]);
        recorder.replay(input, [...prefix, event]);
      }
    }
    // A machine rebuilt from a durable checkpoint after a crash starts interrupted.
    const recoveredInput = { ...input, recovered: { stage: 2, attempt: 1, pieceModes: Array(kind === 'unit' ? 1 : pieceCount).fill('atSource').map((mode, piece) => (piece === 0 ? 'inTransit' : mode)), epoch: 1, owner: 'source' as const } };
    recorder.replay(recoveredInput, [{ type: 'restart' }]);
    // ... unless that checkpoint is the flip: it finishes at once.
    recorder.replay(flipRecoveredInput(input), []);
    // ... or an abandoned record: it tells the destination again.
    recorder.replay({ ...input, recovered: { ...recoveredInput.recovered, stage: 1, pieceModes: recoveredInput.recovered.pieceModes.map(() => 'atSource'), abandoned: true } }, []);
    console.log(`${recorder.report()} by ${paths.length} shortest paths`);
    expect(recorder.missingStates()).toEqual([]);
    expect(recorder.missingTransitions()).toEqual([]);
    expect(paths.length).toBeGreaterThanOrEqual(4);
  });

  it('a machine rebuilt from a durable flip finishes at once: it releases the source copy and publishes the route, and asks the destination nothing', () => {
    const [snapshot, effects] = start(machine, flipRecoveredInput(input)) as [MoveSnapshot, Effect[]];
    expect(snapshot.status).toBe('done');
    expect(effects.map((effect) => effect.type)).toEqual(['copy.release', 'routing.publish']);
    expect(effects).toContainEqual({ type: 'routing.publish', pageKey: input.pageKey, owner: 'B', epoch: input.epoch + 1 });
  });

  it('a crash during every stage, then restart, resumes at the table\'s restart stage and the move completes', () => {
    const stagesCrashed = new Set<number>();
    for (let crashAfterSteps = 0; crashAfterSteps < 100; crashAfterSteps += 1) {
      let [snapshot, effects] = step(machine, start(machine, input)[0] as never, { type: 'move.begin' }) as [MoveSnapshot, Effect[]];
      const events: MoveEvent[] = [{ type: 'move.begin' }];
      for (let answered = 0; answered < crashAfterSteps && snapshot.status === 'active'; answered += 1) {
        const answer = healthyAnswer(effects);
        events.push(answer);
        [snapshot, effects] = step(machine, snapshot as never, answer as never) as [MoveSnapshot, Effect[]];
      }
      if (snapshot.status !== 'active') break;
      stagesCrashed.add(stageInProgress(snapshot.context));
      events.push({ type: 'crash' }, { type: 'restart' });
      [snapshot, effects] = step(machine, snapshot as never, { type: 'crash' }) as [MoveSnapshot, Effect[]];
      [snapshot, effects] = step(machine, snapshot as never, { type: 'restart' }) as [MoveSnapshot, Effect[]];
      for (let answered = 0; snapshot.status === 'active'; answered += 1) {
        expect(answered).toBeLessThan(100);
        const answer = healthyAnswer(effects);
        events.push(answer);
        [snapshot, effects] = step(machine, snapshot as never, answer as never) as [MoveSnapshot, Effect[]];
      }
      checkPath(machine, input, events);
    }
    const allActionStages = Array.from({ length: finalStage(kind, pieceCount) - 1 }, (_, index) => index + 2);
    expect([...stagesCrashed].sort((a, b) => a - b)).toEqual(allActionStages);
  });
});

function healthyAnswer(effects: readonly Effect[]): MoveEvent {
  for (const effect of effects) {
    if (effect.type === 'stage.persist') return { type: 'stage.persisted', stage: effect.checkpoint.stage, attempt: effect.checkpoint.attempt };
    if (effect.type === 'piece.copy') return { type: 'piece.copied', piece: effect.piece, attempt: effect.attempt };
    if (effect.type === 'commit.request') return { type: 'destination.committed', attempt: effect.attempt };
  }
  throw new Error(`nothing to answer in ${JSON.stringify(effects)}`);
}
