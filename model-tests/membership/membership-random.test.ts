import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Membership, MembershipChange } from '../../machines/membership/membership.js';
import { bootstrapMembership, isNewerMembership, memberOf } from '../../machines/membership/membership.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { nodeStep } from '../../machines/node/node.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { assertChecked, checkProperty } from '../random/checked-run.js';
import { runCount, runSeed } from '../random/run-seed.js';
import { member, startedNode } from './membership-fixture.js';

/**
 * Random walks of the membership protocol (machines/node/node-membership.ts,
 * member-forget.ts), which the explorer does not cover: administrators'
 * joins, drains, leaves and forgets made at random servers, interleaved with
 * every message delivered, dropped, duplicated or reordered, metadata
 * commits that succeed or fail, retry timers and announcements, servers that
 * crash and restart from what they made durable, and one server that dies
 * for good.
 *
 * The group: s1, s2 and s4 from the start, s3 joined by an administrator
 * before the walk (as `server add` returns once the new server has joined;
 * a drain made at once with the join, on a record that does not name the
 * server yet, may be lost: README, "Limits"). Volume beta's pages are on s1 and s2; s3 and s4
 * hold nothing, so s4 may drain and leave, and s3, once dead, may be
 * forgotten. Checked after every step:
 * - no live server's record lacks s1 or s2 (a server owning pages is never
 *   forgotten, nor leaves);
 * - no step throws (the node's own assertions).
 * Then the walk is completed fairly (every commit succeeds, every message
 * reaches a live server, every timer fires, every server announces), and:
 * - the live members all follow one record;
 * - a server whose drain an administrator was told ok for (by a server still
 *   alive: a change is answered once durable at its maker, so a restart
 *   keeps it, but one whose maker died before telling anyone may be lost
 *   with it) is not active in it. Records merge (membership.ts,
 *   `mergedMembership`), so every change lands whatever else was made at
 *   once; until 27 Nov one record won a tie-break at its epoch and the
 *   loser's maker made its change again on top, which lost a drain with
 *   three changes at once, and a review found a forgotten server brought
 *   back as an active member by a join made again after the forget.
 * At most `adminChangesMax` changes per walk, up to `concurrentChangesMax`
 * at once (the walk settles before each further batch), and the forgets and
 * leaves are asked again one at a time. Each run prints its seed; replay
 * with `BLOCKSHIFT_SEED=<seed> npx vitest run
 * model-tests/membership/membership-random.test.ts`. Bites: with the join of
 * a forgotten server made again, or a forget that ignores the routes, or a
 * forget that also drops the drains its confirmers made, it fails within a
 * few hundred walks (each tried once, 27 Nov); with a merge that keeps the
 * newer record whole (the tie-break without the changes made again), within
 * a few dozen.
 */
