import { hash } from 'node:crypto';
import { PageMap } from '../../machines/node/page-map.js';
import { rememberedEntries } from '../../machines/node/remembered-origins.js';
import type { RememberedOrigins } from '../../machines/node/remembered-origins.js';
import { assert } from '../../machines/identifiers.js';
import { symmetricRenaming } from './fingerprint.js';
import type { ServerRenaming } from './server-symmetry.js';
import { renameServers } from './server-symmetry.js';
import type { World } from './world.js';

/**
 * A debug check of the fingerprint's soundness (fingerprint.ts), off unless
 * a search is given one (explore.ts: `fingerprintAudit`).
 *
 * Theory of operation. The fingerprint keeps a projection of each world and
 * merges worlds whose projections agree. If it left out something that
 * decides what happens next, the search would merge two worlds that behave
 * differently and silently skip the futures of the second. The audit keeps
 * every state the search adds (the world object itself: worlds share their
 * servers and messages, so this costs little more than the worlds' shells)
 * and, each time a successor's fingerprint is found already visited,
 * compares a complete serialization of the successor with the stored
 * state's. The complete serialization holds every field of the world —
 * every server field, every node field including ids counters and the whole
 * of each machine snapshot's context, every request's operation and reply
 * address, every pending commit with its completion id, timers in their
 * order, all client operations and the sightings — except the machine
 * definitions (the same objects in every world of a search) and the
 * world's configuration and volume (fixed for the search). It applies only
 * the two abstractions the search is built on, each under the same renaming
 * the fingerprint chose for that world: the renaming of interchangeable
 * servers (server-symmetry.ts; the configured group lists are sorted, as a
 * renaming reorders them and the nodes use them only as sets), and the
 * renaming of minted ids in order of first appearance (ids are compared only
 * for equality). A remembered-origins value is serialized as its window, the
 * only part `isRemembered` and `remember` read; a node's per-page map
 * (page-map.ts) as its entries in its order, all that any of its readers see.
 *
 * Every mismatch is recorded by the set of paths where the two complete
 * serializations differ (array indices as `*`), so each field the
 * fingerprint abstracts shows up as a count to argue about: e.g. a node's
 * `nextId` differs whenever two merged worlds drew different id numbers.
 *
 * Cost: nothing unless asked for. With it, one complete serialization per
 * revisited successor (its SHA-1 is compared; texts are diffed only when
 * they differ), and one stored world per state.
 */
export const unexplainedPairsKept = 16;

export class FingerprintAudit {
  /** Revisits compared. */
  compared = 0;
  /** Revisits whose complete serializations differed. */
  differing = 0;
  /** Revisits that differed somewhere no documented abstraction explains (see `abstractedPaths`): unsound merges. */
  unexplained = 0;
  /** The first such pairs (at most `unexplainedPairsKept`), to replay: the state kept, the successor merged with it, and where they differ. */
  readonly unexplainedPairs: Array<{ readonly stored: World; readonly revisit: World; readonly paths: readonly string[] }> = [];
  /** Per sorted list of differing paths (joined by ' + '), how many revisits differed exactly there. */
  readonly byPaths = new Map<string, number>();
  /** The first example of each path list: the two values at its first path. */
  readonly examples = new Map<string, { stored: string; revisit: string }>();

  readonly #worlds: World[] = [];
  readonly #hashes: Array<string | undefined> = [];

  constructor(private readonly symmetric: boolean, private readonly history: boolean) {}

