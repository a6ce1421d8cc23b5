import { pageKeyText } from '../../machines/identifiers.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { nodeStep } from '../../machines/node/node.js';
import { FairSchedule } from '../world/fair-schedule.js';
import { applyRecorded } from '../world/play-actions.js';
import type { Action, World } from '../world/world.js';
import { initialWorld, volumeName } from '../world/world.js';
import type { WorldConfig } from '../world/world-config.js';
import { referenceBound } from '../world/world-config.js';

/**
 * The scenario of a source that dies for good between its destination's
 * commit and its flip (machines/node/dead-source-takeover.ts), shared by its
 * tests and its generated diagram. The move runs in the simulated group
 * until s2, the destination, holds the page valid and durable while s1's
 * table still names s1; s1 then crashes and never comes back. What follows
 * (drain, forget) is membership, which the simulated group does not model:
 * it runs on the nodes of s2 and s3 directly (`exchange`), with s1's
 * messages lost.
 */
export const takeoverConfig: WorldConfig = { ...referenceBound, servers: 3, pages: 1, pieces: 1, writes: 1, reads: 1, moves: 1, crashes: 1, moveKinds: ['unit'], messagesMax: 16 };
export const takeoverPageKey = { volume: volumeName, page: 0 };
export const takeoverPageText = pageKeyText(takeoverPageKey);

export type Nodes = Record<string, NodeState>;

/** The state after the simulated part, the actions that led there, and the move's epoch (the copy's at s2). */
export interface CommittedWithDeadSource {
  readonly world: World;
  readonly actions: readonly Action[];
  readonly nodes: Nodes;
  readonly epoch: number;
}

/** At most this many steps of the fair schedule for each phase of the simulated part. */
const phaseStepsMax = 500;

/** s1 acknowledges a write to block 0, the unit move to s2 commits at s2, and s1 then dies before it flips. */
export function committedWithDeadSource(): CommittedWithDeadSource {
  const actions: Action[] = [];
  let world = initialWorld(takeoverConfig);
  const play = (action: Action): void => {
    world = applyRecorded(world, action);
    actions.push(action);
  };
  const advanceUntil = (reached: (candidate: World) => boolean, phase: string): void => {
    const schedule = new FairSchedule();
    for (let steps = 0; !reached(world); steps += 1) {
      const next = schedule.next(world);
      if (next === undefined || steps >= phaseStepsMax) throw new Error(`the fair schedule did not reach ${phase}`);
      play(next);
    }
  };
  play({ type: 'client.write', server: 0, block: 0 });
  const writeId = world.clients.at(-1)!.id;
  advanceUntil((candidate) => candidate.clients.find((client) => client.id === writeId)?.status === 'ok', 'the write acknowledged');
  play({ type: 'move.start', page: 0, to: 1, kind: 'unit' });
  advanceUntil((candidate) => candidate.servers[1]!.meta.replicas[takeoverPageText]?.status === 'valid', "s2's durable commit");
  // The window: s2 committed durably, s1 has not flipped (its durable route and s2's table still name s1).
  if (world.servers[0]!.meta.routes[takeoverPageText]?.owner !== 's1' || world.servers[1]!.node.routes.get(takeoverPageText)?.owner !== 's1') {
    throw new Error('s1 flipped before the scenario could stop it');
  }
  play({ type: 'crash', server: 0 });
  const record = world.servers[1]!.node.replicas.get(takeoverPageText)?.context.record;
  if (record?.status !== 'valid') throw new Error("s2's copy is not valid");
  return { world, actions, nodes: { s2: world.servers[1]!.node, s3: world.servers[2]!.node }, epoch: record.epoch };
}

/** One step of `exchange`: the input a server took and the effects it returned. */
export interface ExchangeStep {
  readonly at: string;
  readonly input: NodeInput;
  readonly from: string | null;
  readonly effects: readonly NodeEffect[];
}

/** At most this many steps per `exchange`: the messages of a forget settle in a few dozen. */
const exchangeStepsMax = 500;

/**
 * Steps `inputs` at `at`, then delivers every message between the live
 * servers (those to a server not in `nodes` are lost: it is dead) and
 * completes every awaited commit and deletion at once (failing those `fails` picks), until nothing is left.
 * Returns every step in order.
 */
export function exchange(nodes: Nodes, at: string, inputs: readonly NodeInput[], fails: (commit: Extract<NodeEffect, { type: 'meta.commit' }>) => boolean = () => false): ExchangeStep[] {
  const steps: ExchangeStep[] = [];
  const queue: Array<{ to: string; from: string | null; input: NodeInput }> = inputs.map((input) => ({ to: at, from: null, input }));
  while (queue.length > 0) {
    if (steps.length >= exchangeStepsMax) throw new Error(`the exchange did not settle within ${exchangeStepsMax} steps`);
    const { to, from, input } = queue.shift()!;
    const [next, effects] = nodeStep(nodes[to]!, input);
    nodes[to] = next;
    steps.push({ at: to, input, from, effects });
    for (const effect of effects) {
      if (effect.type === 'peer.send' && nodes[effect.to] !== undefined) queue.push({ to: effect.to, from: to, input: { type: 'peer.message', from: to, message: effect.message } });
      if (effect.type === 'meta.commit' && effect.completionId !== null) queue.push({ to, from: null, input: { type: 'io.done', completionId: effect.completionId, ok: !fails(effect) } });
      // A deletion someone waits for (a page declared lost, machines/node/lost-pages.ts) completes too.
      if (effect.type === 'data.delete' && effect.completionId !== undefined) queue.push({ to, from: null, input: { type: 'io.done', completionId: effect.completionId, ok: true } });
    }
  }
  return steps;
}

/** The administrator's change of membership, as an input. */
export function membershipChange(requestId: string, change: Extract<NodeInput, { type: 'admin.changeMembership' }>['change']): NodeInput {
  return { type: 'admin.changeMembership', requestId, change };
}

/** The story the diagram draws: drain s1 and forget it through s3 until the forget goes through (at most `asksMax` asks). */
export function forgetThroughThirdServer(nodes: Nodes, asksMax = 4): ExchangeStep[] {
  const steps = exchange(nodes, 's3', [membershipChange('drain', { kind: 'drain', id: 's1' })]);
  for (let ask = 0; ask < asksMax; ask += 1) {
    const requestId = `forget-${ask}`;
    const asked = exchange(nodes, 's3', [membershipChange(requestId, { kind: 'forget', ids: ['s1'] })]);
    steps.push(...asked);
    if (asked.some((step) => step.effects.some((effect) => effect.type === 'admin.reply' && effect.requestId === requestId && effect.ok))) return steps;
  }
  throw new Error(`s1 not forgotten within ${asksMax} asks`);
}