const beta: VolumeDefinition = { name: 'beta', pageCount: 4, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1', 's2'] };
const servers = ['s1', 's2', 's3', 's4'] as const;
type Server = typeof servers[number];
/** Bounds every walk: messages in flight past this drop the oldest (a lossy network may). */
const messagesInFlightMax = 200;
/** Administrators' changes per walk. */
const adminChangesMax = 24;
/** Changes made before the walk settles: any number may be made at once, and merge. */
const concurrentChangesMax = 4;
/** Rounds of fair completion before the records must agree. */
const completionRoundsMax = 60;

interface Envelope { readonly from: Server; readonly to: Server; readonly message: PeerMessage }

interface World {
  nodes: Map<Server, NodeState>;
  /** Each server's commits in flight, in order, with the membership record each writes (if any). */
  commits: Map<Server, Array<{ completionId: string; membership: Membership | null }>>;
  /** The newest membership record each server made durable: what it restarts from. */
  durable: Map<Server, Membership>;
  /** Servers restarted since the walk began (a restart forgets the changes a server made and remembers to make again). */
  restarted: Set<Server>;
  timers: Map<Server, string[]>;
  network: Envelope[];
  s3Dead: boolean;
  /** The servers whose record has shown s3 draining. */
  s3DrainedAt: Set<Server>;
  /** The drains an administrator was told ok for: the server drained, by the server that made the change. */
  drainedOk: Array<{ readonly drained: Server; readonly by: Server }>;
  adminChanges: number;
  replies: Array<{ at: Server; requestId: string; ok: boolean; message: string }>;
  /** Forgets and leaves asked, which the fair completion asks again until they are done or refused for good (as the CLI and the drain driver do). */
  intents: Array<{ at: Server; change: MembershipChange; done: boolean }>;
}

type Action =
  | { kind: 'admin'; at: number; change: number }
  | { kind: 'deliver'; index: number }
  | { kind: 'drop'; index: number }
  | { kind: 'duplicate'; index: number }
  | { kind: 'commit'; at: number; ok: boolean }
  | { kind: 'timer'; at: number; index: number }
  | { kind: 'announce'; at: number }
  | { kind: 'kill3' }
  | { kind: 'restart'; at: number };

/** The changes an administrator may ask of a server, by index (some are refused, and must be). */
const changes: ReadonlyArray<(at: Server) => MembershipChange> = [
  () => ({ kind: 'drain', id: 's3' }),
  () => ({ kind: 'drain', id: 's4' }),
  () => ({ kind: 'forget', ids: ['s3'] }),
  () => ({ kind: 'forget', ids: ['s3', 's4'] }),
  () => ({ kind: 'forget', ids: ['s2'] }),
  () => ({ kind: 'drain', id: 's2' }),
  (at) => ({ kind: 'remove', id: at }),
];

const actionArbitrary: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('admin' as const), at: fc.nat(3), change: fc.nat(changes.length - 1) }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('deliver' as const), index: fc.nat(1_000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), index: fc.nat(1_000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), index: fc.nat(1_000) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('commit' as const), at: fc.nat(3), ok: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('timer' as const), at: fc.nat(3), index: fc.nat(1_000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('announce' as const), at: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'kill3' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), at: fc.nat(3) }) },
);

/** The record a server builds from its configuration: s3's names itself, as a server added by `server add` is configured. */
function configured(id: Server): Membership {
  return bootstrapMembership((id === 's3' ? servers : ['s1', 's2', 's4']).map((name) => member(name)));
}

function newWorld(): World {
  const nodes = new Map<Server, NodeState>();
  // s3 starts from its own configuration (itself among the founders), and learns the group when it is added.
  for (const id of servers) nodes.set(id, startedNode(id, [beta], configured(id), configured(id).members.map((entry) => entry.id)));
  return { nodes, commits: new Map(servers.map((id) => [id, []])), durable: new Map(), restarted: new Set(), timers: new Map(servers.map((id) => [id, []])), network: [], s3Dead: false, s3DrainedAt: new Set(), drainedOk: [], adminChanges: 0, replies: [], intents: [] };
}

function isLive(world: World, id: Server): boolean {
  return !(id === 's3' && world.s3Dead);
}

/** Steps `id` with `input` and files its effects; throws what the node throws. */
function step(world: World, id: Server, input: NodeInput): void {
  if (!isLive(world, id)) return;
  const [next, effects] = nodeStep(world.nodes.get(id)!, input);
  world.nodes.set(id, next);
  for (const effect of effects) file(world, id, effect);
}

function file(world: World, id: Server, effect: NodeEffect): void {
  switch (effect.type) {
    case 'peer.send':
      if ((servers as readonly string[]).includes(effect.to)) world.network.push({ from: id, to: effect.to as Server, message: effect.message });
      if (world.network.length > messagesInFlightMax) world.network.shift();
      return;
    case 'meta.commit': {
      const membership = effect.writes.flatMap((write) => (write.kind === 'membership' ? [write.membership] : [])).at(-1) ?? null;
      if (effect.completionId !== null) world.commits.get(id)!.push({ completionId: effect.completionId, membership });
      else if (membership !== null) storeMembership(world, id, membership);
      return;
    }
    case 'timer.set':
      world.timers.get(id)!.push(effect.timerId);
      return;
    case 'admin.reply': {
      world.replies.push({ at: id, requestId: effect.requestId, ok: effect.ok, message: effect.message });
      const drained = /^drain (s\d) /.exec(effect.requestId)?.[1] as Server | undefined;
      if (effect.ok && drained) world.drainedOk.push({ drained, by: id });
      return;
    }
    default:
      return;
  }
}

