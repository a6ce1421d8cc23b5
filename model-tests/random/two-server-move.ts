import fc from 'fast-check';
import type { MoveKind } from '../../machines/migration/checkpoint.js';
import { checkState, checkTransition } from '../world/properties.js';
import type { Action, World } from '../world/world.js';
import { applyAction, describeAction, enabledActions, initialWorld } from '../world/world.js';
import type { NetworkMode, WorldConfig } from '../world/world-config.js';
import { referenceBound } from '../world/world-config.js';

/**
 * Model-based commands for the machines' core promise (issue 2): one page
 * moves from s1 to s2 while clients write to it, and afterwards s2 holds
 * exactly what the clients wrote.
 *
 * The system under test is the simulated group of two servers; the model is
 * what the clients know: per block, the last write acknowledged to them, and
 * the writes whose outcome they never learnt (their server crashed, or the
 * group answered with an error), which may or may not have taken effect.
 * fast-check generates a command list — writes, deliveries, metadata
 * persists, timers, the move itself, and at most one crash — and shrinks a
 * failing list to the few commands that matter.
 *
 * A client never has two writes to one block in flight at once, so "the last
 * acknowledged write" is well defined: writes to a block are ordered by their
 * acknowledgements. Commands that find nothing to do (no message to deliver,
 * no timer armed) leave the group unchanged, so every command list is valid.
 */
export const moveSource = 0;
export const moveDestination = 1;

export interface TwoServerSetup {
  readonly pieces: number;
  readonly network: NetworkMode;
  readonly forwardingPointer: boolean;
  readonly writes: number;
  readonly crashes: number;
  /** A deliberately broken machine set from explorer/broken-variants.ts, to show the check bites; null = the real machines. */
  readonly variant?: string | null;
}

/** Two moves: the command list starts at most one; the second is the admin's retry of one a crash made the source forget. */
export function twoServerConfig(setup: TwoServerSetup): WorldConfig {
  return {
    ...referenceBound,
    servers: 2, pages: 1, pieces: setup.pieces, writes: setup.writes, reads: 0, moves: 2, crashes: setup.crashes,
    networkFaults: setup.network === 'lossy' || setup.network === 'duplicating' ? 1 : 0, network: setup.network,
    moveKinds: ['unit', 'piecewise'], forwardingPointer: setup.forwardingPointer, messagesMax: 24, variant: setup.variant ?? null,
  };
}

/** What the clients know about the page, kept in step with the replies the group sends. */
export interface ClientModel {
  readonly pieces: number;
  /** Per block: the value of the last acknowledged write (0 = never written). */
  readonly acknowledged: number[];
  /** Per block: writes that may or may not have taken effect. */
  readonly unknown: number[][];
  /** Blocks with a write in flight; a client waits for it before writing the block again. */
  readonly writing: Set<number>;
  readonly down: Set<number>;
  crashesLeft: number;
  writesLeft: number;
  moveStarted: boolean;
  /** Replies already folded into the model, by request id. */
  readonly seen: Set<string>;
  /** Writes issued while the move was under way: the interleavings this test exists for. */
  writesDuringMove: number;
}

/** The group under test, with the described trace of everything done to it. */
export interface GroupUnderTest {
  world: World;
  /** Every action taken, replayable with `npm run check -- --replay` as a trace file. */
  readonly actions: Action[];
  readonly trace: string[];
}

export function initialModel(setup: TwoServerSetup): ClientModel {
  return {
    pieces: setup.pieces, acknowledged: Array<number>(setup.pieces).fill(0), unknown: Array.from({ length: setup.pieces }, () => []),
    writing: new Set(), down: new Set(), crashesLeft: setup.crashes, writesLeft: setup.writes, moveStarted: false, seen: new Set(), writesDuringMove: 0,
  };
}

export function initialGroup(setup: TwoServerSetup): GroupUnderTest {
  return { world: initialWorld(twoServerConfig(setup)), actions: [], trace: [] };
}

export function moveInProgress(world: World): boolean {
  return world.servers.some((server) => Object.keys(server.node.moves).length > 0 || Object.keys(server.meta.moves).length > 0);
}

/** Applies one action, checking the always properties on the way, and folds the replies it produced into the model. */
export function perform(model: ClientModel, group: GroupUnderTest, action: Action): void {
  group.trace.push(describeAction(group.world, action));
  group.actions.push(action);
  const before = group.world;
  try {
    group.world = applyAction(before, action);
  } catch (error) {
    throw new Error(`simulator assertion: ${(error as Error).message}\n${failureTrace(group)}`);
  }
  const violation = checkState(group.world) ?? checkTransition(before, group.world);
  if (violation) throw new Error(`${violation.property}: ${violation.detail}\n${failureTrace(group)}`);
  foldReplies(model, group.world);
}

export function foldReplies(model: ClientModel, world: World): void {
  for (const client of world.clients) {
    if (client.kind !== 'write' || client.status === 'pending' || model.seen.has(client.id)) continue;
    model.seen.add(client.id);
    model.writing.delete(client.block);
    if (client.status === 'ok') model.acknowledged[client.block] = client.value;
    else model.unknown[client.block]?.push(client.value);
  }
}

