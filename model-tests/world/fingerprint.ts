import { hash } from 'node:crypto';
import type { NodeState } from '../../machines/node/node-state.js';
import { rememberedList } from '../../machines/node/remembered-origins.js';
import type { ServerRenaming } from './server-symmetry.js';
import { assert } from '../../machines/identifiers.js';
import { renameServers, serverRenamings } from './server-symmetry.js';
import type { ClientOperation, Envelope, SimServer, World } from './world.js';

/**
 * A canonical text of a world state for duplicate detection. It keeps what
 * decides future behaviour — machine state values and the context fields that
 * guards read, durable records, data, messages, client history — and leaves
 * out what does not (id counters, machine definitions inside snapshots).
 * Messages on an unordered network form a multiset, so they are sorted.
 *
 * The fingerprint is the SHA-1 of that text (160 bits, base64); the
 * explorer's visited set keeps 96 bits of it (explorer/visited-set.ts: two
 * states collide with probability below n²/2⁹⁷, under 10⁻¹⁵ for the 10⁷
 * states a run can hold); the text itself would cost kilobytes per state.
 *
 * With `symmetric` the fingerprint is the canonical text of one chosen image
 * under the renamings of interchangeable servers (see server-symmetry.ts and
 * symmetricCanonicalText), so a world and its mirror image share one
 * fingerprint.
 *
 * Two parts of a world are history, not behaviour, and are left out unless
 * `history` is asked for, so worlds that differ only in the path that led to
 * them are one state:
 * - its sightings (which goals its path met: a move completed, a crash hit
 *   stage s), which no action, machine or property reads; the explorer
 *   gathers the goals per transition instead (explorer/explore.ts);
 * - the client operations already answered: a second answer to one is a
 *   violation whether it is listed or not, and what it wrote or returned is
 *   in its block's register, which the linearizability check reads.
 * A test searches with and without the history and demands the same outcome
 * (explorer/reductions.test.ts).
 *
 * Speed: a world shares its unchanged servers and envelopes with its parent,
 * so the JSON text of each server and each envelope is computed once per
 * object (WeakMaps) and interned by text (Piece), and the world's text is
 * assembled from the pieces: servers and envelopes are JSON texts, joined by
 * newlines (which JSON text never holds), so the assembly is injective.
 */
export function fingerprint(world: World, symmetric = false, history = false): string {
  return hash('sha1', symmetric ? symmetricCanonicalText(world, history) : canonicalText(world, undefined, history), 'base64');
}

/** The same fingerprint as raw bytes (20), for the explorer's compact visited set. */
export function fingerprintDigest(world: World, symmetric = false, history = false): Buffer {
  return hash('sha1', symmetric ? symmetricCanonicalText(world, history) : canonicalText(world, undefined, history), 'buffer');
}

/** The exact fingerprints of every renamed image of a world (the identity first), for tests of the reduction. */
export function imageFingerprints(world: World): string[] {
  return serverRenamings(world).map((renaming) => hash('sha1', canonicalText(world, renaming), 'base64'));
}

/**
 * The least canonical text over the server renamings the configuration
 * allows, among those that put the servers in order of their signatures
 * (summaries blind to names, the same for a server and its image). Usually
 * the signatures differ and one renaming is left, so one text is built
 * instead of one per renaming. Any choice of image would be sound; this one
 * gives a world and its image the same text.
 */
export function symmetricCanonicalText(world: World, history = false): string {
  const renamings = serverRenamings(world);
  if (renamings.length === 1) return canonicalText(world, undefined, history);
  const powerLoss = world.config.powerLoss === true;
  const signatures = world.servers.map((server) => serverSignature(server, powerLoss));
  let candidates: ServerRenaming[] = [];
  let leastOrder: string[] | null = null;
  for (const renaming of renamings) {
    const order = renaming.serverAt.map((index) => signatures[index] as string);
    const comparison = leastOrder === null ? -1 : compareOrders(order, leastOrder);
    if (comparison < 0) {
      leastOrder = order;
      candidates = [renaming];
    } else if (comparison === 0) {
      candidates.push(renaming);
    }
  }
  let least: string | null = null;
  for (const renaming of candidates) {
    const text = canonicalText(world, renaming, history);
    if (least === null || text < least) least = text;
  }
  assert(least !== null, 'some renaming is a candidate');
  return least;
}

