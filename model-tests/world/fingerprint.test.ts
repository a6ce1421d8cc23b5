import { describe, expect, it } from 'vitest';
import { PageMap } from '../../machines/node/page-map.js';
import type { RememberedOrigins } from '../../machines/node/remembered-origins.js';
import { remember } from '../../machines/node/remembered-origins.js';
import { referenceBound } from './world-config.js';
import { explore } from '../explorer/explore.js';
import { canonicalText, canonicalTextByRegex, fingerprint, imageFingerprints, nodeFieldsIgnored, symmetricCanonicalText } from './fingerprint.js';
import { serverRenamings } from './server-symmetry.js';
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
  if (typeof value === 'object' && value !== null && 'log' in value) return remember(value as RememberedOrigins<unknown>, 'mutation', [], 4096);
  if (value instanceof PageMap) {
    // The same for the per-page records (page-map.ts): rename the first entry, or add one to an empty map.
    const [first] = value as PageMap<unknown>;
    return first ? (value as PageMap<unknown>).without(first[0]).with('mutation', first[1]) : (value as PageMap<unknown>).with('mutation', ['mutation']);
  }
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
    expect(server.node.replicas.size).toBeGreaterThan(0);
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

describe('the canonical text assembled from cached pieces is the plain definition', () => {
  it('on every state of a three-server search with a crash, under every server renaming', () => {
    let compared = 0;
    let mismatches = 0;
    const config = { ...referenceBound, servers: 3, writes: 1, reads: 0, crashes: 1, pieces: 1 };
    const result = explore(config, {
      statesMax: 100_000, depthMax: 500, livenessSamples: 0, livenessEvery: 1, livenessStepsMax: 0,
      onNewState: (world) => {
        for (const renaming of serverRenamings(world)) {
          compared += 1;
          if (canonicalText(world, renaming) !== canonicalTextByRegex(world, renaming)) mismatches += 1;
        }
      },
    });
    console.log(`compared ${compared} canonical texts over ${result.states} states`);
    expect(result.complete).toBe(true);
    expect(compared).toBe(2 * result.states);
    expect(mismatches).toBe(0);
  });
});

/**
 * The fingerprint hashes pieces and id numbers instead of the canonical text
 * (fingerprint.ts). It must merge exactly the worlds the text merges: equal
 * texts give equal fingerprints and different texts different ones, for the
 * exact images under every renaming, for the symmetric fingerprint and with
 * history.
 */
describe('the fingerprint tells worlds apart exactly as their canonical texts do', () => {
  it('on the states of a three-server search with a write, a read and a crash, under every renaming, symmetric and with history', () => {
    const digestByText = new Map<string, string>();
    const textByDigest = new Map<string, string>();
    let compared = 0;
    let disagreements = 0;
    const note = (kind: string, text: string, digest: string) => {
      compared += 1;
      const knownDigest = digestByText.get(kind + text);
      const knownText = textByDigest.get(kind + digest);
      if ((knownDigest !== undefined && knownDigest !== digest) || (knownText !== undefined && knownText !== text)) disagreements += 1;
      digestByText.set(kind + text, digest);
      textByDigest.set(kind + digest, text);
    };
    // Reads mint ids of their own, so many states hold two or more (the reference bound's hold at most one).
    const result = explore({ ...referenceBound, servers: 3, writes: 1, reads: 1, crashes: 1 }, {
      statesMax: 6_000, depthMax: 500, livenessSamples: 0, livenessEvery: 1, livenessStepsMax: 0,
      onNewState: (world) => {
        imageFingerprints(world).forEach((digest, index) => note('exact', canonicalText(world, serverRenamings(world)[index]), digest));
        note('symmetric', symmetricCanonicalText(world), fingerprint(world, true));
        note('history', canonicalText(world, undefined, true), fingerprint(world, false, true));
      },
    });
    const ids = [...digestByText.keys()].filter((text) => text.includes('#1')).length;
    console.log(`compared ${compared} fingerprints with texts over ${result.states} states (${ids} texts with two or more ids)`);
    expect(result.states).toBe(6_000);
    expect(ids).toBeGreaterThan(100);
    expect(disagreements).toBe(0);
  });

  it('counts which ids are the same: ids renamed alike give one fingerprint, a different pattern of repeats another', () => {
    const world = initialWorld({ ...referenceBound, servers: 3 });
    const holding = (first: string, second: string): World => ({
      ...world,
      servers: world.servers.map((server, index) => (index === 0 ? { ...server, tokens: { [first]: [1] } } : index === 1 ? { ...server, tokens: { [second]: [1] } } : server)),
    });
    const same = fingerprint(holding('read:s1.0.1', 'read:s1.0.1'));
    expect(fingerprint(holding('read:s1.0.5', 'read:s1.0.5'))).toBe(same);
    expect(fingerprint(holding('read:s1.0.1', 'read:s1.0.2'))).not.toBe(same);
    expect(fingerprint(holding('read:s1.0.7', 'read:s1.0.2'))).toBe(fingerprint(holding('read:s1.0.1', 'read:s1.0.2')));
  });
});
