import { describe, expect, it } from 'vitest';
import type { RememberedOrigins } from '../../machines/node/remembered-origins.js';
import { remember } from '../../machines/node/remembered-origins.js';
import { referenceBound } from './world-config.js';
import { fingerprint, nodeFieldsIgnored } from './fingerprint.js';
import { applyAction, enabledActions, initialWorld } from './world.js';
import type { World } from './world.js';

/**
 * States with the same fingerprint are explored once, so a field the
 * fingerprint forgets silently prunes behaviours. Every field of a node's
 * state, changed on its own, must change the fingerprint — unless it is one
 * the fingerprint documents as irrelevant.
 */
function mutated(value: unknown): unknown {
  if (typeof value === 'number') return value + 7;
  if (typeof value === 'boolean') return !value;
  if (Array.isArray(value)) return [...value, 'mutation'];
  if (typeof value === 'object' && value !== null && 'log' in value) return remember(value as RememberedOrigins, 'mutation', 4096);
  if (value instanceof Map) {
    // The same for the records kept as Maps (keyed by request or completion id).
    const entries = [...value];
    return new Map(entries.length > 0 ? [['mutation', entries[0]![1]], ...entries.slice(1)] : [['mutation', ['mutation']]]);
  }
  if (typeof value === 'object' && value !== null) {
    // Rename an entry (snapshots stay snapshots), or add one to an empty record.
    const entries = Object.entries(value);
    return entries.length > 0 ? Object.fromEntries([['mutation', entries[0]![1]], ...entries.slice(1)]) : { mutation: ['mutation'] };
  }
  return 'mutation';
}

describe('the fingerprint covers every node field that decides behaviour', () => {
  // A world where the source has a move, a request and a replica in hand, so every map has an entry to change.
  let world = initialWorld({ ...referenceBound, servers: 2 });
  for (const wanted of [{ type: 'move.start' }, { type: 'client.write', server: 1 }]) {
    const action = enabledActions(world).find((candidate) => Object.entries(wanted).every(([key, value]) => (candidate as Record<string, unknown>)[key] === value));
    if (action) world = applyAction(world, action);
  }
  const server = world.servers[0]!;
  const forwarder = world.servers[1]!;
  it('the world used has a move and a replica at the source, and a forwarded request in hand', () => {
    expect(Object.keys(server.node.moves).length).toBeGreaterThan(0);
    expect(Object.keys(server.node.replicas).length).toBeGreaterThan(0);
    expect(forwarder.node.requests.size).toBeGreaterThan(0);
  });
  const fields = Object.keys(server.node) as Array<keyof typeof server.node>;
  it.each(fields.filter((field) => !(nodeFieldsIgnored as readonly string[]).includes(field)))('%s', (field) => {
    const changed: World = field === 'requests'
      ? { ...world, servers: [server, { ...forwarder, node: { ...forwarder.node, requests: mutated(forwarder.node.requests) as never } }] }
      : { ...world, servers: [{ ...server, node: { ...server.node, [field]: mutated(server.node[field]) } }, forwarder] };
    expect(fingerprint(changed)).not.toBe(fingerprint(world));
  });
  it('ignores only the documented fields', () => {
    expect(fields.filter((field) => (nodeFieldsIgnored as readonly string[]).includes(field)).sort()).toEqual([...nodeFieldsIgnored].sort());
  });
});
