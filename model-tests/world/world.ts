import type { PageKey, ServerId } from '../../machines/identifiers.js';
import { assert, assertNever, pageKeyOfText, pageKeyText } from '../../machines/identifiers.js';
import type { MoveKind } from '../../machines/migration/checkpoint.js';
import { isUnderWay } from '../../machines/migration/move-machines.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import { standardMachines } from '../../machines/node/node-machines.js';
import { brokenVariants } from '../explorer/broken-variants.js';
import type { DurableRecords, MetadataWrite, NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { cancelledTryKey, emptyNodeState } from '../../machines/node/node-state.js';
import { rememberedValue } from '../../machines/node/remembered-origins.js';
import { initialDurableRecords, isTimerLive, nodeStep } from '../../machines/node/node.js';
import { flushLossReason } from '../../machines/node/flush-barrier.js';
import type { CascadeEvent, CascadeResult } from './server-step-memo.js';
import { envelopeKey, recalledCascade, rememberCascade } from './server-step-memo.js';
import { canonicalServer } from './canonical-objects.js';
import type { ClientBookkeeping } from './client-bookkeeping.js';
import { rememberedClientChange } from './client-bookkeeping.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import type { RegisterState } from './register-check.js';
import { abandon, complete, completeFlush, connectionLost, fail, initialFlushingRegister, initialRegister, initialUnflushedRegister, invoke, invokeFlush, powerCut } from './register-check.js';
import type { WorldConfig } from './world-config.js';
import { receivedDataToken } from '../../machines/node/received-data-token.js';
import { releasedPagesOf } from '../../machines/node/released-pages.js';

/**
 * The simulator: a whole group of server nodes, their disks, the network
 * between them and the clients, as one immutable value. It is the second
 * runtime of the same node step the TCP server runs — it carries out the
 * same effects, with small integers for data — and the only place where
 * faults (crash, drop, duplicate, reorder) are injected.
 *
 * Storage: data I/O completes at once (a process crash keeps written data,
 * as the page cache does under kill -9); a metadata commit that waits for its
 * completion is durable only once the `persist` action runs, so a crash can
 * fall between a checkpoint being asked for and it being durable. A page
 * write fails only at a disk `disk.fail` armed (WorldConfig.dataWriteFailures).
 */
export interface Envelope {
  readonly from: ServerId;
  /**
   * The sender's incarnation. Messages of one incarnation to one server keep their order on an ordered network (one
   * TCP connection); a restarted sender's messages travel on a new connection, so those its earlier incarnation sent
   * (`crashKeepsSent`) may still arrive after them.
   */
  readonly fromIncarnation: number;
  readonly to: ServerId;
  readonly message: PeerMessage;
  readonly data: readonly number[] | null;
}

export interface DurableMeta {
  readonly routes: Readonly<Record<string, { owner: ServerId; epoch: number }>>;
  readonly replicas: Readonly<Record<string, DurableRecords['replicas'][number]['record']>>;
  readonly moves: Readonly<Record<string, DurableRecords['moves'][number]>>;
}

export interface SimServer {
  readonly id: ServerId;
  readonly up: boolean;
  readonly incarnation: number;
  readonly node: NodeState;
  readonly meta: DurableMeta;
  readonly pendingMeta: ReadonlyArray<{ completionId: string | null; writes: readonly MetadataWrite[] }>;
  readonly data: Readonly<Record<string, readonly number[]>>;
  /** What a power cut leaves of `data`: written with FUA or synced since. Kept only in power-loss mode. */
  readonly durableData: Readonly<Record<string, readonly number[]>>;
  readonly tokens: Readonly<Record<string, readonly number[]>>;
  readonly timers: readonly string[];
  /** Its disk fails the next page-data write (`disk.fail`, WorldConfig.dataWriteFailures); a crash clears it. */
  readonly diskFailsNext: boolean;
}

export interface ClientOperation {
  readonly id: string;
  readonly server: ServerId;
  readonly kind: 'read' | 'write' | 'flush';
  /** A FLUSH's is -1: it concerns every block. */
  readonly block: number;
  readonly value: number;
  readonly status: 'pending' | 'ok' | 'error' | 'info';
  readonly result: number | null;
}

/** Things that happened at least once on the way to a state: the goals a search must reach. */
export interface Sightings {
  readonly moveCompleted: boolean;
  readonly dualWriteLanded: boolean;
  readonly staleRetry: boolean;
  readonly pointerForwarded: boolean;
  /** Stages in progress when a crash hit a server taking part in a move. */
  readonly crashedAtStages: readonly number[];
  /** Of those, the stages after which the move still completed. */
  readonly completedAfterCrashAtStages: readonly number[];
  /** A FLUSH answered `ok` after some write had been acknowledged. */
  readonly flushSucceeded?: boolean;
  /** A FLUSH failed because a power cut may have taken a write it covers. */
  readonly flushLossReported?: boolean;
  /** An abandoned move's destination let go of the partial copy it had received. */
  readonly abandonedCopyReleased?: boolean;
  /** A forwarded write arrived after its sender had cancelled it, and did not run. */
  readonly lateCancelledForwardRefused?: boolean;
  /** A page-data write failed at a disk armed to fail it (`disk.fail`). */
  readonly dataWriteFailed?: boolean;
}

export interface World {
  readonly config: WorldConfig;
  readonly volume: VolumeDefinition;
  readonly servers: readonly SimServer[];
  readonly network: readonly Envelope[];
  readonly clients: readonly ClientOperation[];
  readonly registers: readonly RegisterState[];
  readonly budgets: Budgets;
  readonly sightings: Sightings;
  /** The first property violation found on the way to this state, if any. */
  readonly violation: string | null;
}

export interface Budgets {
  readonly writes: number; readonly reads: number; readonly flushes: number; readonly moves: number; readonly crashes: number; readonly networkFaults: number; readonly commitFailures: number;
  /** Page-data writes that may still fail: spent when `disk.fail` arms a server, so an armed server holds a spent unit. */
  readonly dataWriteFailures: number;
  readonly abandons: number;
  /** Time-outs that may still fire while the group is not quiet (WorldConfig.earlyTimersMax; Infinity when unbounded, 0 when timers wait for quiet). */
  readonly earlyTimers: number;
}

/**
 * Budgets are few distinct values shared by millions of worlds; each is
 * kept once, so the fingerprint's per-object cache serialises it once
 * (bounded: the budgets of one configuration are a product of small ranges).
 */
const budgetsByValue = new Map<string, Budgets>();

function budgetsOf(budgets: Budgets): Budgets {
  const key = `${budgets.writes}|${budgets.reads}|${budgets.flushes}|${budgets.moves}|${budgets.crashes}|${budgets.networkFaults}|${budgets.commitFailures}|${budgets.dataWriteFailures}|${budgets.earlyTimers}|${budgets.abandons}`;
  const known = budgetsByValue.get(key);
  if (known) return known;
  budgetsByValue.set(key, budgets);
  return budgets;
}

/** The budgets with one unit of `kind` spent. */
function spend(budgets: Budgets, kind: keyof Budgets): Budgets {
  return budgetsOf({ ...budgets, [kind]: budgets[kind] - 1 });
}

export type Action =
  | { type: 'client.write'; server: number; block: number }
  | { type: 'client.read'; server: number; block: number }
  | { type: 'client.flush'; server: number }
  | { type: 'move.start'; page: number; to: number; kind: MoveKind }
  /** The administrator abandons the page's move at its source (`server`). */
  | { type: 'move.abandon'; page: number; server: number }
  | { type: 'deliver'; index: number }
  | { type: 'drop'; index: number }
  | { type: 'duplicate'; index: number }
  | { type: 'persist'; server: number }
  /** The server's first pending metadata commit fails: the store skips it, later ones still land (impl/storage/metadata-store.ts). */
  | { type: 'persist.fail'; server: number }
  /** The server's next page-data write fails (EIO, ENOSPC): its disk is armed to fail it, and the page is left as it was. */
  | { type: 'disk.fail'; server: number }
  | { type: 'timer'; server: number; timerId: string }
  | { type: 'crash'; server: number }
  | { type: 'restart'; server: number };

export const volumeName = 'vol';

/** The model's clients have one connection to each server. */
export function clientConnectionOf(server: ServerId): string {
  return `client@${server}`;
}

export function serverName(index: number): ServerId {
  return `s${index + 1}`;
}

/** Clients write without FUA under power cuts: acknowledged writes may be lost, never resurrected. */
function unflushedWrites(config: WorldConfig): boolean {
  return config.powerLoss === true && config.unflushedWrites === true;
}

/** Clients also FLUSH (only with unflushed writes): a FLUSH answered `ok` makes the writes it covers durable. */
function flushingClients(config: WorldConfig): boolean {
  return unflushedWrites(config) && (config.flushes ?? 0) > 0;
}

function initialRegisterOf(config: WorldConfig): RegisterState {
  return flushingClients(config) ? initialFlushingRegister : unflushedWrites(config) ? initialUnflushedRegister : initialRegister;
}

export function initialWorld(config: WorldConfig): World {
  const group = Array.from({ length: config.servers }, (_, index) => serverName(index));
  // Pages start on the first servers; the last server starts empty so that moves have somewhere to go.
  const volume: VolumeDefinition = {
    name: volumeName, pageCount: config.pages, pageSizeBlocks: config.pieces, blockSizeBytes: 512, piecesPerPage: config.pieces,
    servers: group.slice(0, Math.max(1, Math.min(config.pages, config.servers - 1))),
  };
  const servers = group.map((id) => {
    const durable = initialDurableRecords([volume], id);
    const meta: DurableMeta = {
      routes: Object.fromEntries(durable.routes.map(({ pageKey, route }) => [pageKeyText(pageKey), route])),
      replicas: Object.fromEntries(durable.replicas.map(({ pageKey, record }) => [pageKeyText(pageKey), record])),
      moves: {},
    };
    const machines = config.variant === null ? standardMachines : brokenVariants[config.variant]?.machines;
    assert(machines, `unknown variant ${config.variant}`);
    const nodeConfig = {
      ...defaultNodeConfig(id, group), forwardingPointer: config.forwardingPointer, peerRetriesMax: 2, routingRetriesMax: 3, hopCountMax: 3, machines,
      ...(config.copyChunkBlocks === undefined ? {} : { copyChunkBytesMax: config.copyChunkBlocks * volume.blockSizeBytes }),
    };
    const server: SimServer = { id, up: true, incarnation: 0, node: emptyNodeState(nodeConfig, 0), meta, pendingMeta: [], data: {}, durableData: {}, tokens: {}, timers: [], diskFailsNext: false };
    return server;
  });
  let world: World = {
    config, volume, servers, network: [], clients: [], registers: Array.from({ length: config.pages * config.pieces }, () => initialRegisterOf(config)),
    budgets: budgetsOf({
      writes: config.writes, reads: config.reads, flushes: flushingClients(config) ? config.flushes ?? 0 : 0, moves: config.moves, crashes: config.crashes, networkFaults: config.networkFaults,
      commitFailures: config.commitFailures ?? 0, dataWriteFailures: config.dataWriteFailures ?? 0, earlyTimers: config.timersOnlyWhenQuiet ? 0 : config.earlyTimersMax ?? Number.POSITIVE_INFINITY,
      abandons: config.abandons ?? 0,
    }),
    sightings: { moveCompleted: false, dualWriteLanded: false, staleRetry: false, pointerForwarded: false, crashedAtStages: [], completedAfterCrashAtStages: [] },
    violation: null,
  };
  for (let index = 0; index < servers.length; index += 1) world = startServer(world, index, 0);
  return world;
}

function durableRecordsOf(world: World, server: SimServer): DurableRecords {
  const parse = (key: string): PageKey => {
    const slash = key.lastIndexOf('/');
    return { volume: key.slice(0, slash), page: Number(key.slice(slash + 1)) };
  };
  return {
    volumes: [world.volume],
    routes: Object.entries(server.meta.routes).map(([key, route]) => ({ pageKey: parse(key), route })),
    replicas: Object.entries(server.meta.replicas).map(([key, record]) => ({ pageKey: parse(key), record })),
    moves: Object.values(server.meta.moves),
  };
}

/**
 * Starts server `index` from its durable records (`incarnationIncrement` 1:
 * a restart after a crash). The start depends on the server's durable state
 * and the fixed volume alone, so it is remembered per server object like
 * any other cascade: with crashes remembered too (see crashedServer), a
 * restarted server is one shared object and the cascades after it hit.
 */
function startServer(world: World, index: number, incarnationIncrement: 0 | 1): World {
  return runNode(world, index, incarnationIncrement === 0 ? 'start|0' : 'start|1', startNode, incarnationIncrement);
}

function startNode(before: SimServer, world: World, incarnationIncrement: 0 | 1): PreparedCascade {
  const incarnation = before.incarnation + incarnationIncrement;
  const server: SimServer = { ...before, incarnation, up: true, node: emptyNodeState(before.node.config, incarnation), pendingMeta: [], tokens: {}, timers: [] };
  // In power-loss mode every crash is a power cut that may lose unsynced writes, so each restart raises the loss epoch
  // (the TCP runtime raises it only when the previous run did not end cleanly and the machine lost power, see README).
  const lossEpoch = world.config.powerLoss ? incarnation : 0;
  const durable = { ...durableRecordsOf(world, before), lossEpoch, earlierIncarnations: incarnation > 0 };
  // The runtime deletes the files of released copies before it serves (impl/storage/released-page-sweep.ts).
  const released = releasedPagesOf(durable, Object.keys(before.data).map(pageKeyOfText).filter((pageKey): pageKey is PageKey => pageKey !== null));
  if (released.length > 0) {
    const data = { ...server.data };
    const durableData = { ...server.durableData };
    for (const pageKey of released) {
      delete data[pageKeyText(pageKey)];
      delete durableData[pageKeyText(pageKey)];
    }
    return { server: { ...server, data, durableData }, input: { type: 'node.start', durable } };
  }
  return { server, input: { type: 'node.start', durable } };
}

function replaceServer(world: World, index: number, server: SimServer): World {
  // The fingerprint leaves server names out and tells servers apart by place (fingerprint.ts): a server keeps its place.
  assert(server.id === world.servers[index]?.id, 'a server keeps its place among the servers');
  const servers = world.servers.slice();
  servers[index] = server;
  return { ...world, servers };
}

function indexOf(world: World, id: ServerId): number {
  const { servers } = world;
  for (let index = 0; index < servers.length; index += 1) if ((servers[index] as SimServer).id === id) return index;
  throw new Error(`assertion failed: server ${id} exists`);
}

/**
 * Runs one action's cascade on server `index` (see server-step-memo.ts):
 * `start` adjusts the server for the action and names the node's first
 * input, the node steps on it and on every I/O completion its effects feed
 * back, and the cascade's events are replayed on the world. `key` names the
 * action exactly (null: not remembered); the cascade is a function of the
 * server, the action and the fixed configuration, so a remembered one is
 * reused as it is, and `start` runs only when it is not: a module-level
 * function with its `argument`, so a remembered cascade allocates no
 * closure and no input.
 */
interface PreparedCascade {
  readonly server: SimServer;
  readonly input: NodeInput;
}

type CascadeStart<A> = (server: SimServer, world: World, argument: A) => PreparedCascade;

function runNode<A>(world: World, index: number, key: string | null, start: CascadeStart<A>, argument: A): World {
  const server = world.servers[index];
  assert(server, 'server exists');
  let result = key === null ? undefined : recalledCascade(server, world.config, key);
  if (result === undefined) {
    const prepared = start(server, world, argument);
    result = rememberCascade(server, world.config, key, runCascade(world, prepared.server, prepared.input));
  }
  return replayEvents(replaceServer(world, index, result.server), result.events);
}

interface Cascade {
  server: SimServer;
  readonly events: CascadeEvent[];
}

/**
 * Test hook: sees every node step the simulator takes (the state it starts
 * from, the input, the state and effects it returns). The nodeStepMany
 * differential test (model-tests/node/node-step-many.test.ts) records runs of
 * consecutive steps with it; it is null otherwise.
 */
export const nodeStepObserver: { current: ((before: NodeState, input: NodeInput, after: NodeState, effects: readonly NodeEffect[]) => void) | null } = { current: null };

/** Feeds one input to a node and carries out its effects, feeding I/O completions back at once. Reads only `world`'s configuration. */
function runCascade(world: World, start: SimServer, input: NodeInput): CascadeResult {
  const cascade: Cascade = { server: start, events: [] };
  const inputs: NodeInput[] = [input];
  for (let processed = 0; inputs.length > 0; processed += 1) {
    assert(processed < 10_000, 'a node step cascade is bounded');
    if (!cascade.server.up) return cascade;
    const input = inputs.shift() as NodeInput;
    const [node, effects] = nodeStep(cascade.server.node, input);
    nodeStepObserver.current?.(cascade.server.node, input, node, effects);
    if (node !== cascade.server.node) cascade.server = { ...cascade.server, node };
    for (const effect of effects) execute(world, cascade, effect, inputs);
  }
  // Timers of finished work are cancelled, as a runtime does; they would change nothing if they fired.
  const settled = cascade.server;
  if (settled.timers.some((timerId) => !isTimerLive(settled.node, timerId))) {
    cascade.server = { ...settled, timers: [...new Set(settled.timers.filter((timerId) => isTimerLive(settled.node, timerId)))] };
  }
  return cascade;
}

/**
 * Carries out the world-level part of a cascade, in the order it happened.
 * Sent envelopes touch only the network and no other event reads it, so
 * they are appended together, in order, with one new network array.
 */
function replayEvents(world: World, events: readonly CascadeEvent[]): World {
  if (events.length === 0) return world;
  let next = world;
  const sent: Envelope[] = [];
  for (const event of events) {
    switch (event.kind) {
      case 'send': sent.push(event.envelope); break;
      case 'reply': next = noteFlushSightings(completeClient(next, event.requestId, event.ok, event.value, event.lossReported), event); break;
      case 'violation': next = violate(next, event.reason); break;
      // Judged here, not in the cascade: whether a fault has happened is the world's, not the server's, and a cascade
      // is remembered per server state and replayed in every world that holds it.
      case 'routingError':
        if (!next.config.routingErrorsAllowed && isFaultFree(next)) next = violate(next, `${event.server} answered its client ${event.requestId} with a routing error, no fault having happened: ${event.reason}`);
        break;
      case 'dataWriteFailed':
        if (!next.sightings.dataWriteFailed) next = { ...next, sightings: { ...next.sightings, dataWriteFailed: true } };
        break;
      case 'abandonedCopyReleased':
        if (!next.sightings.abandonedCopyReleased) next = { ...next, sightings: { ...next.sightings, abandonedCopyReleased: true } };
        break;
      case 'moveCompleted': {
        // A sighting already recorded leaves the same object (the fingerprint caches per object).
        const sightings = next.sightings;
        const completedAfterCrashAtStages = [...new Set([...sightings.completedAfterCrashAtStages, ...sightings.crashedAtStages])].sort((a, b) => a - b);
        if (sightings.moveCompleted && completedAfterCrashAtStages.length === sightings.completedAfterCrashAtStages.length) break;
        next = { ...next, sightings: { ...sightings, moveCompleted: true, completedAfterCrashAtStages } };
        break;
      }
      default: assertNever(event, 'cascade event');
    }
  }
  return sent.length === 0 ? next : { ...next, network: [...next.network, ...sent] };
}

function execute(world: World, cascade: Cascade, effect: NodeEffect, inputs: NodeInput[]): void {
  const server = cascade.server;
  const update = (changes: Partial<SimServer>) => { cascade.server = { ...server, ...changes }; };
  const violation = (reason: string) => { cascade.events.push({ kind: 'violation', reason }); };
  switch (effect.type) {
    case 'peer.send': {
      const data = messageDataToken(effect.message);
      const envelope: Envelope = { from: server.id, fromIncarnation: server.incarnation, to: effect.to, message: effect.message, data: data ? server.tokens[data] ?? null : null };
      if (effect.message.type === 'request.forward' && effect.message.hopCount > server.node.config.hopCountMax) {
        return violation(`forwarding loop: request ${effect.message.requestId} took ${effect.message.hopCount} hops`);
      }
      cascade.events.push({ kind: 'send', envelope });
      return;
    }
    case 'client.reply': {
      const lossReported = effect.outcome.status === 'error' && effect.outcome.reason.startsWith(flushLossReason);
      if (effect.outcome.status === 'error' && routingFailureReasons.includes(effect.outcome.reason)) {
        cascade.events.push({ kind: 'routingError', server: server.id, requestId: effect.requestId, reason: effect.outcome.reason });
      }
      cascade.events.push({ kind: 'reply', requestId: effect.requestId, ok: effect.outcome.status === 'ok', value: effect.dataToken ? server.tokens[effect.dataToken]?.[0] ?? null : null, lossReported });
      // The client's write payload is let go with the reply, as the TCP runtime lets it go (server-runtime.ts).
      const clientToken = `client:${effect.requestId}`;
      if (server.tokens[clientToken] === undefined) return;
      const tokens = { ...server.tokens };
      delete tokens[clientToken];
      return update({ tokens });
    }
    case 'admin.reply': return;
    case 'data.read': {
      const key = pageKeyText(effect.pageKey);
      if (server.meta.replicas[key]?.status === 'invalid' || server.node.replicas.get(key)?.context.record?.status === 'invalid') {
        violation(`${server.id} read ${key} from a copy flagged invalid`);
      }
      const page = server.data[key] ?? [];
      const values = Array.from({ length: effect.lengthBlocks }, (_, offset) => page[effect.offsetBlocks + offset] ?? 0);
      inputs.push({ type: 'io.done', completionId: effect.completionId, ok: true });
      return update({ tokens: { ...server.tokens, [effect.intoToken]: values } });
    }
    case 'data.write': {
      const key = pageKeyText(effect.pageKey);
      if (server.node.replicas.get(key)?.context.record?.status === 'invalid') violation(`${server.id} wrote ${key} into a copy flagged invalid`);
      const source = server.tokens[effect.fromToken];
      assert(source, `token ${effect.fromToken} holds data`);
      if (server.diskFailsNext) {
        // The armed disk fails this write (EIO): the page keeps what it held, the node hears the failure.
        inputs.push({ type: 'io.done', completionId: effect.completionId, ok: false });
        cascade.events.push({ kind: 'dataWriteFailed' });
        return update({ diskFailsNext: false });
      }
      const page = (server.data[key] ?? Array<number>(world.volume.pageSizeBlocks).fill(0)).slice();
      for (let offset = 0; offset < effect.lengthBlocks; offset += 1) page[effect.offsetBlocks + offset] = source[effect.tokenOffsetBlocks + offset] ?? 0;
      inputs.push({ type: 'io.done', completionId: effect.completionId, ok: true });
      if (!world.config.powerLoss || !effect.durable) return update({ data: { ...server.data, [key]: page } });
      const durablePage = (server.durableData[key] ?? Array<number>(world.volume.pageSizeBlocks).fill(0)).slice();
      for (let offset = 0; offset < effect.lengthBlocks; offset += 1) durablePage[effect.offsetBlocks + offset] = page[effect.offsetBlocks + offset] ?? 0;
      return update({ data: { ...server.data, [key]: page }, durableData: { ...server.durableData, [key]: durablePage } });
    }
    case 'data.sync': {
      inputs.push({ type: 'io.done', completionId: effect.completionId, ok: true });
      if (!world.config.powerLoss) return;
      if (effect.pageKey === null) return update({ durableData: { ...server.data } });
      const key = pageKeyText(effect.pageKey);
      const page = server.data[key];
      return page ? update({ durableData: { ...server.durableData, [key]: page } }) : undefined;
    }
    case 'data.delete': {
      // The source releases its copy only once the flip is durable: the move is complete. (An abandoned move's
      // destination lets go of its partial copy too.)
      const data = { ...server.data };
      delete data[pageKeyText(effect.pageKey)];
      const durableData = { ...server.durableData };
      delete durableData[pageKeyText(effect.pageKey)];
      if (effect.reason !== 'declaredLost') cascade.events.push({ kind: effect.reason === 'moved' ? 'moveCompleted' : 'abandonedCopyReleased' });
      if (effect.completionId !== undefined) inputs.push({ type: 'io.done', completionId: effect.completionId, ok: true });
      return update({ data, durableData });
    }
    case 'token.release': {
      const tokens = { ...server.tokens };
      delete tokens[effect.token];
      return update({ tokens });
    }
    case 'meta.commit':
      // A commit nobody waits for is durable at once (a crash never takes it) unless the world lets a crash take such
      // commits or lets commits fail (then any of them may; decided by the configuration alone, which the memo of server
      // cascades keys on, not by the budget left); but never ahead of an earlier commit still pending: a store makes
      // commits durable in order.
      if (effect.completionId === null && server.pendingMeta.length === 0 && world.config.unawaitedCommitsLost !== true && (world.config.commitFailures ?? 0) === 0) {
        return update({ meta: applyMeta(server.meta, effect.writes) });
      }
      return update({ pendingMeta: [...server.pendingMeta, { completionId: effect.completionId, writes: effect.writes }] });
    case 'timer.set': return update({ timers: [...server.timers, effect.timerId] });
    case 'trace': return;
    case 'membership.changed': return;
    default: return assertNever(effect, 'node effect');
  }
}

function messageDataToken(message: PeerMessage): string | null {
  return 'dataToken' in message ? message.dataToken : null;
}

function applyMeta(meta: DurableMeta, writes: readonly MetadataWrite[]): DurableMeta {
  const routes = { ...meta.routes };
  const replicas = { ...meta.replicas };
  const moves = { ...meta.moves };
  for (const write of writes) {
    switch (write.kind) {
      case 'route': {
        // Routing epochs only grow on disk too (impl/storage/metadata-store.ts): a late push may follow a pending flip.
        const key = pageKeyText(write.pageKey);
        if ((routes[key]?.epoch ?? 0) <= write.route.epoch) routes[key] = write.route;
        break;
      }
      case 'replica': replicas[pageKeyText(write.pageKey)] = write.record; break;
      case 'move': moves[pageKeyText(write.pageKey)] = { pageKey: write.pageKey, input: write.input, checkpoint: write.checkpoint }; break;
      case 'move.delete': delete moves[pageKeyText(write.pageKey)]; break;
      case 'volume': break;
      case 'membership': break;
      case 'lostClaim': break;
      default: assertNever(write, 'metadata write');
    }
  }
  return { routes, replicas, moves };
}

function completeClient(world: World, requestId: string, ok: boolean, value: number | null, lossReported: boolean): World {
  const change = rememberedClientChange(world.clients, world.registers, `reply|${requestId}|${ok}|${value}|${lossReported}`, () => answerClient(world.clients, world.registers, requestId, ok, value, lossReported));
  const next = change.clients === world.clients && change.registers === world.registers ? world : { ...world, clients: change.clients, registers: change.registers };
  return change.violation === null ? next : violate(next, change.violation);
}

/** The FLUSH goals: one answered `ok` while it covered a write, and one that reported a possible loss. */
function noteFlushSightings(world: World, reply: Extract<CascadeEvent, { kind: 'reply' }>): World {
  if (!reply.requestId.startsWith('f') || !flushingClients(world.config)) return world;
  const { sightings } = world;
  if (reply.lossReported && !sightings.flushLossReported) return { ...world, sightings: { ...sightings, flushLossReported: true } };
  const covered = reply.ok && world.registers.some((register) => register.completed !== undefined && register.completed.length > 0);
  if (covered && !sightings.flushSucceeded) return { ...world, sightings: { ...sightings, flushSucceeded: true } };
  return world;
}

function answerClient(clients: readonly ClientOperation[], registers: readonly RegisterState[], requestId: string, ok: boolean, value: number | null, lossReported: boolean): ClientBookkeeping<ClientOperation> {
  const position = clients.findIndex((client) => client.id === requestId);
  const client = clients[position];
  if (!client || client.status !== 'pending') return { clients, registers, violation: `reply to ${requestId}, which is not pending` };
  const answered = clients.slice();
  if (client.kind === 'flush') {
    answered[position] = { ...client, status: ok ? 'ok' : 'error' };
    const outcome = ok ? 'ok' : lossReported ? 'lossReported' : 'error';
    return { clients: answered, registers: registers.map((register) => completeFlush(register, client.id, client.server, outcome)), violation: null };
  }
  const judged = registers.slice();
  const register = judged[client.block];
  assert(register, 'register exists');
  if (!ok) {
    // An error reply: a write may have reached some copy before it, never after (register-check.ts, `fail`).
    answered[position] = { ...client, status: 'error' };
    judged[client.block] = fail(register, client.id);
    return { clients: answered, registers: judged, violation: null };
  }
  const checked = complete(register, client.id, client.kind === 'read' ? value ?? 0 : null, client.server);
  answered[position] = { ...client, status: 'ok', result: client.kind === 'read' ? value ?? 0 : null };
  if (typeof checked === 'string') return { clients: answered, registers, violation: `block ${client.block} not linearizable: ${client.id} ${checked}` };
  judged[client.block] = checked;
  return { clients: answered, registers: judged, violation: null };
}

/**
 * Checked in forwarding-pointer mode too since 28 Nov: until then a request the owner's pointer sent on could come back
 * to the server the client talks to, a committed destination that had not learnt its flip, which failed it for this
 * (node.ts, #routingView).
 */
const noValidCopyReason = 'routing table names this server but it holds no valid copy';

/** Failures of the routing loop itself: NBD cannot redirect a client, so the group must never answer one with them. */
const routingFailureReasons: readonly string[] = ['routing retries exhausted', 'hop limit reached', noValidCopyReason];

/**
 * Whether no fault has happened on the way to `world`: no crash, no message lost or duplicated, no failed commit, no
 * failed page-data write, no abandon, and no time-out fired early (a configuration whose early time-outs are unbounded
 * never counts as fault-free). A page-data write failure counts from its arming (`disk.fail`): a server armed whose
 * write has not failed yet counts too, which loses nothing, as the same path without the arming is searched as well.
 */
function isFaultFree(world: World): boolean {
  const { budgets, config } = world;
  const earlyTimersMax = config.timersOnlyWhenQuiet ? 0 : config.earlyTimersMax ?? Number.POSITIVE_INFINITY;
  return budgets.crashes === config.crashes && budgets.networkFaults === config.networkFaults && budgets.commitFailures === (config.commitFailures ?? 0)
    && budgets.dataWriteFailures === (config.dataWriteFailures ?? 0)
    && budgets.abandons === (config.abandons ?? 0) && Number.isFinite(earlyTimersMax) && budgets.earlyTimers === earlyTimersMax;
}

function violate(world: World, reason: string): World {
  return world.violation ? world : { ...world, violation: reason };
}

// ----- actions ------------------------------------------------------------------

export function enabledActions(world: World): Action[] {
  if (world.violation) return [];
  const actions: Action[] = [];
  const { budgets, config, servers } = world;
  const blocks = config.pages * config.pieces;
  if (budgets.writes > 0) for (let server = 0; server < servers.length; server += 1) if (servers[server]?.up) for (let block = 0; block < blocks; block += 1) actions.push(clientAction('client.write', server, block));
  if (budgets.reads > 0) for (let server = 0; server < servers.length; server += 1) if (servers[server]?.up) for (let block = 0; block < blocks; block += 1) actions.push(clientAction('client.read', server, block));
  if (budgets.flushes > 0) for (let server = 0; server < servers.length; server += 1) if (servers[server]?.up) actions.push(flushAction(server));
  if (budgets.moves > 0) {
    for (let page = 0; page < config.pages; page += 1) {
      const owner = servers.findIndex((server) => server.up && server.node.replicas.get(pageKeyText({ volume: volumeName, page }))?.context.record?.status === 'valid');
      // A move that was abandoned and waits for its destination's answer gives way to a new one (as the node allows).
      const running = owner < 0 ? undefined : servers[owner]?.node.moves[pageKeyText({ volume: volumeName, page })];
      if (owner < 0 || (running && isUnderWay(running.snapshot))) continue;
      for (let to = 0; to < servers.length; to += 1) {
        if (to !== owner) for (const kind of config.moveKinds) actions.push({ type: 'move.start', page, to, kind });
      }
    }
  }
  if (budgets.abandons > 0) {
    for (let page = 0; page < config.pages; page += 1) {
      const key = pageKeyText({ volume: volumeName, page });
      for (let server = 0; server < servers.length; server += 1) {
        const move = servers[server]?.up ? servers[server]?.node.moves[key] : undefined;
        // Asked whenever the move machine would take it (its mayAbandon guard, broken variants' included).
        if (move && move.snapshot.status === 'active' && move.snapshot.can({ type: 'move.abandon' })) actions.push({ type: 'move.abandon', page, server });
      }
    }
  }
  for (let index = 0; index < world.network.length; index += 1) {
    if (config.network === 'ordered' && !isOldestOnChannel(world, index)) continue;
    actions.push(indexAction('deliver', index));
    if (budgets.networkFaults > 0 && config.network === 'lossy') actions.push(indexAction('drop', index));
    if (budgets.networkFaults > 0 && config.network === 'duplicating') actions.push(indexAction('duplicate', index));
  }
  for (let server = 0; server < servers.length; server += 1) if (servers[server]?.up && (servers[server]?.pendingMeta.length ?? 0) > 0) actions.push(indexAction('persist', server));
  if (budgets.commitFailures > 0) for (let server = 0; server < servers.length; server += 1) if (servers[server]?.up && (servers[server]?.pendingMeta.length ?? 0) > 0) actions.push(indexAction('persist.fail', server));
  if (budgets.dataWriteFailures > 0) for (let server = 0; server < servers.length; server += 1) if (servers[server]?.up && !servers[server]?.diskFailsNext) actions.push(indexAction('disk.fail', server));
  // Time-outs model a fair scheduler: they fire once faults have healed (every server up) and nothing else can happen.
  // Without that restriction (--timers-anytime) a time-out may race anything, while fewer than messagesMax messages
  // are in flight and, if the configuration bounds them, early firings remain: retries would otherwise fill the
  // network and count up without end, and the search could never finish.
  const quiet = isQuiet(world);
  if (quiet || (budgets.earlyTimers > 0 && world.network.length < config.messagesMax)) {
    for (let server = 0; server < servers.length; server += 1) {
      const { up, timers } = servers[server] as SimServer;
      if (up) for (const timerId of new Set(timers)) actions.push(timerAction(server, timerId));
    }
  }
  if (budgets.crashes > 0) for (let server = 0; server < servers.length; server += 1) if (servers[server]?.up) actions.push(indexAction('crash', server));
  for (let server = 0; server < servers.length; server += 1) if (!servers[server]?.up) actions.push(indexAction('restart', server));
  return actions;
}

/** Nothing in flight, every server up, no commit pending: when a time-out models a fair scheduler's patience. */
function isQuiet(world: World): boolean {
  return world.network.length === 0 && world.servers.every((server) => server.up && server.pendingMeta.length === 0);
}

/**
 * Actions are values, and a search meets the same few hundred millions of
 * times: the common ones are made once and shared (the explorer's visited
 * set numbers actions by identity first: explorer/visited-set.ts). Bounded
 * by the configuration: messagesMax indexes, five servers, a few timers each.
 */
type IndexedAction = Extract<Action, { index: number }> | Extract<Action, { type: 'persist' | 'persist.fail' | 'disk.fail' | 'crash' | 'restart' }>;
const indexedActions = new Map<IndexedAction['type'], IndexedAction[]>();
const clientActions = new Map<string, Action>();
const timerActions: Array<Map<string, Action>> = [];

function indexAction(type: IndexedAction['type'], index: number): Action {
  let byIndex = indexedActions.get(type);
  if (byIndex === undefined) {
    byIndex = [];
    indexedActions.set(type, byIndex);
  }
  const known = byIndex[index];
  if (known !== undefined) return known;
  const action: IndexedAction = type === 'deliver' || type === 'drop' || type === 'duplicate' ? { type, index } : { type, server: index };
  byIndex[index] = action;
  return action;
}

function clientAction(type: 'client.write' | 'client.read', server: number, block: number): Action {
  const key = `${type}|${server}|${block}`;
  const known = clientActions.get(key);
  if (known !== undefined) return known;
  const action: Action = { type, server, block };
  clientActions.set(key, action);
  return action;
}

function flushAction(server: number): Action {
  const key = `client.flush|${server}`;
  const known = clientActions.get(key);
  if (known !== undefined) return known;
  const action: Action = { type: 'client.flush', server };
  clientActions.set(key, action);
  return action;
}

function timerAction(server: number, timerId: string): Action {
  let byTimer = timerActions[server];
  if (byTimer === undefined) {
    byTimer = new Map();
    timerActions[server] = byTimer;
  }
  const known = byTimer.get(timerId);
  if (known !== undefined) return known;
  const action: Action = { type: 'timer', server, timerId };
  // Timer ids name a page, an attempt and a stage or a request: a handful per server in a bounded search.
  if (byTimer.size < 4_096) byTimer.set(timerId, action);
  return action;
}

function isOldestOnChannel(world: World, index: number): boolean {
  const envelope = world.network[index];
  assert(envelope, 'envelope exists');
  return world.network.findIndex((other) => other.from === envelope.from && other.fromIncarnation === envelope.fromIncarnation && other.to === envelope.to) === index;
}

export function applyAction(world: World, action: Action): World {
  switch (action.type) {
    case 'client.write':
    case 'client.read': {
      const server = world.servers[action.server];
      assert(server, 'server exists');
      const writeId = world.config.writes - world.budgets.writes + 1;
      const id = `${action.type === 'client.write' ? 'w' : 'r'}${action.type === 'client.write' ? writeId : world.config.reads - world.budgets.reads + 1}`;
      const kind = action.type === 'client.write' ? 'write' : 'read';
      const operation: ClientOperation = { id, server: server.id, kind, block: action.block, value: action.type === 'client.write' ? writeId : 0, status: 'pending', result: null };
      const invoked = rememberedClientChange(world.clients, world.registers, `invoke|${id}|${operation.server}|${operation.kind}|${operation.block}|${operation.value}`, () => {
        const registers = world.registers.slice();
        registers[action.block] = invoke(registers[action.block] ?? initialRegister, id, kind, operation.value);
        return { clients: [...world.clients, operation], registers, violation: null };
      });
      const budgets = spend(world.budgets, action.type === 'client.write' ? 'writes' : 'reads');
      const next: World = { ...world, clients: invoked.clients, registers: invoked.registers, budgets };
      const page = Math.floor(action.block / world.config.pieces);
      const offsetBlocks = action.block % world.config.pieces;
      const input: NodeInput = { type: 'client.request', requestId: id, connectionId: clientConnectionOf(server.id), operation: { kind, pageKey: { volume: volumeName, page }, offsetBlocks, lengthBlocks: 1, fua: world.config.powerLoss === true && !unflushedWrites(world.config) } };
      // The key holds the whole input; a write's token holds its value, which its id (w<value>) names.
      return runNode(next, action.server, `c|${operation.value}|${JSON.stringify(input)}`, startClientRequest, { operation, input });
    }
    case 'client.flush': {
      const server = world.servers[action.server];
      assert(server, 'server exists');
      const id = `f${(world.config.flushes ?? 0) - world.budgets.flushes + 1}`;
      const operation: ClientOperation = { id, server: server.id, kind: 'flush', block: -1, value: 0, status: 'pending', result: null };
      const invoked = rememberedClientChange(world.clients, world.registers, `invoke|${id}|${operation.server}|flush`, () => ({
        clients: [...world.clients, operation], registers: world.registers.map((register) => invokeFlush(register, id, server.id)), violation: null,
      }));
      const next: World = { ...world, clients: invoked.clients, registers: invoked.registers, budgets: spend(world.budgets, 'flushes') };
      const input: NodeInput = { type: 'client.flush', requestId: id, connectionId: clientConnectionOf(server.id), volume: volumeName };
      return runNode(next, action.server, `f|${JSON.stringify(input)}`, startUnchanged, input);
    }
    case 'move.start': {
      const owner = world.servers.findIndex((server) => server.up && server.node.replicas.get(pageKeyText({ volume: volumeName, page: action.page }))?.context.record?.status === 'valid');
      const next: World = { ...world, budgets: spend(world.budgets, 'moves') };
      const pieceCount = action.kind === 'unit' ? undefined : world.config.movePieces;
      const input: NodeInput = { type: 'admin.move', requestId: `move${action.page}`, pageKey: { volume: volumeName, page: action.page }, to: serverName(action.to), kind: action.kind, pieceCount };
      return runNode(next, owner, `a|${JSON.stringify(input)}`, startUnchanged, input);
    }
    case 'move.abandon': {
      const next: World = { ...world, budgets: spend(world.budgets, 'abandons') };
      const input: NodeInput = { type: 'admin.abandonMove', requestId: `abandon${action.page}`, pageKey: { volume: volumeName, page: action.page } };
      return runNode(next, action.server, `x|${JSON.stringify(input)}`, startUnchanged, input);
    }
    case 'deliver':
    case 'drop':
    case 'duplicate': {
      const envelope = world.network[action.index];
      assert(envelope, 'envelope exists');
      if (action.type === 'duplicate') return { ...world, network: [...world.network, envelope], budgets: spend(world.budgets, 'networkFaults') };
      const network = world.network.slice();
      network.splice(action.index, 1);
      if (action.type === 'drop') return { ...world, network, budgets: spend(world.budgets, 'networkFaults') };
      return deliver({ ...world, network }, envelope);
    }
    // The key needs nothing more: the commit made durable is the server's first pending one.
    case 'persist': {
      const server = world.servers[action.server];
      assert(server?.pendingMeta[0], 'a commit is pending');
      // A commit nobody waits for becomes durable without telling the node.
      if (server.pendingMeta[0].completionId === null) return replaceServer(world, action.server, { ...server, meta: applyMeta(server.meta, server.pendingMeta[0].writes), pendingMeta: server.pendingMeta.slice(1) });
      return runNode(world, action.server, 'p', startPersist, null);
    }
    case 'persist.fail': {
      const server = world.servers[action.server];
      assert(server?.pendingMeta[0], 'a commit is pending');
      const failed = { ...world, budgets: spend(world.budgets, 'commitFailures') };
      return runNode(failed, action.server, 'pf', startPersistFailure, null);
    }
    // Arming touches only the server (its next page write fails, in the cascade that issues it) and the budget.
    case 'disk.fail': {
      const server = world.servers[action.server];
      assert(server?.up && !server.diskFailsNext, 'an unarmed server is up');
      return replaceServer({ ...world, budgets: spend(world.budgets, 'dataWriteFailures') }, action.server, canonicalServer({ ...server, diskFailsNext: true }, world.config));
    }
    case 'timer': {
      const timed = isQuiet(world) ? world : { ...world, budgets: spend(world.budgets, 'earlyTimers') };
      return runNode(timed, action.server, `t|${action.timerId}`, startTimer, action.timerId);
    }
    case 'crash': return crash(world, action.server);
    case 'restart': {
      return startServer(world, action.server, 1);
    }
    default: return assertNever(action, 'action');
  }
}

function deliver(world: World, envelope: Envelope): World {
  const index = indexOf(world, envelope.to);
  const server = world.servers[index];
  assert(server, 'server exists');
  if (!server.up) return world;
  // The envelope's identity names its sender, message and data: envelopes are immutable and shared between worlds.
  return runNode(noteSightings(world, server, envelope), index, envelopeKey(envelope), startDelivery, envelope);
}

function startDelivery(before: SimServer, _world: World, envelope: Envelope): PreparedCascade {
  const sent = messageDataToken(envelope.message);
  const token = sent === null ? null : receivedDataToken(envelope.from, sent);
  const server = token && envelope.data ? { ...before, tokens: { ...before.tokens, [token]: envelope.data } } : before;
  return { server, input: { type: 'peer.message', from: envelope.from, message: envelope.message } };
}

function startPersist(before: SimServer): PreparedCascade {
  const [first, ...rest] = before.pendingMeta;
  assert(first, 'a commit is pending');
  assert(first.completionId !== null, 'the node waits for this commit');
  return { server: { ...before, meta: applyMeta(before.meta, first.writes), pendingMeta: rest }, input: { type: 'io.done', completionId: first.completionId, ok: true } };
}

/**
 * The first pending commit fails: skipped, as the runtime's store skips it,
 * and reported to the node as the runtime does; or, with
 * `failedCommitsDurable`, made durable all the same before it is reported
 * failed (an outcome the node cannot tell apart).
 */
function startPersistFailure(before: SimServer, world: World): PreparedCascade {
  const [first, ...rest] = before.pendingMeta;
  assert(first, 'a commit is pending');
  const input: NodeInput = first.completionId === null ? { type: 'meta.failed', writes: first.writes } : { type: 'io.done', completionId: first.completionId, ok: false };
  const meta = world.config.failedCommitsDurable === true ? applyMeta(before.meta, first.writes) : before.meta;
  return { server: { ...before, meta, pendingMeta: rest }, input };
}

function startTimer(before: SimServer, _world: World, timerId: string): PreparedCascade {
  return { server: { ...before, timers: before.timers.filter((other) => other !== timerId) }, input: { type: 'timer.fired', timerId } };
}

function startClientRequest(before: SimServer, _world: World, { operation, input }: { operation: ClientOperation; input: NodeInput }): PreparedCascade {
  const server = operation.kind === 'write' ? { ...before, tokens: { ...before.tokens, [`client:${operation.id}`]: [operation.value] } } : before;
  return { server, input };
}

function startUnchanged(server: SimServer, _world: World, input: NodeInput): PreparedCascade {
  return { server, input };
}

function noteSightings(world: World, receiver: SimServer, envelope: Envelope): World {
  const { message } = envelope;
  let sightings = world.sightings;
  if (message.type === 'block.write' && receiver.node.replicas.get(pageKeyText(message.pageKey))?.context.record?.status === 'receiving') sightings = { ...sightings, dualWriteLanded: true };
  if (message.type === 'request.answer' && message.outcome.status === 'stale') sightings = { ...sightings, staleRetry: true };
  if (message.type === 'request.forward' && message.hopCount > 1) sightings = { ...sightings, pointerForwarded: true };
  // Only a try its sender cancelled counts: one refused or answered stale or with an error is remembered too (and refused
  // again the same way), but is not what the goal is about (a cancel that overtook its forward).
  if (message.type === 'request.forward' && !sightings.lateCancelledForwardRefused && rememberedValue(receiver.node.forwardedTriesEnded, cancelledTryKey(envelope.from, message.requestId, message.retry)) === 'cancelled') {
    sightings = { ...sightings, lateCancelledForwardRefused: true };
  }
  return sightings === world.sightings ? world : { ...world, sightings };
}

function crash(world: World, index: number): World {
  const server = world.servers[index];
  assert(server, 'server exists');
  // Note the move stage in progress, whichever side of the move crashed.
  let stage: number | null = null;
  for (const candidate of world.servers) {
    for (const move of Object.values(candidate.node.moves)) {
      const context = move.snapshot.context;
      if (move.snapshot.status === 'active' && (context.source === server.id || context.destination === server.id)) {
        stage = context.pending?.stage ?? context.checkpoint.stage + 1;
      }
    }
  }
  const sightings = stage === null || world.sightings.crashedAtStages.includes(stage) ? world.sightings
    : { ...world.sightings, crashedAtStages: [...world.sightings.crashedAtStages, stage].sort((a, b) => a - b) };
  // The server's volatile state, its unsynced metadata commits, and its connections are lost.
  const network = world.network.filter((envelope) => envelope.to !== server.id && (envelope.from !== server.id || world.config.crashKeepsSent === true));
  // Clients and registers stay the same objects when no request was pending there (most crashes): the fingerprint caches per object.
  let { clients, registers } = world;
  const connectionLosesWrites = flushingClients(world.config) && registers.some((register) => register.ackedVia?.[server.id] !== undefined);
  if (connectionLosesWrites || clients.some((client) => client.server === server.id && client.status === 'pending')) {
    ({ clients, registers } = rememberedClientChange(world.clients, world.registers, `crash|${server.id}`, () => {
      let abandoned = world.registers.slice();
      const outcomes = world.clients.map((client) => {
        if (client.server !== server.id || client.status !== 'pending') return client;
        if (client.kind === 'flush') abandoned = abandoned.map((register) => completeFlush(register, client.id, server.id, 'error'));
        else abandoned[client.block] = abandon(abandoned[client.block] ?? initialRegister, client.id);
        return { ...client, status: 'info' as const };
      });
      return { clients: outcomes, registers: abandoned.map((register) => connectionLost(register, server.id)), violation: null };
    }));
  }
  // A power cut may roll back every block whose latest writes were not durable (the register decides which values).
  if (unflushedWrites(world.config)) registers = registers.map(powerCut);
  return { ...replaceServer(world, index, crashedServer(server, world.config)), network, clients, registers, sightings, budgets: spend(world.budgets, 'crashes') };
}

/**
 * What a crash leaves of a server: its durable state. A function of the
 * server and the configuration, remembered per server object (a WeakMap) so
 * that every crash of one server state yields one shared object, which the
 * cascade memo can then recognise on restart.
 */
const crashedServers = new WeakMap<SimServer, { readonly config: WorldConfig; readonly crashed: SimServer }>();

function crashedServer(server: SimServer, config: WorldConfig): SimServer {
  const known = crashedServers.get(server);
  if (known && known.config === config) return known.crashed;
  // In power-loss mode the page data not yet durable is lost too (kill -9 keeps it: the page cache survives).
  const data = config.powerLoss ? server.durableData : server.data;
  const crashed = canonicalServer({ ...server, up: false, data, pendingMeta: [], tokens: {}, timers: [], diskFailsNext: false, node: emptyNodeState(server.node.config, server.incarnation) }, config);
  crashedServers.set(server, { config, crashed });
  return crashed;
}

export function describeAction(world: World, action: Action): string {
  switch (action.type) {
    case 'client.write': return `client writes w${world.config.writes - world.budgets.writes + 1} to block ${action.block} via ${serverName(action.server)}`;
    case 'client.read': return `client reads block ${action.block} via ${serverName(action.server)}`;
    case 'client.flush': return `client flushes f${(world.config.flushes ?? 0) - world.budgets.flushes + 1} via ${serverName(action.server)}`;
    case 'move.start': return `admin starts a ${action.kind} move of page ${action.page} to ${serverName(action.to)}`;
    case 'move.abandon': return `admin abandons the move of page ${action.page} at ${serverName(action.server)}`;
    case 'deliver':
    case 'drop':
    case 'duplicate': {
      const envelope = world.network[action.index];
      return `network ${action.type === 'deliver' ? 'delivers' : action.type === 'drop' ? 'drops' : 'duplicates'} ${envelope?.message.type} ${envelope?.from}→${envelope?.to} ${summarise(envelope?.message)}`;
    }
    case 'persist': return `${serverName(action.server)} makes its metadata commit durable`;
    case 'persist.fail': return `${serverName(action.server)}'s metadata commit fails`;
    case 'disk.fail': return `${serverName(action.server)}'s next page write fails`;
    case 'timer': return `${serverName(action.server)} timer fires: ${action.timerId}`;
    case 'crash': return `${serverName(action.server)} crashes`;
    case 'restart': return `${serverName(action.server)} restarts`;
    default: return assertNever(action, 'action');
  }
}

function summarise(message: PeerMessage | undefined): string {
  if (!message) return '';
  const { type: _type, ...rest } = message as PeerMessage & Record<string, unknown>;
  void _type;
  return JSON.stringify(rest).slice(0, 160);
}