function play(world: World, action: Action): void {
  switch (action.kind) {
    case 'admin': {
      if (world.adminChanges >= adminChangesMax) return;
      // At most concurrentChangesMax changes are made at once (see the top of the file).
      if (world.adminChanges % concurrentChangesMax === 0 && world.adminChanges > 0) settle(world);
      world.adminChanges += 1;
      const at = servers[action.at]!;
      const change = changes[action.change]!(at);
      const requestId = change.kind === 'drain' ? `drain ${change.id} ${world.adminChanges}` : `admin ${world.adminChanges}`;
      if (change.kind === 'forget' || change.kind === 'remove') world.intents.push({ at, change, done: false });
      step(world, at, { type: 'admin.changeMembership', requestId, change });
      return;
    }
    case 'deliver': {
      if (world.network.length === 0) return;
      const [envelope] = world.network.splice(action.index % world.network.length, 1);
      if (envelope && isLive(world, envelope.from)) step(world, envelope.to, { type: 'peer.message', from: envelope.from, message: envelope.message });
      return;
    }
    case 'drop':
      if (world.network.length > 0) world.network.splice(action.index % world.network.length, 1);
      return;
    case 'duplicate':
      if (world.network.length > 0 && world.network.length < messagesInFlightMax) world.network.push(world.network[action.index % world.network.length]!);
      return;
    case 'commit':
      completeCommit(world, servers[action.at]!, action.ok);
      return;
    case 'restart': {
      // A crash and a restart: what the server made durable stays; everything else (remembered changes, checks in
      // progress, commits in flight, timers) is gone.
      const at = servers[action.at]!;
      if (!isLive(world, at)) return;
      const record = world.durable.get(at) ?? configured(at);
      world.nodes.set(at, startedNode(at, [beta], record, configured(at).members.map((entry) => entry.id)));
      world.commits.set(at, []);
      world.timers.set(at, []);
      world.restarted.add(at);
      return;
    }
    case 'timer': {
      const at = servers[action.at]!;
      const timers = world.timers.get(at)!;
      if (timers.length === 0) return;
      const [timerId] = timers.splice(action.index % timers.length, 1);
      step(world, at, { type: 'timer.fired', timerId: timerId! });
      return;
    }
    case 'announce':
      step(world, servers[action.at]!, { type: 'membership.announce' });
      return;
    case 'kill3':
      world.s3Dead = true;
      world.commits.set('s3', []);
      world.timers.set('s3', []);
      return;
  }
}

/** The invariants every step keeps (see the top of the file). */
function checkStep(world: World): void {
  for (const id of servers) {
    if (!isLive(world, id)) continue;
    const record = world.nodes.get(id)!.membership;
    for (const owner of ['s1', 's2']) expect(memberOf(record, owner), `${id}'s record ${recordText(record)} keeps ${owner}, which owns pages`).not.toBeNull();
    if (memberOf(record, 's3')?.draining) world.s3DrainedAt.add(id);
  }
}

function recordText(record: Membership): string {
  const departed = (record.departed ?? []).map((entry) => `${entry.id}@${entry.generation}`).join(', ');
  return `epoch ${record.epoch} [${record.members.map((entry) => `${entry.id}@${entry.generation ?? 0}${entry.draining ? ' draining' : ''}`).join(', ')}]${departed ? ` departed [${departed}]` : ''}`;
}

/** A membership record committed: kept by the metadata store's rule (impl/storage/metadata-store.ts), not the last written. */
function storeMembership(world: World, id: Server, membership: Membership): void {
  const stored = world.durable.get(id);
  if (!stored || !isNewerMembership(stored, membership)) world.durable.set(id, membership);
}

/** Completes `id`'s oldest commit in flight; a membership record it wrote is durable once it succeeds. */
function completeCommit(world: World, id: Server, ok: boolean): void {
  const commit = world.commits.get(id)!.shift();
  if (commit === undefined) return;
  if (ok && commit.membership !== null) storeMembership(world, id, commit.membership);
  step(world, id, { type: 'io.done', completionId: commit.completionId, ok });
}

