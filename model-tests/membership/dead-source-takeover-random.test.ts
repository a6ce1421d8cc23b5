import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { MembershipChange } from '../../machines/membership/membership.js';
import { memberOf } from '../../machines/membership/membership.js';
import { copyStanding } from '../../machines/node/copy-standing.js';
import type { DurableRecords, NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { nodeStep } from '../../machines/node/node.js';
import { assertChecked, checkProperty } from '../random/checked-run.js';
import { runCount, runSeed } from '../random/run-seed.js';
import { committedWithDeadSource, takeoverPageText } from './dead-source-takeover-scenario.js';
import type { FaultAction, FaultWalk } from './walk-faults.js';
import { completeCommit as completeFaultWalkCommit, fileCommonEffect, playFault, restartFromDurable } from './walk-faults.js';

/**
 * The dead-source takeover (machines/node/dead-source-takeover.ts) under
 * faults, in random walks. Each walk starts where the scenario leaves the
 * group (s2 committed the move from s1, s1 died before it flipped) and plays
 * random actions on s2 and s3: the administrator's drains and forgets at
 * either, deliveries in any order, lost and duplicated messages, metadata
 * commits that succeed or fail (the store skips a failed one and goes on),
 * time-outs, and crashes (a restart from what is durable: pending commits,
 * timers and messages to it are lost). The simulated group does not model
 * membership, so this walk keeps its own durable records per server.
 *
 * After every step: s2 serves the page as its owner only if its durable
 * route says so, and if any server's record has forgotten s1, s2's durable
 * route names s2 at the move's epoch (a forget never completes with the
 * takeover not durable). At the end, fair rounds (every commit succeeds,
 * every message arrives, every timer fires, the administrator asks again as
 * the CLI does, every server announcing as the runtime does periodically)
 * must complete the forget with both servers routing to s2.
 * Each run prints its seed; replay with `BLOCKSHIFT_SEED=<seed>`.
 */
type Server = 's2' | 's3';
const servers: readonly Server[] = ['s2', 's3'];
const messagesInFlightMax = 24;
const settleRoundsMax = 12;

interface Walk extends FaultWalk<Server> {
  readonly nodes: Map<Server, NodeState>;
  readonly replies: Array<{ at: Server; requestId: string; ok: boolean; reason: string | null }>;
  readonly volumes: DurableRecords['volumes'];
  readonly epoch: number;
  requests: number;
  takeoverSeenMidWalk: boolean;
}

type Action =
  | { kind: 'admin'; at: number; change: 'drain' | 'forget' }
  | FaultAction
  | { kind: 'commit'; at: number; ok: boolean }
  | { kind: 'restart'; at: number };

const actionArbitrary: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('admin' as const), at: fc.nat(1), change: fc.constantFrom('drain' as const, 'forget' as const) }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('deliver' as const), index: fc.nat(1_000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), index: fc.nat(1_000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), index: fc.nat(1_000) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('commit' as const), at: fc.nat(1), ok: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('timer' as const), at: fc.nat(1), index: fc.nat(1_000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), at: fc.nat(1) }) },
);

function newWalk(): Walk {
  const { world, nodes, epoch } = committedWithDeadSource();
  const walk: Walk = {
    nodes: new Map(), durable: new Map(), commits: new Map(), timers: new Map(), network: [], replies: [],
    volumes: [world.volume], epoch, requests: 0, takeoverSeenMidWalk: false,
  };
  for (const [index, id] of [[1, 's2'], [2, 's3']] as const) {
    const simulated = world.servers[index]!;
    walk.nodes.set(id, nodes[id]!);
    walk.durable.set(id, { routes: simulated.meta.routes, replicas: simulated.meta.replicas, moves: simulated.meta.moves, membership: null, lostClaim: null });
    walk.commits.set(id, simulated.pendingMeta.map((commit) => ({ completionId: commit.completionId, writes: commit.writes })));
    walk.timers.set(id, [...simulated.timers]);
  }
  for (const envelope of world.network) {
    if (servers.includes(envelope.from as Server) && servers.includes(envelope.to as Server)) walk.network.push({ from: envelope.from as Server, to: envelope.to as Server, message: envelope.message });
  }
  return walk;
}

function step(walk: Walk, id: Server, input: NodeInput): void {
  const [next, effects] = nodeStep(walk.nodes.get(id)!, input);
  walk.nodes.set(id, next);
  for (const effect of effects) file(walk, id, effect);
}

function file(walk: Walk, id: Server, effect: NodeEffect): void {
  // Messages to s1 are lost: it is dead.
  if (fileCommonEffect(walk, id, effect, servers, messagesInFlightMax)) return;
  switch (effect.type) {
    case 'admin.reply':
      walk.replies.push({ at: id, requestId: effect.requestId, ok: effect.ok, reason: effect.refusal?.reason ?? null });
      return;
    default:
      // No page data moves in this walk: a data effect would be the node acting on a page it should not touch.
      if (effect.type.startsWith('data.')) throw new Error(`${id} issued ${effect.type} during the forget`);
      return;
  }
}

function completeCommit(walk: Walk, id: Server, ok: boolean): void {
  completeFaultWalkCommit(walk, id, ok, (server, input) => step(walk, server, input));
}