/** The described trace, numbered by action (marker lines are not numbered), then the replayable trace file. */
export function failureTrace(group: GroupUnderTest): string {
  let count = 0;
  const lines = group.trace.map((line) => (line.startsWith('---') ? `      ${line}` : `${String(++count).padStart(4)}. ${line}`));
  return `${lines.join('\n')}\ntrace file: ${JSON.stringify({ config: group.world.config, actions: group.actions })}`;
}

/** The k-th enabled action of one type, if any is enabled. */
function pick(world: World, type: Action['type'], k: number): Action | undefined {
  const candidates = enabledActions(world).filter((action) => action.type === type);
  return candidates.length === 0 ? undefined : candidates[k % candidates.length];
}

class WriteCommand implements fc.Command<ClientModel, GroupUnderTest> {
  constructor(readonly blockChoice: number, readonly server: number) {}
  check(model: Readonly<ClientModel>): boolean {
    return model.writesLeft > 0 && !model.down.has(this.server) && !model.writing.has(this.blockChoice % model.pieces);
  }
  run(model: ClientModel, group: GroupUnderTest): void {
    const block = this.blockChoice % model.pieces;
    model.writesLeft -= 1;
    model.writing.add(block);
    if (moveInProgress(group.world)) model.writesDuringMove += 1;
    perform(model, group, { type: 'client.write', server: this.server, block });
  }
  toString(): string { return `Write(block ${this.blockChoice} mod pieces via s${this.server + 1})`; }
}

class StartMoveCommand implements fc.Command<ClientModel, GroupUnderTest> {
  constructor(readonly kind: MoveKind) {}
  check(model: Readonly<ClientModel>): boolean { return !model.moveStarted; }
  run(model: ClientModel, group: GroupUnderTest): void {
    const action = enabledActions(group.world).find((candidate) => candidate.type === 'move.start' && candidate.kind === this.kind && candidate.to === moveDestination);
    if (!action) return;
    model.moveStarted = true;
    perform(model, group, action);
  }
  toString(): string { return `StartMove(${this.kind} s1→s2)`; }
}

/** Deliver, drop, duplicate, persist and timer: the k-th enabled action of the type, or nothing. */
class ScheduleCommand implements fc.Command<ClientModel, GroupUnderTest> {
  constructor(readonly type: 'deliver' | 'drop' | 'duplicate' | 'persist' | 'timer', readonly k: number) {}
  check(): boolean { return true; }
  run(model: ClientModel, group: GroupUnderTest): void {
    const action = pick(group.world, this.type, this.k);
    if (action) perform(model, group, action);
  }
  toString(): string { return `${this.type[0]?.toUpperCase()}${this.type.slice(1)}(${this.k})`; }
}

class CrashCommand implements fc.Command<ClientModel, GroupUnderTest> {
  constructor(readonly server: number) {}
  check(model: Readonly<ClientModel>): boolean { return model.crashesLeft > 0 && !model.down.has(this.server); }
  run(model: ClientModel, group: GroupUnderTest): void {
    model.crashesLeft -= 1;
    model.down.add(this.server);
    perform(model, group, { type: 'crash', server: this.server });
  }
  toString(): string { return `Crash(s${this.server + 1})`; }
}

class RestartCommand implements fc.Command<ClientModel, GroupUnderTest> {
  constructor(readonly server: number) {}
  check(model: Readonly<ClientModel>): boolean { return model.down.has(this.server); }
  run(model: ClientModel, group: GroupUnderTest): void {
    model.down.delete(this.server);
    perform(model, group, { type: 'restart', server: this.server });
  }
  toString(): string { return `Restart(s${this.server + 1})`; }
}

const server = fc.integer({ min: 0, max: 1 });
const choice = fc.nat({ max: 7 });

/**
 * The command arbitraries. Delivery is listed several times so that messages
 * flow about as often as new work arrives; otherwise most lists would end
 * with the whole move still in the network.
 */
export function twoServerCommands(maxCommands: number): fc.Arbitrary<Iterable<fc.Command<ClientModel, GroupUnderTest>>> {
  const deliver = choice.map((k) => new ScheduleCommand('deliver', k));
  return fc.commands([
    fc.tuple(fc.nat({ max: 3 }), server).map(([block, via]) => new WriteCommand(block, via)),
    fc.tuple(fc.nat({ max: 3 }), server).map(([block, via]) => new WriteCommand(block, via)),
    fc.constantFrom<MoveKind>('piecewise', 'unit').map((kind) => new StartMoveCommand(kind)),
    deliver, deliver, deliver, deliver,
    server.map((index) => new ScheduleCommand('persist', index)),
    server.map((index) => new ScheduleCommand('persist', index)),
    choice.map((k) => new ScheduleCommand('timer', k)),
    choice.map((k) => new ScheduleCommand('drop', k)),
    choice.map((k) => new ScheduleCommand('duplicate', k)),
    server.map((index) => new CrashCommand(index)),
    server.map((index) => new RestartCommand(index)),
  ], { maxCommands, size: 'max' });
}