  /** A new state, numbered by the visited set. */
  noteNew(ordinal: number, world: World): void {
    assert(ordinal === this.#worlds.length, 'states are audited in the order they are numbered');
    this.#worlds.push(world);
    this.#hashes.push(undefined);
  }

  /** A successor whose fingerprint is that of state `ordinal`. */
  noteRevisit(ordinal: number, world: World): void {
    const stored = this.#worlds[ordinal];
    assert(stored !== undefined, 'the revisited state was noted');
    this.compared += 1;
    let storedHash = this.#hashes[ordinal];
    if (storedHash === undefined) {
      storedHash = textHash(this.#completeText(stored));
      this.#hashes[ordinal] = storedHash;
    }
    const text = this.#completeText(world);
    if (textHash(text) === storedHash) return;
    this.differing += 1;
    const left = JSON.parse(this.#completeText(stored)) as unknown;
    const right = JSON.parse(text) as unknown;
    const found: Array<{ path: string; stored: string; revisit: string }> = [];
    differences(left, right, '', found);
    assert(found.length > 0, 'different texts differ somewhere');
    const paths = [...new Set(found.map((difference) => difference.path))].sort();
    if (paths.some((path) => !abstractedPaths.some(({ prefix }) => path.startsWith(prefix)))) {
      this.unexplained += 1;
      if (this.unexplainedPairs.length < unexplainedPairsKept) this.unexplainedPairs.push({ stored, revisit: world, paths });
    }
    const key = paths.join(' + ');
    this.byPaths.set(key, (this.byPaths.get(key) ?? 0) + 1);
    if (!this.examples.has(key)) this.examples.set(key, { stored: (found[0] as { stored: string }).stored, revisit: (found[0] as { revisit: string }).revisit });
  }

  /** A readable summary, the `listsMax` most frequent path lists first. */
  report(listsMax = Number.POSITIVE_INFINITY): string {
    const lines = [`fingerprint audit: ${this.compared} revisits compared, ${this.differing} with a different complete state, ${this.unexplained} unexplained`];
    for (const [paths, count] of [...this.byPaths].sort((a, b) => b[1] - a[1]).slice(0, listsMax)) {
      const example = this.examples.get(paths);
      lines.push(`  ${count}× ${paths}${example ? `   e.g. ${example.stored.slice(0, 120)} vs ${example.revisit.slice(0, 120)}` : ''}`);
    }
    return lines.join('\n');
  }

  #completeText(world: World): string {
    return completeCanonicalText(world, this.symmetric ? symmetricRenaming(world, this.history) : undefined);
  }
}

/**
 * The parts of a world the fingerprint leaves out or abstracts, by the path
 * of the complete serialization, each with why two worlds that differ only
 * there behave alike (fingerprint.ts says the same at each omission).
 */
export const abstractedPaths: ReadonlyArray<{ readonly prefix: string; readonly why: string }> = [
  { prefix: '.rest.sightings', why: 'history: no action, machine or property reads it; the explorer gathers goals per transition' },
  { prefix: '.rest.answeredClients', why: 'history: an answered operation is never answered again without a violation, and its effect is in its register' },
  { prefix: '.servers[*].node.nextId', why: 'ids are renamed in order of first appearance; the counter only makes the next id fresh, which it is in both worlds' },
  { prefix: '.servers[*].timers[*]', why: 'timers are a multiset (sorted in the fingerprint): actions enumerate them as a set and firing removes every copy' },
];

function textHash(text: string): string {
  return hash('sha1', text, 'base64');
}

/**
 * The complete serialization of a world under a server renaming (see the
 * module comment): servers in the renamed order, the network sorted as the
 * fingerprint sorts it (unless ordered), then clients, registers, budgets,
 * sightings and violation; minted ids renamed in order of first appearance.
 */
export function completeCanonicalText(world: World, renaming: ServerRenaming | undefined): string {
  const renamed = renaming !== undefined && renaming.index > 0 ? renaming : null;
  const rename = (text: string) => (renamed === null ? text : renamedText(text, renamed));
  const order = renamed === null ? world.servers.map((_, index) => index) : renamed.serverAt;
  const servers = order.map((index) => rename(completeJson(world.servers[index])));
  const network = world.network.map((envelope) => rename(completeJson(envelope)));
  if (world.config.network !== 'ordered') network.sort();
  // Pending and answered client operations apart, so that a difference in the answered ones (history) reads as such.
  const pendingClients = world.clients.filter((client) => client.status === 'pending');
  const answeredClients = world.clients.filter((client) => client.status !== 'pending');
  const rest = rename(completeJson({ pendingClients, answeredClients, registers: world.registers, budgets: world.budgets, sightings: world.sightings, violation: world.violation }));
  const raw = `{"servers":[${servers.join(',')}],"network":[${network.join(',')}],"rest":${rest}}`;
  const names = new Map<string, string>();
  return raw.replace(/(io|read|copy|peer-read):s\d+\.\d+\.\d+/g, (id, prefix: string) => {
    let name = names.get(id);
    if (name === undefined) {
      name = `${prefix}#${names.size}`;
      names.set(id, name);
    }
    return name;
  });
}

/**
 * A complete text under a server renaming. A renaming reorders the lists of
 * servers a node keeps as sets — the configured group and the membership's
 * members, kept sorted by id — so they are sorted again after it, as the
 * identity leaves them. Remembered per text and renaming.
 */
const renamedTexts = new Map<string, string>();

function renamedText(text: string, renaming: ServerRenaming): string {
  const key = `${renaming.index}|${text}`;
  let known = renamedTexts.get(key);
  if (known === undefined) {
    const renamed = renameServers(text, renaming);
    known = renamed.includes('"group"') || renamed.includes('"members"') ? JSON.stringify(sortServerSets(JSON.parse(renamed) as unknown)) : renamed;
    if (renamedTexts.size < 100_000) renamedTexts.set(key, known);
  }
  return known;
}

function sortServerSets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortServerSets);
  if (!isRecord(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (key === 'group' && Array.isArray(item)) out[key] = [...(item as string[])].sort();
    else if (key === 'members' && Array.isArray(item)) out[key] = (item as Array<{ id: string }>).map(sortServerSets).sort((a, b) => ((a as { id: string }).id < (b as { id: string }).id ? -1 : 1));
    else out[key] = sortServerSets(item);
  }
  return out;
}

/** The complete JSON text of one part of a world, once per object (parts are immutable and shared). */
const completeTexts = new WeakMap<object, string>();

function completeJson(value: unknown): string {
  if (typeof value !== 'object' || value === null) return JSON.stringify(value);
  let text = completeTexts.get(value);
  if (text === undefined) {
    text = JSON.stringify(plain(value, 0));
    completeTexts.set(value, text);
  }
  return text;
}

/** Snapshot fields that follow from the machine definition and `value` (`_nodes`), or are the definition itself. */
const snapshotDerived = new Set(['machine', '_nodes']);

/** A JSON-able copy keeping every field but functions and machine definitions (see the module comment). */
function plain(value: unknown, depth: number): unknown {
  assert(depth < 64, 'a world value is at most 64 levels deep');
  if (typeof value === 'function' || value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map((item) => plain(item, depth + 1) ?? null);
  if (value instanceof Map) return { '<Map>': [...value].map(([key, item]) => [plain(key, depth + 1), plain(item, depth + 1)]) };
  if (value instanceof Set) return { '<Set>': [...value].map((item) => plain(item, depth + 1)) };
  // A node's per-page map (page-map.ts) is its entries: every other class instance would stand here by name only.
  if (value instanceof PageMap) return { '<PageMap>': [...(value as PageMap<unknown>)].map(([key, item]) => [key, plain(item, depth + 1)]) };
  const prototype = Object.getPrototypeOf(value) as unknown;
  if (prototype !== Object.prototype && prototype !== null) return `<${(value as object).constructor.name}>`;
  const record = value as Record<string, unknown>;
  if ('log' in record && 'start' in record && 'end' in record) return { '<Remembered>': rememberedEntries(record as unknown as RememberedOrigins<unknown>) };
  const isSnapshot = 'machine' in record && '_nodes' in record;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(record)) {
    if (isSnapshot && snapshotDerived.has(key)) continue;
    out[key] = plain(item, depth + 1);
  }
  return out;
}

/** Where two JSON values differ, by path (array indices as `*`), with the values there. */
function differences(left: unknown, right: unknown, path: string, found: Array<{ path: string; stored: string; revisit: string }>): void {
  if (found.length >= 64) return;
  if (Array.isArray(left) && Array.isArray(right) && left.length === right.length) {
    for (let index = 0; index < left.length; index += 1) differences(left[index], right[index], `${path}[*]`, found);
    return;
  }
  if (isRecord(left) && isRecord(right)) {
    const leftKeys = Object.keys(left);
    const rightKeys = Object.keys(right);
    if (leftKeys.join('\u0000') === rightKeys.join('\u0000')) {
      for (const key of leftKeys) differences(left[key], right[key], `${path}.${/^[A-Za-z_<][\w>]*$/.test(key) ? key : '{key}'}`, found);
      return;
    }
  }
  const a = JSON.stringify(left);
  const b = JSON.stringify(right);
  if (a !== b) found.push({ path: path || '(root)', stored: a, revisit: b });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
