import { createHash } from 'node:crypto';
import type { NodeState } from '../../machines/node/node-state.js';
import { rememberedList } from '../../machines/node/remembered-origins.js';
import type { World } from './world.js';

/**
 * A canonical text of a world state for duplicate detection. It keeps what
 * decides future behaviour — machine state values and the context fields that
 * guards read, durable records, data, messages, client history — and leaves
 * out what does not (id counters, machine definitions inside snapshots).
 * Messages on an unordered network form a multiset, so they are sorted.
 */
export function fingerprint(world: World): string {
  return createHash('sha1').update(canonicalText(world)).digest('base64');
}

/**
 * Ids a node mints (`io:s1.0.7`, `read:s2.1.3`) name things only by identity,
 * so two states that differ only in which numbers were drawn behave alike.
 * They are renamed in order of first appearance.
 */
export function canonicalText(world: World): string {
  const names = new Map<string, string>();
  return rawText(world).replace(/(io|read|copy|peer-read):s\d+\.\d+\.\d+/g, (id, prefix: string) => {
    let name = names.get(id);
    if (name === undefined) {
      name = `${prefix}#${names.size}`;
      names.set(id, name);
    }
    return name;
  });
}

function rawText(world: World): string {
  const network = world.network.map((envelope) => JSON.stringify(envelope));
  if (world.config.network !== 'ordered') network.sort();
  return JSON.stringify([
    world.servers.map((server) => [
      server.up, projectNode(server.node), server.meta, server.pendingMeta.map((pending) => pending.writes), server.data,
      world.config.powerLoss ? server.durableData : null,
      server.tokens, [...server.timers].sort(),
    ]),
    network, world.clients, world.registers, world.budgets, world.sightings, world.violation,
  ]);
}

/**
 * Node fields the fingerprint leaves out, each because it cannot change what
 * happens next: the configuration and volume definitions are fixed for a
 * run, `started` follows the server's `up`, and `nextId` only numbers ids the
 * canonical text renames anyway. Every other field must be projected; a test
 * mutates each field and demands a different fingerprint.
 */
export const nodeFieldsIgnored = ['config', 'volumes', 'started', 'nextId'] as const;

function projectNode(node: NodeState): unknown {
  return [
    Object.entries(node.moves).map(([key, move]) => [key, move.snapshot.value, move.snapshot.status, move.snapshot.context.checkpoint, move.snapshot.context.pending, move.snapshot.context.attempt, move.snapshot.context.piece]),
    Object.entries(node.replicas).map(([key, replica]) => [key, replica.value, replica.context.record]),
    node.routes,
    [...node.requests].map(([id, entry]) => {
      const { retries, route, target, localCopy, forwardTo } = entry.snapshot.context;
      return [id, entry.snapshot.value, retries, route, target, localCopy, forwardTo, entry.readToken, entry.writeToken];
    }),
    Object.fromEntries(node.serves), [...node.continuations], node.flushes,
    node.writeSequences, node.localWritesInFlight, node.blockVersions, node.parked, node.commitsDeferred, rememberedList(node.forwardedWritesDone),
    node.incarnation, node.membership,
  ];
}
