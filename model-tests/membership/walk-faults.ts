import { assertNever, pageKeyOfText } from '../../machines/identifiers.js';
import type { Membership } from '../../machines/membership/membership.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { DurableRecords, MetadataWrite, NodeEffect, NodeInput, Route } from '../../machines/node/node-io.js';
import type { LostClaim, NodeState } from '../../machines/node/node-state.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import type { ReplicaRecord } from '../../machines/replica/replica-record.js';

/**
 * What the membership random walks share (dead-source-takeover-random,
 * declare-lost-random): each server's durable records as a model of its
 * store, its pending commits (durable in order, or skipped when they fail),
 * and the network's faults (a message delivered in any order, lost or
 * duplicated) and timers. The simulated group does not model membership, so
 * these walks run pure nodes over this.
 */
export interface DurableModel {
  readonly routes: Readonly<Record<string, Route>>;
  readonly replicas: Readonly<Record<string, ReplicaRecord>>;
  readonly moves: Readonly<Record<string, DurableRecords['moves'][number]>>;
  readonly membership: Membership | null;
  readonly lostClaim: LostClaim | null;
}

export interface Envelope<S extends string> {
  readonly from: string;
  readonly to: S;
  readonly message: PeerMessage;
}

export interface FaultWalk<S extends string> {
  readonly durable: Map<S, DurableModel>;
  readonly commits: Map<S, Array<{ completionId: string | null; writes: readonly MetadataWrite[] }>>;
  readonly timers: Map<S, string[]>;
  readonly network: Array<Envelope<S>>;
}

/** The faults `playFault` plays: a message delivered, lost or duplicated (by index, modulo), a timer fired. */
export type FaultAction =
  | { kind: 'deliver' | 'drop' | 'duplicate'; index: number }
  | { kind: 'timer'; at: number; index: number };

export type WalkStep<S extends string> = (id: S, input: NodeInput) => void;

/** The store's effect of a commit on the model: routing epochs only grow on disk too (impl/storage/metadata-store.ts). */
export function applyWrites(model: DurableModel, writes: readonly MetadataWrite[]): DurableModel {
  const routes = { ...model.routes };
  const replicas = { ...model.replicas };
  const moves = { ...model.moves };
  let { membership, lostClaim } = model;
  for (const write of writes) {
    const key = 'pageKey' in write ? `${write.pageKey.volume}/${write.pageKey.page}` : '';
    switch (write.kind) {
      case 'route': if ((routes[key]?.epoch ?? 0) <= write.route.epoch) routes[key] = write.route; break;
      case 'replica': replicas[key] = write.record; break;
      case 'move': moves[key] = { pageKey: write.pageKey, input: write.input, checkpoint: write.checkpoint }; break;
      case 'move.delete': delete moves[key]; break;
      case 'membership': if (membership === null || write.membership.epoch >= membership.epoch) membership = write.membership; break;
      case 'lostClaim': lostClaim = write.claim; break;
      case 'volume': break;
      default: assertNever(write, 'metadata write');
    }
  }
  return { routes, replicas, moves, membership, lostClaim };
}

/** Completes `id`'s oldest pending commit: durable if `ok`, skipped by the store if not (later ones still land). */
export function completeCommit<S extends string>(walk: FaultWalk<S>, id: S, ok: boolean, step: WalkStep<S>): void {
  const commit = walk.commits.get(id)!.shift();
  if (commit === undefined) return;
  if (ok) walk.durable.set(id, applyWrites(walk.durable.get(id)!, commit.writes));
  if (commit.completionId !== null) step(id, { type: 'io.done', completionId: commit.completionId, ok });
  else if (!ok) step(id, { type: 'meta.failed', writes: commit.writes });
}

/** Plays a network fault or a timer; `servers[at]` names a timer's server, `inFlightMax` bounds the network. */
export function playFault<S extends string>(walk: FaultWalk<S>, action: FaultAction, servers: readonly S[], inFlightMax: number, step: WalkStep<S>): void {
  const network = walk.network;
  switch (action.kind) {
    case 'deliver': {
      if (network.length === 0) return;
      const [envelope] = network.splice(action.index % network.length, 1);
      step(envelope!.to, { type: 'peer.message', from: envelope!.from, message: envelope!.message });
      return;
    }
    case 'drop':
      if (network.length > 0) network.splice(action.index % network.length, 1);
      return;
    case 'duplicate':
      if (network.length > 0 && network.length < inFlightMax) network.push(network[action.index % network.length]!);
      return;
    case 'timer': {
      const timers = walk.timers.get(servers[action.at]!)!;
      if (timers.length === 0) return;
      const [timerId] = timers.splice(action.index % timers.length, 1);
      step(servers[action.at]!, { type: 'timer.fired', timerId: timerId! });
      return;
    }
    default: assertNever(action, 'fault');
  }
}

/** The durable records a restarted server starts from. */
export function durableRecordsOf(model: DurableModel, volumes: DurableRecords['volumes']): DurableRecords {
  const pageKeyOf = (key: string) => pageKeyOfText(key)!;
  return {
    volumes,
    routes: Object.entries(model.routes).map(([key, route]) => ({ pageKey: pageKeyOf(key), route })),
    replicas: Object.entries(model.replicas).map(([key, record]) => ({ pageKey: pageKeyOf(key), record })),
    moves: Object.values(model.moves),
    membership: model.membership,
    lostClaim: model.lostClaim,
    earlierIncarnations: true,
  };
}

/**
 * Files the effects every walk keeps the same way: a message to a live
 * server (one to a dead server, not in `servers`, is lost), a commit, a
 * timer. Whether it was one of those.
 */
export function fileCommonEffect<S extends string>(walk: FaultWalk<S>, id: S, effect: NodeEffect, servers: readonly S[], inFlightMax: number): boolean {
  switch (effect.type) {
    case 'peer.send':
      if (servers.includes(effect.to as S) && walk.network.length < inFlightMax) walk.network.push({ from: id, to: effect.to as S, message: effect.message });
      return true;
    case 'meta.commit':
      walk.commits.get(id)!.push({ completionId: effect.completionId, writes: effect.writes });
      return true;
    case 'timer.set':
      walk.timers.get(id)!.push(effect.timerId);
      return true;
    default:
      return false;
  }
}

/** A server restarts: its pending commits, timers and the messages on their way to it are lost; it starts from its durable records. */
export function restartFromDurable<S extends string>(walk: FaultWalk<S> & { readonly nodes: Map<S, NodeState> }, id: S, volumes: DurableRecords['volumes'], step: WalkStep<S>): void {
  const before = walk.nodes.get(id)!;
  walk.commits.set(id, []);
  walk.timers.set(id, []);
  walk.network.splice(0, walk.network.length, ...walk.network.filter((envelope) => envelope.to !== id));
  walk.nodes.set(id, emptyNodeState(before.config, before.incarnation + 1));
  step(id, { type: 'node.start', durable: durableRecordsOf(walk.durable.get(id)!, volumes) });
}