function compareOrders(left: readonly string[], right: readonly string[]): number {
  for (let index = 0; index < left.length; index += 1) {
    const a = left[index] as string;
    const b = right[index] as string;
    if (a !== b) return a < b ? -1 : 1;
  }
  return 0;
}

/**
 * Ids a node mints (`io:s1.0.7`, `read:s2.1.3`) name things only by identity,
 * so two states that differ only in which numbers were drawn behave alike.
 * They are renamed in order of first appearance.
 *
 * The text of each server and envelope is split at its ids once per object
 * (and per renaming), so a world's canonical text is assembled from cached
 * literals and a renaming map, without running a regular expression over the
 * whole text. `canonicalTextByRegex` is the plain definition, kept for the
 * test that both agree.
 */
export function canonicalText(world: World, renaming?: ServerRenaming, history = false): string {
  const names = new Map<string, string>();
  const out: string[] = [];
  const append = (parts: readonly string[]) => {
    for (let index = 0; index < parts.length; index += 1) {
      const part = parts[index] as string;
      if (index % 2 === 0) {
        out.push(part);
        continue;
      }
      let name = names.get(part);
      if (name === undefined) {
        name = `${part.slice(0, part.indexOf(':'))}#${names.size}`;
        names.set(part, name);
      }
      out.push(name);
    }
  };
  const { servers, network, rest } = rawPieces(world, renaming, history);
  servers.forEach((piece, index) => {
    if (index > 0) out.push('\n');
    append(piece.parts);
  });
  out.push('\n\n');
  network.forEach((piece, index) => {
    if (index > 0) out.push('\n');
    append(piece.parts);
  });
  out.push('\n\n');
  for (const piece of rest) append(piece.parts);
  return out.join('');
}

export function canonicalTextByRegex(world: World, renaming?: ServerRenaming, history = false): string {
  const names = new Map<string, string>();
  const { servers, network, rest } = rawPieces(world, renaming, history);
  const raw = `${servers.map((piece) => piece.text).join('\n')}\n\n${network.map((piece) => piece.text).join('\n')}\n\n${rest.map((piece) => piece.text).join('')}`;
  return raw.replace(mintedIdPattern, (id, prefix: string) => {
    let name = names.get(id);
    if (name === undefined) {
      name = `${prefix}#${names.size}`;
      names.set(id, name);
    }
    return name;
  });
}

/**
 * A JSON text and the same text split at minted ids: literals at even places,
 * ids at odd ones. Pieces are interned by text: many server objects (the
 * same server state reached along different paths) share one piece, its
 * split and its renamed images, which saves both the work and the heap. The
 * intern table is emptied at the start of every search and holds at most
 * `internedPiecesMax` pieces; past that, pieces are simply not shared.
 */
interface Piece {
  readonly text: string;
  readonly parts: readonly string[];
  /** The piece's image under each renaming, by renaming index (0, the identity, unused). */
  readonly renamed: Piece[];
  /** The server signature, for a server's piece: a function of the text (see serverSignature). */
  signature: string | null;
}

const mintedIdSplitter = /((?:io|read|copy|peer-read):s\d+\.\d+\.\d+)/;
export const internedPiecesMax = 500_000;
const internedPieces = new Map<string, Piece>();

/** Forgets the interned pieces of an earlier search (the explorer calls it as a search starts). */
export function forgetInternedPieces(): void {
  internedPieces.clear();
}