function restart(walk: Walk, id: Server): void {
  restartFromDurable(walk, id, walk.volumes, (server, input) => step(walk, server, input));
}

function play(walk: Walk, action: Action): void {
  switch (action.kind) {
    case 'admin': {
      walk.requests += 1;
      const change: MembershipChange = action.change === 'drain' ? { kind: 'drain', id: 's1' } : { kind: 'forget', ids: ['s1'] };
      step(walk, servers[action.at]!, { type: 'admin.changeMembership', requestId: `admin ${walk.requests}`, change });
      return;
    }
    case 'commit': return completeCommit(walk, servers[action.at]!, action.ok);
    case 'restart': return restart(walk, servers[action.at]!);
    default: return playFault(walk, action, servers, messagesInFlightMax, (server, input) => step(walk, server, input));
  }
}

/** The invariants every step keeps (see the top of the file). */
function checkStep(walk: Walk): void {
  const s2Durable = walk.durable.get('s2')!.routes[takeoverPageText];
  const takenOver = s2Durable?.owner === 's2' && s2Durable.epoch === walk.epoch;
  if (copyStanding(walk.nodes.get('s2')!, takeoverPageText) === 'owned') {
    expect(takenOver, `s2 serves ${takeoverPageText} as its owner with its durable route ${JSON.stringify(s2Durable)}`).toBe(true);
    walk.takeoverSeenMidWalk = true;
  }
  for (const id of servers) {
    const record = walk.nodes.get(id)!.membership;
    if (memberOf(record, 's1') === null) expect(takenOver, `${id} has forgotten s1 while s2's durable route is ${JSON.stringify(s2Durable)}`).toBe(true);
  }
}

/** Fair rounds, with the administrator asking at `asker` as the CLI does (a drain when the forget asks for one or names the page). */
function settle(walk: Walk, asker: Server): void {
  for (let round = 0; round < settleRoundsMax; round += 1) {
    if (memberOf(walk.nodes.get(asker)!.membership, 's1') !== null) {
      walk.requests += 1;
      const requestId = `settle ${walk.requests}`;
      step(walk, asker, { type: 'admin.changeMembership', requestId, change: { kind: 'forget', ids: ['s1'] } });
      const reply = walk.replies.find((candidate) => candidate.requestId === requestId);
      if (reply?.reason === 'notDraining' || (reply?.reason === 'stillHolds' && memberOf(walk.nodes.get(asker)!.membership, 's1')?.draining === false)) {
        step(walk, asker, { type: 'admin.changeMembership', requestId: `${requestId} drain`, change: { kind: 'drain', id: 's1' } });
      }
    }
    for (const id of servers) while (walk.commits.get(id)!.length > 0) completeCommit(walk, id, true);
    for (const envelope of walk.network.splice(0)) step(walk, envelope.to, { type: 'peer.message', from: envelope.from, message: envelope.message });
    for (const id of servers) for (const timerId of walk.timers.get(id)!.splice(0)) step(walk, id, { type: 'timer.fired', timerId });
    // The runtime's periodic announcement (every few seconds), which also asks about routes naming non-members.
    for (const id of servers) step(walk, id, { type: 'membership.announce' });
    checkStep(walk);
  }
}

describe('dead-source takeover, random walks', () => {
  it('never lets s2 own the page, nor anyone forget s1, before the takeover is durable; fair rounds complete the forget', () => {
    let midWalk = 0;
    let failedCommits = 0;
    let restarts = 0;
    const property = fc.property(fc.nat(1), fc.array(actionArbitrary, { minLength: 30, maxLength: 120 }), (askerIndex, actions) => {
      const walk = newWalk();
      for (const action of actions) {
        play(walk, action);
        checkStep(walk);
      }
      if (walk.takeoverSeenMidWalk) midWalk += 1;
      if (actions.some((action) => action.kind === 'commit' && !action.ok)) failedCommits += 1;
      if (actions.some((action) => action.kind === 'restart')) restarts += 1;
      settle(walk, servers[askerIndex]!);
      for (const id of servers) {
        expect(memberOf(walk.nodes.get(id)!.membership, 's1'), `${id} forgot s1 in the fair rounds`).toBeNull();
        expect(walk.nodes.get(id)!.routes.get(takeoverPageText), `${id}'s route`).toEqual({ owner: 's2', epoch: walk.epoch });
      }
      expect(walk.durable.get('s2')!.routes[takeoverPageText]).toEqual({ owner: 's2', epoch: walk.epoch });
      expect(copyStanding(walk.nodes.get('s2')!, takeoverPageText)).toBe('owned');
    });
    const numRuns = runCount(300);
    const run = checkProperty('dead-source takeover random walks', property, { numRuns, seed: runSeed(), timeLimitMs: 60_000 });
    console.log(`dead-source takeover random walks: s2 owned the page before the fair rounds in ${midWalk} runs; ${failedCommits} with a failed commit, ${restarts} with a restart`);
    assertChecked(run, numRuns);
    // Not vacuous: the walks reach the takeover on their own, through failures and restarts.
    expect(midWalk).toBeGreaterThan(numRuns / 20);
  });
});