/** Fair rounds: every commit succeeds, every message reaches a live server, every timer fires, every server announces. */
function settle(world: World): void {
  for (let round = 0; round < completionRoundsMax; round += 1) {
    for (const id of servers) {
      while (world.commits.get(id)!.length > 0) completeCommit(world, id, true);
    }
    const inFlight = world.network.splice(0);
    for (const envelope of inFlight) if (isLive(world, envelope.from)) step(world, envelope.to, { type: 'peer.message', from: envelope.from, message: envelope.message });
    for (const id of servers) {
      const due = world.timers.get(id)!.splice(0);
      for (const timerId of due) step(world, id, { type: 'timer.fired', timerId });
      step(world, id, { type: 'membership.announce' });
    }
    askIntentsAgain(world, round);
    checkStep(world);
  }
}

/** The first forget or leave not yet done is asked again (one at a time); one refused other than for waiting on confirmations is given up. */
function askIntentsAgain(world: World, round: number): void {
  const index = world.intents.findIndex((intent) => !intent.done && isLive(world, intent.at));
  if (index < 0) return;
  {
    const intent = world.intents[index]!;
    const requestId = `intent ${index} ${round}`;
    step(world, intent.at, { type: 'admin.changeMembership', requestId, change: intent.change });
    const reply = world.replies.find((candidate) => candidate.requestId === requestId);
    if (reply && (reply.ok || !/waiting for/.test(reply.message))) intent.done = true;
    // An answer still on its way (the change is being made durable) comes with a later round's commits.
    if (!reply) intent.done = true;
  }
}

/** Completes the walk fairly, then the live members must follow one record. */
function completeAndCheck(world: World): void {
  settle(world);
  const members = servers.filter((id) => isLive(world, id) && memberOf(world.nodes.get(id)!.membership, id) !== null);
  const records = new Set(members.map((id) => recordText(world.nodes.get(id)!.membership)));
  expect([...records], `the live members ${members.join(', ')} follow one record`).toHaveLength(1);
  const final = world.nodes.get(members[0]!)!.membership;
  // A change whose maker died before the others heard of it goes with it (a lazy record, not a consensus).
  for (const { drained, by } of world.drainedOk) {
    if (isLive(world, by) && memberOf(final, drained)?.draining === false) throw new Error(`${drained}, whose drain ${by} answered ok, is active in the final record ${recordText(final)}`);
  }
}

describe('membership protocol, random walks', () => {
  it('never drops a server that owns pages, never brings a drained server back, and converges', () => {
    let forgetsDone = 0;
    let leavesDone = 0;
    const property = fc.property(fc.nat(3), fc.array(actionArbitrary, { minLength: 20, maxLength: 160 }), (adder, actions) => {
      const world = newWorld();
      // `server add` returns once the new server follows a record naming it: the walk starts from a joined s3.
      step(world, (['s1', 's2', 's4'] as const)[adder % 3]!, { type: 'admin.changeMembership', requestId: 'add-s3', change: { kind: 'add', member: member('s3') } });
      settle(world);
      for (const action of actions) {
        play(world, action);
        checkStep(world);
      }
      completeAndCheck(world);
      const final = world.nodes.get('s1')!.membership;
      if (memberOf(final, 's3') === null && world.s3DrainedAt.size > 0) forgetsDone += 1;
      if (memberOf(final, 's4') === null) leavesDone += 1;
    });
    const numRuns = runCount(400);
    const run = checkProperty('membership random walks', property, { numRuns, seed: runSeed(), timeLimitMs: 90_000 });
    console.log(`membership random walks: s3 gone at the end in ${forgetsDone} runs, s4 gone in ${leavesDone}`);
    assertChecked(run, numRuns);
    // The walks reach the outcomes they are about, so they cannot pass by never getting there.
    expect(forgetsDone).toBeGreaterThan(0);
    expect(leavesDone).toBeGreaterThan(0);
  }, 120_000);
});
