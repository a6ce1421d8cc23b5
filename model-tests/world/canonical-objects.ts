import { assert } from '../../machines/identifiers.js';
import { PageMap } from '../../machines/node/page-map.js';
import { envelopeTwins, serverTwins } from './fingerprint.js';
import type { Envelope, SimServer } from './world.js';
import type { WorldConfig } from './world-config.js';

/**
 * One object per server state and per envelope (hash-consing).
 *
 * Theory of operation. The explorer reaches one server state along many
 * paths (a server that receives A then B, or B then A, ends alike), and each
 * path built its own object. The cascade memo (server-step-memo.ts) and the
 * fingerprint's caches are keyed by object, so every such twin ran every
 * later cascade again and had its text built again: in the first 100,000
 * states of the reference bound, 41,630 server objects held 8,434 distinct
 * server states. So each server a cascade leaves, and each envelope it
 * sends, is swapped for an earlier object equal to it in every field, when
 * there is one; worlds then hold one object per state, and the caches hit.
 *
 * Soundness: the swap is exact. Candidates are found by the fingerprint's
 * interned text (equal texts are a necessary condition), and a candidate is
 * taken only if `sameValue` finds it equal to the new object in every field,
 * including those the fingerprint leaves out (id counters, completion ids,
 * timer order, snapshots' whole contexts). The only things compared other
 * than by value are class instances, by identity (machine definitions and
 * their state nodes, which configurations share), except the node's per-page
 * maps (page-map.ts), compared by their entries in order: everything a map
 * answers, and every map made from it, follows from its entries (how they
 * are cut into chunks decides only the cost of an edit); and functions, by
 * name and arity (the methods XState puts on every snapshot, which read only
 * their own snapshot). A test runs searches with and without the swap and
 * demands the same results, traces included.
 *
 * Bounds: at most `twinsPerTextMax` objects are kept per text (worlds hold
 * server states that differ only outside the text, e.g. in id counters);
 * past that a new object is kept as it is. The objects live as long as the
 * search's interned pieces (fingerprint.ts: emptied as a search starts).
 */
export const twinsPerTextMax = 8;

/**
 * On while the explorer searches (explore.ts: unless asked not to), where
 * worlds meet one state along many paths. Off elsewhere: a random walk meets
 * each state once, so looking for twins would only cost.
 */
export const canonicalObjects = { enabled: false };

export const canonicalObjectStats = { servers: 0, serversShared: 0, envelopes: 0, envelopesShared: 0 };

export function canonicalServer(server: SimServer, config: WorldConfig): SimServer {
  if (!canonicalObjects.enabled) return server;
  canonicalObjectStats.servers += 1;
  // Two fields the text leaves out tell most non-twins apart at once: the server's own name (idle servers' texts name
  // nobody) and its id counter; sameValue would find them too, after walking the rest.
  const shared = twinOf(server, serverTwins(server, config.powerLoss === true), (twin) => twin.id !== server.id || twin.node.nextId !== server.node.nextId);
  if (shared !== server) canonicalObjectStats.serversShared += 1;
  return shared;
}

export function canonicalEnvelope(envelope: Envelope): Envelope {
  if (!canonicalObjects.enabled) return envelope;
  canonicalObjectStats.envelopes += 1;
  const shared = twinOf(envelope, envelopeTwins(envelope), null);
  if (shared !== envelope) canonicalObjectStats.envelopesShared += 1;
  return shared;
}

/**
 * The earlier object among `twins` (those with the same text) equal to `value` in every field, or `value` itself,
 * kept as a twin while there is room. `differsAtOnce` passes over candidates a cheap look tells apart.
 */
function twinOf<T extends object>(value: T, twins: T[], differsAtOnce: ((twin: T) => boolean) | null): T {
  for (const twin of twins) {
    if (twin === value) return value;
    if (differsAtOnce !== null && differsAtOnce(twin)) continue;
    if (sameValue(twin, value, 0)) return twin;
  }
  if (twins.length < twinsPerTextMax) twins.push(value);
  return value;
}

/** Object graphs in a world are shallow (a server, its node, a snapshot, its context, a record); deeper is a bug. */
const depthMax = 64;

/**
 * Structural equality of two values of a world: primitives by value, arrays,
 * Maps, Sets and PageMaps in order (order can decide what happens next), plain
 * objects by their keys in order and values; other class instances only by
 * identity, and functions by name and arity (see the module comment).
 */
export function sameValue(left: unknown, right: unknown, depth: number): boolean {
  if (left === right) return true;
  if (typeof left !== typeof right) return false;
  if (typeof left === 'function') {
    const a = left as (...args: unknown[]) => unknown;
    const b = right as (...args: unknown[]) => unknown;
    return a.name === b.name && a.length === b.length;
  }
  if (typeof left === 'number') return Number.isNaN(left) && Number.isNaN(right);
  if (typeof left !== 'object' || left === null || right === null) return false;
  assert(depth < depthMax, 'a world value is at most 64 levels deep');
  const prototype = Object.getPrototypeOf(left) as unknown;
  if (prototype !== Object.getPrototypeOf(right)) return false;
  if (Array.isArray(left)) {
    const other = right as unknown[];
    if (left.length !== other.length) return false;
    for (let index = 0; index < left.length; index += 1) if (!sameValue(left[index], other[index], depth + 1)) return false;
    return true;
  }
  if (left instanceof Map) {
    const other = right as Map<unknown, unknown>;
    if (left.size !== other.size) return false;
    const theirs = other.entries();
    for (const [key, value] of left) {
      const next = theirs.next().value as [unknown, unknown];
      if (!sameValue(key, next[0], depth + 1) || !sameValue(value, next[1], depth + 1)) return false;
    }
    return true;
  }
  if (left instanceof PageMap) {
    const other = right as PageMap<unknown>;
    if (left.size !== other.size) return false;
    const theirs = other.entries();
    for (const [key, value] of left as PageMap<unknown>) {
      const next = theirs.next().value as readonly [string, unknown];
      if (key !== next[0] || !sameValue(value, next[1], depth + 1)) return false;
    }
    return true;
  }
  if (left instanceof Set) {
    const other = right as Set<unknown>;
    if (left.size !== other.size) return false;
    const theirs = other.values();
    for (const value of left) if (!sameValue(value, theirs.next().value, depth + 1)) return false;
    return true;
  }
  if (prototype !== Object.prototype && prototype !== null) return false;
  const a = left as Record<string, unknown>;
  const b = right as Record<string, unknown>;
  const keys = Object.keys(a);
  const otherKeys = Object.keys(b);
  if (keys.length !== otherKeys.length) return false;
  for (let index = 0; index < keys.length; index += 1) {
    const key = keys[index] as string;
    if (key !== otherKeys[index] || !sameValue(a[key], b[key], depth + 1)) return false;
  }
  return true;
}
