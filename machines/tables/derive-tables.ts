import type { AnyMachineSnapshot } from 'xstate';
import type { Effect } from '../effects.js';
import type { MoveEvent, MoveContext } from '../migration/move-setup.js';
import type { MoveKind } from '../migration/checkpoint.js';
import type { MoveMachine } from '../migration/move-machines.js';
import { owner, readServer, writeServers } from '../migration/queries.js';
import { start, step } from '../step.js';

/**
 * Derives the patent's Tables 1 and 2 by walking a move machine along its
 * happy path, answering each effect as a healthy runtime would, and by
 * crashing and restarting it once at every stage. Nothing here knows the
 * tables: the rows come from the machine's states (each names its action in
 * its `meta`), its queries and its restart transitions, so a change to any
 * of them changes the printed table, and a machine that says something the
 * table cannot say (a state with no action, a restart that neither copies
 * again nor commits, servers outside a piece's source and destination)
 * stops the walk with an error instead of printing a plausible row.
 */
export interface TableRow {
  stage: string;
  restartStage: string;
  destination: string;
  action: string;
  read: string;
  write: string;
}

const serverNames: Record<string, string> = { A: 'A', B: 'B' };
type MoveSnapshot = AnyMachineSnapshot & { context: MoveContext };

export function deriveTable(machine: MoveMachine, kind: MoveKind, pieceCount: number): TableRow[] {
  const input = {
    pageKey: { volume: 'table', page: 0 }, kind, source: 'A', destination: 'B', pieceCount, epoch: 1,
    forwardingPointer: false, progressTimeoutMs: 1000,
  };
  const rows: TableRow[] = [];
  let [snapshot, effects] = start(machine, input) as [MoveSnapshot, Effect[]];
  rows.push(rowFor(machine, snapshot, actionOf(snapshot), restartColumn(machine, snapshot)));
  [snapshot, effects] = step(machine, snapshot as never, { type: 'move.begin' }) as [MoveSnapshot, Effect[]];
  for (let stepCount = 0; snapshot.status === 'active'; stepCount += 1) {
    if (stepCount > 1000) throw new Error('table walk did not finish');
    const persisting = effects.find((effect) => effect.type === 'stage.persist');
    const restart = persisting ? restartColumn(machine, snapshot) : null;
    const action = persisting ? actionOf(snapshot) : null;
    const answer = answerFor(effects);
    if (answer === null) throw new Error(`machine waits in ${JSON.stringify(snapshot.value)} with nothing to answer`);
    [snapshot, effects] = step(machine, snapshot as never, answer) as [MoveSnapshot, Effect[]];
    if (persisting && action !== null && restart !== null) rows.push(rowFor(machine, snapshot, action, restart));
  }
  return rows;
}

/** The answer a healthy runtime gives to the effects of one step. */
function answerFor(effects: readonly Effect[]): MoveEvent | null {
  for (const effect of effects) {
    switch (effect.type) {
      case 'stage.persist': return { type: 'stage.persisted', stage: effect.checkpoint.stage, attempt: effect.checkpoint.attempt };
      case 'piece.copy': return { type: 'piece.copied', piece: effect.piece, attempt: effect.attempt };
      case 'commit.request': return { type: 'destination.committed', attempt: effect.attempt };
      default: break;
    }
  }
  return null;
}

/**
 * Crash the machine while the stage's action is under way, restart it, and
 * see where it resumes: the stage it makes durable first, or "N/A" when it goes
 * straight to the commit (only the flip remains; a Table 1 destination that
 * did not take this attempt's copy then refuses the commit, and the page is
 * copied again from stage 2: that is the commit's answer, not the restart's).
 * Anything else is not a restart the tables describe, and stops the walk.
 */
function restartColumn(machine: MoveMachine, snapshot: MoveSnapshot): string {
  const [crashed] = step(machine, snapshot as never, { type: 'crash' }) as [MoveSnapshot, Effect[]];
  if (!crashed.matches('interrupted')) return 'N/A';
  const [restarted, effects] = step(machine, crashed as never, { type: 'restart' }) as [MoveSnapshot, Effect[]];
  // The stage it makes durable first is where it resumes (the table compares it with the patent's restart stage).
  if (effects.some((effect) => effect.type === 'stage.persist')) return String(restarted.context.pending?.stage);
  if (effects.some((effect) => effect.type === 'commit.request')) return 'N/A';
  throw new Error(`a restart from ${JSON.stringify(snapshot.value)} resumes at ${JSON.stringify(restarted.value)}, neither copying again nor committing`);
}

/** The action the state names in its `meta` (the table's wording); a state without one is a machine the table cannot describe. */
function actionOf(snapshot: MoveSnapshot): string {
  const meta = Object.values(snapshot.getMeta() as Record<string, { action?: string }>).find((entry) => entry.action !== undefined);
  if (meta?.action === undefined) throw new Error(`state ${JSON.stringify(snapshot.value)} names no action in its meta`);
  return meta.action.replace('{piece}', String(snapshot.context.piece + 1));
}

function rowFor(machine: MoveMachine, snapshot: MoveSnapshot, action: string, restart: string): TableRow {
  void machine;
  const context = snapshot.context;
  const pieces = Array.from({ length: context.pieceCount }, (_, piece) => piece);
  return {
    stage: String(context.checkpoint.stage),
    restartStage: restart,
    destination: `Server ${serverNames[owner(context)]}`,
    action,
    read: describeTargets(pieces.map((piece) => [readServer(context, piece)])),
    write: describeTargets(pieces.map((piece) => writeServers(context, piece))),
  };
}

/** Words the patent uses: "Server B for pieces 1 and 2, servers A and B for piece 3, server A for others". */
export function describeTargets(targetsPerPiece: readonly (readonly string[])[]): string {
  const key = (targets: readonly string[]) => targets.join('+');
  const groups = new Map<string, number[]>();
  targetsPerPiece.forEach((targets, piece) => groups.set(key(targets), [...(groups.get(key(targets)) ?? []), piece + 1]));
  const serversText = (targetKey: string) => {
    const servers = targetKey.split('+');
    return servers.length === 1 ? `server ${servers[0]}` : `servers ${servers.join(' and ')}`;
  };
  if (groups.size === 1) return capitalise(serversText([...groups.keys()][0] ?? ''));
  const order = ['B', 'A+B', 'A'];
  // The patent's words cover these three groups only; any other (servers in another order, a third server) is a
  // machine the table cannot describe, not a group to leave out.
  const unknown = [...groups.keys()].filter((targetKey) => !order.includes(targetKey));
  if (unknown.length > 0) throw new Error(`servers ${unknown.join(', ')} are none of the table's groups (${order.join(', ')})`);
  const parts = order.filter((targetKey) => groups.has(targetKey)).map((targetKey) => {
    if (targetKey === 'A') return `${serversText(targetKey)} for others`;
    const pieceNumbers = groups.get(targetKey) ?? [];
    return `${serversText(targetKey)} for ${pieceNumbers.length === 1 ? 'piece' : 'pieces'} ${listText(pieceNumbers)}`;
  });
  return capitalise(parts.join(', '));
}

function listText(numbers: readonly number[]): string {
  if (numbers.length === 1) return String(numbers[0]);
  return `${numbers.slice(0, -1).join(', ')} and ${numbers[numbers.length - 1]}`;
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