function pieceOf(text: string): Piece {
  const known = internedPieces.get(text);
  if (known) return known;
  const piece: Piece = { text, parts: text.split(mintedIdSplitter), renamed: [], signature: null };
  if (internedPieces.size < internedPiecesMax) internedPieces.set(text, piece);
  return piece;
}

function renamedPiece(piece: Piece, renaming: ServerRenaming | null): Piece {
  if (renaming === null || renaming.index === 0) return piece;
  let image = piece.renamed[renaming.index];
  if (image === undefined) {
    image = pieceOf(renameServers(piece.text, renaming));
    piece.renamed[renaming.index] = image;
  }
  return image;
}

const serverPieces = new WeakMap<SimServer, Piece>();
const envelopePieces = new WeakMap<Envelope, Piece>();
const mintedIdPattern = /(io|read|copy|peer-read):s\d+\.\d+\.\d+/g;

/**
 * A summary of a server that names no server and no minted id, so a server
 * and its renamed image have the same one: whether it is up, its incarnation,
 * its page data, the status and epoch of its copies and durable records, its
 * move stages, and how many requests, serves, continuations, tokens, timers
 * and pending commits it holds. It need not tell every pair of servers apart
 * (ties fall back to comparing whole texts); it must only be blind to names.
 */
function serverSignature(server: SimServer, powerLoss: boolean): string {
  const piece = serverPiece(server, powerLoss, null);
  if (piece.signature === null) {
    // Every field summarised here is in the server's text, so servers sharing a piece share the signature.
    const { node } = server;
    const copies = Object.entries(node.replicas).map(([key, replica]) => `${key}:${replica.context.record?.status ?? '-'}:${replica.context.record?.epoch ?? '-'}`);
    const durable = Object.entries(server.meta.replicas).map(([key, record]) => `${key}:${record.status}:${record.epoch}`);
    const moves = Object.entries(node.moves).map(([key, move]) => `${key}:${move.snapshot.status}:${move.snapshot.context.checkpoint.stage}:${move.snapshot.context.pending?.stage ?? '-'}`);
    piece.signature = [
      server.up ? 1 : 0, node.incarnation, JSON.stringify(server.data), copies.join(','), durable.join(','), moves.join(','), Object.keys(server.meta.moves).length,
      node.requests.size, node.serves.size, node.continuations.size, Object.keys(server.tokens).length,
      server.timers.length, server.pendingMeta.length, rememberedList(node.forwardedWritesDone).length,
    ].join('|');
  }
  return piece.signature;
}

/** A server's piece under a renaming (null: as it is); its JSON text is built once per server object. */
function serverPiece(server: SimServer, powerLoss: boolean, renaming: ServerRenaming | null): Piece {
  let piece = serverPieces.get(server);
  if (piece === undefined) {
    piece = pieceOf(JSON.stringify([
      server.up, projectNode(server.node), server.meta, server.pendingMeta.map((pending) => pending.writes), server.data,
      powerLoss ? server.durableData : null,
      server.tokens, [...server.timers].sort(),
    ]));
    serverPieces.set(server, piece);
  }
  return renamedPiece(piece, renaming);
}

function envelopePiece(envelope: Envelope, renaming: ServerRenaming | null): Piece {
  let piece = envelopePieces.get(envelope);
  if (piece === undefined) {
    piece = pieceOf(JSON.stringify(envelope));
    envelopePieces.set(envelope, piece);
  }
  return renamedPiece(piece, renaming);
}

/** The world's pieces in canonical order: servers by position, the network (sorted unless ordered), the rest. */
function rawPieces(world: World, renaming: ServerRenaming | undefined, history: boolean): { servers: Piece[]; network: Piece[]; rest: Piece[] } {
  const powerLoss = world.config.powerLoss === true;
  const renamed = renaming !== undefined && renaming.index > 0 ? renaming : null;
  const servers = renamed
    ? renamed.serverAt.map((index) => serverPiece(world.servers[index] as SimServer, powerLoss, renamed))
    : world.servers.map((server) => serverPiece(server, powerLoss, null));
  const network = world.network.map((envelope) => envelopePiece(envelope, renamed));
  if (world.config.network !== 'ordered') network.sort((left, right) => (left.text < right.text ? -1 : left.text > right.text ? 1 : 0));
  return { servers, network, rest: restPieces(world, renamed, history) };
}

/**
 * The pieces of everything outside servers and network, whose joined text
 * is the JSON text of [pending clients, registers, budgets, violation] (with
 * history: [clients, registers, budgets, sightings, violation]):
 * literal brackets and commas around one piece per object. A world shares
 * those objects with its parent unless it changed them (a delivered message
 * usually answers no client), so each object's piece (its JSON text, split,
 * and its renamed images) is built once per object (a WeakMap), and no text
 * of the whole is built or interned per world.
 */
const objectPieces = new WeakMap<object, Piece>();
const literal = (text: string): Piece => ({ text, parts: [text], renamed: [], signature: null });
const openBracket = literal('[');
const comma = literal(',');
const noViolationEnd = literal('null]');

function objectPiece(value: object): Piece {
  let piece = objectPieces.get(value);
  if (piece === undefined) {
    const text = JSON.stringify(value);
    piece = { text, parts: text.split(mintedIdSplitter), renamed: [], signature: null };
    objectPieces.set(value, piece);
  }
  return piece;
}

function restPieces(world: World, renaming: ServerRenaming | null, history: boolean): Piece[] {
  const piece = (value: object) => renamedPiece(objectPiece(value), renaming);
  const end = world.violation === null ? noViolationEnd : renamedPiece(literalPiece(`${JSON.stringify(world.violation)}]`), renaming);
  const sightings = history ? [piece(world.sightings), comma] : [];
  return [openBracket, piece(history ? world.clients : pendingClients(world.clients)), comma, piece(world.registers), comma, piece(world.budgets), comma, ...sightings, end];
}

/** The client operations not yet answered; one array per clients array (kept while it lives), so its piece is cached too. */
const pendingClientsOf = new WeakMap<readonly ClientOperation[], readonly ClientOperation[]>();

function pendingClients(clients: readonly ClientOperation[]): readonly ClientOperation[] {
  let pending = pendingClientsOf.get(clients);
  if (pending === undefined) {
    pending = clients.filter((client) => client.status === 'pending');
    pendingClientsOf.set(clients, pending);
  }
  return pending;
}

function literalPiece(text: string): Piece {
  return { text, parts: text.split(mintedIdSplitter), renamed: [], signature: null };
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
    Object.entries(node.moves).map(([key, move]) => [key, move.snapshot.value, move.snapshot.status, move.snapshot.context.checkpoint, move.snapshot.context.pending, move.snapshot.context.attempt, move.snapshot.context.piece, move.chunksStored ?? null]),
    Object.entries(node.replicas).map(([key, replica]) => [key, replica.value, replica.context.record]),
    node.routes,
    [...node.requests].map(([id, entry]) => {
      const { retries, route, target, localCopy, forwardTo } = entry.snapshot.context;
      return [id, entry.snapshot.value, retries, route, target, localCopy, forwardTo, entry.readToken, entry.writeToken];
    }),
    Object.fromEntries(node.serves), [...node.continuations], node.flushes,
    node.writeSequences, node.localWritesInFlight, node.blockVersions, node.parked, node.handoversDeferred, node.attemptsJoined, rememberedList(node.forwardedWritesDone),
    // Epoch 0 is the record every server builds from the group list at start, outside the fingerprint like the list itself;
    // projecting it as a mark keeps the member order (a list of names) from telling apart worlds that symmetry merges.
    node.incarnation, node.membership.epoch === 0 ? 'bootstrap membership' : node.membership, node.leaveCheck,
  ];
}
