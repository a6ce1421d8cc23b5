import { hash } from 'node:crypto';
import type { NodeState } from '../../machines/node/node-state.js';
import { rememberedEntries, rememberedList } from '../../machines/node/remembered-origins.js';
import type { ServerRenaming } from './server-symmetry.js';
import { assert } from '../../machines/identifiers.js';
import { murmur3x86Words } from './murmur3.js';
import { renameServers, serverRenamings } from './server-symmetry.js';
import type { ClientOperation, Envelope, SimServer, World } from './world.js';

/**
 * A canonical text of a world state for duplicate detection. It keeps what
 * decides future behaviour — machine state values and the context fields that
 * guards read, durable records, data, messages, client history — and leaves
 * out what does not (id counters, machine definitions inside snapshots).
 * Messages on an unordered network form a multiset, so they are sorted.
 *
 * The fingerprint is a 128-bit hash that is equal for two worlds exactly
 * when their canonical texts are (up to hash collisions), computed without
 * building the text. The text is a sequence of pieces — one JSON text per
 * server, per envelope and per other part of the world — with the minted ids
 * inside them renamed in order of first appearance. Each piece carries 96
 * bits of the SHA-1 of its shape (its text with each id cut to its prefix:
 * `io:s1.0.7` becomes `io`), computed once per piece and shared by every world
 * holding it; a world's fingerprint is MurmurHash3 (murmur3.ts) of the stream
 * of its pieces' shape hashes, each followed by the numbers its ids are
 * renamed to, with the network's size between servers and envelopes. A
 * shape and its numbers give back the piece's renamed text and the counts
 * give back where each piece stands, so equal streams mean equal texts and
 * equal texts mean equal streams: the search merges exactly the states it
 * merged when the fingerprint was SHA-1 of the whole text (about 2 KB per
 * world, built and hashed per transition), and a test compares the two.
 *
 * Collisions. A missed state needs two distinct states (or two distinct
 * pieces) to agree on 96 bits: with n states in the explorer's visited set
 * the chance is below n²/2⁹⁷ (visited-set.ts), plus m²/2⁹⁷ for the m
 * distinct pieces, treating both hashes as random functions as SPIN's and
 * TLC's fingerprints do; for the reference bound (10⁶ states, fewer pieces)
 * that is below 10⁻¹⁷, and below 10⁻¹⁵ for the 10⁷ states a run can hold.
 *
 * With `symmetric` the fingerprint is that of one chosen image under the
 * renamings of interchangeable servers (see server-symmetry.ts and
 * symmetricRenaming), so a world and its mirror image share one
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
 * Speed. A world shares its unchanged servers and envelopes with its parent,
 * and during a search one server state or message is one object
 * (canonical-objects.ts). So the JSON text of each server and envelope is
 * computed once per object (WeakMaps) and interned (Piece) with its split
 * at ids, its shape hash, its signature and its renamed images. A world's
 * fingerprint then costs a table lookup per server and envelope and a hash
 * of a few dozen words. Servers and envelopes are JSON texts, joined by
 * newlines (which JSON text never holds), so the text's assembly is
 * injective.
 */
export function fingerprint(world: World, symmetric = false, history = false): string {
  return Buffer.from(fingerprintDigest(world, symmetric, history)).toString('base64');
}

/** The same fingerprint as raw bytes (16), for tests and callers that keep it. */
export function fingerprintDigest(world: World, symmetric = false, history = false): Uint8Array {
  return new Uint8Array(fingerprintWords(world, symmetric, history).slice().buffer);
}

/**
 * The fingerprint as four 32-bit words, in a buffer reused by the next call:
 * the explorer reads the words it keeps at once, so no digest is allocated
 * per transition.
 */
export function fingerprintWords(world: World, symmetric = false, history = false): Int32Array {
  const pieces = serverPiecesOf(world);
  digestInto(world, pieces, symmetric ? renamingByPieces(world, pieces, history) : undefined, history);
  return digestWords;
}

/** Each server's piece as it is, into a scratch list (one search runs on one thread), for the renaming and the digest to share. */
const serverPieceScratch: Piece[] = [];

function serverPiecesOf(world: World): Piece[] {
  const powerLoss = world.config.powerLoss === true;
  const pieces = serverPieceScratch;
  pieces.length = 0;
  for (let index = 0; index < world.servers.length; index += 1) pieces.push(serverPiece(world.servers[index] as SimServer, powerLoss, null));
  return pieces;
}

/** The exact fingerprints of every renamed image of a world (the identity first), for tests of the reduction. */
export function imageFingerprints(world: World): string[] {
  return serverRenamings(world).map((renaming) => {
    digestInto(world, serverPiecesOf(world), renaming, false);
    return Buffer.from(digestWords.slice().buffer).toString('base64');
  });
}

/** The canonical text of the image the symmetric fingerprint hashes: the least text over the renamings. */
export function symmetricCanonicalText(world: World, history = false): string {
  return canonicalText(world, symmetricRenaming(world, history), history);
}

/** How often the server signatures tied and whole texts had to be compared (for the benchmark). */
export const symmetryStats = { ties: 0 };

/** Scratch for renamingByPieces (one search runs on one thread): the servers' signatures, the tied renamings. */
const signatureScratch: string[] = [];
const tiedScratch: ServerRenaming[] = [];

/**
 * The image whose canonical text is least over the server renamings the
 * configuration allows, among those that put the servers in order of their
 * signatures (summaries blind to names, the same for a server and its
 * image). Usually the signatures differ and one renaming is left, so no text
 * is built; on a tie the candidates' texts are built and compared. Any
 * choice of image would be sound; this one gives a world and its image the
 * same text, hence the same fingerprint. (undefined: no renaming.)
 */
export function symmetricRenaming(world: World, history = false): ServerRenaming | undefined {
  return renamingByPieces(world, serverPiecesOf(world), history);
}

function renamingByPieces(world: World, pieces: readonly Piece[], history: boolean): ServerRenaming | undefined {
  const renamings = renamingsOf(world);
  if (renamings.length === 1) return undefined;
  const signatures = signatureScratch;
  signatures.length = 0;
  for (let index = 0; index < pieces.length; index += 1) signatures.push(serverSignature(world.servers[index] as SimServer, pieces[index] as Piece));
  const tied = tiedScratch;
  tied.length = 0;
  let least = renamings[0] as ServerRenaming;
  tied.push(least);
  for (let index = 1; index < renamings.length; index += 1) {
    const renaming = renamings[index] as ServerRenaming;
    const comparison = compareOrders(signatures, renaming, least);
    if (comparison < 0) {
      least = renaming;
      tied.length = 0;
      tied.push(renaming);
    } else if (comparison === 0) {
      tied.push(renaming);
    }
  }
  if (tied.length === 1) return least;
  symmetryStats.ties += 1;
  const candidates = tied.slice();
  let leastText: string | null = null;
  let chosen: ServerRenaming | undefined;
  for (const renaming of candidates) {
    const text = canonicalText(world, renaming, history);
    if (leastText === null || text < leastText) {
      leastText = text;
      chosen = renaming;
    }
  }
  assert(chosen !== undefined, 'some renaming is a candidate');
  return chosen;
}

/** Compares the servers' signatures in the order each renaming puts them in. */
function compareOrders(signatures: readonly string[], left: ServerRenaming, right: ServerRenaming): number {
  for (let position = 0; position < signatures.length; position += 1) {
    const a = signatures[left.serverAt[position] as number] as string;
    const b = signatures[right.serverAt[position] as number] as string;
    if (a !== b) return a < b ? -1 : 1;
  }
  return 0;
}

/** serverRenamings, remembered for the last volume seen (one per search), without building its key per world. */
let renamingsVolume: object | null = null;
let renamingsCount = 0;
let renamingsKnown: readonly ServerRenaming[] = [];

function renamingsOf(world: World): readonly ServerRenaming[] {
  if (world.volume !== renamingsVolume || world.servers.length !== renamingsCount) {
    renamingsKnown = serverRenamings(world);
    renamingsVolume = world.volume;
    renamingsCount = world.servers.length;
  }
  return renamingsKnown;
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
 * test that both agree. The explorer builds texts only to break ties between
 * images (symmetricRenaming); the fingerprint hashes the same pieces.
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
 * split, its shape hash and its renamed images, which saves both the work
 * and the heap. The intern table is emptied at the start of every search and
 * holds at most `internedPiecesMax` pieces; past that, pieces are simply not
 * shared (each computes its own split and hash, which are the same).
 */
interface Piece {
  readonly text: string;
  readonly parts: readonly string[];
  /** The piece's image under each renaming, by renaming index (0, the identity, unused). */
  readonly renamed: Piece[];
  /** The server signature, for a server's piece: a function of the text (see serverSignature). */
  signature: string | null;
  /** 96 bits of the SHA-1 of the piece's shape (see shapePiece), once `shaped`. */
  shaped: boolean;
  shape0: number;
  shape1: number;
  shape2: number;
  /** The objects with this text that canonical-objects.ts shares, once asked for. */
  twins: object[] | null;
}

const mintedIdSplitter = /((?:io|read|copy|peer-read):s\d+\.\d+\.\d+)/;
const mintedIdPattern = /(io|read|copy|peer-read):s\d+\.\d+\.\d+/g;
export const internedPiecesMax = 500_000;
const internedPieces = new Map<string, Piece>();

/** How many pieces are interned (for the benchmark: past `internedPiecesMax`, texts and twins stop being shared). */
export function internedPieceCount(): number {
  return internedPieces.size;
}

/** Forgets the interned pieces of an earlier search (the explorer calls it as a search starts). */
export function forgetInternedPieces(): void {
  internedPieces.clear();
}

function newPiece(text: string): Piece {
  // Most texts hold no minted id; `includes` is cheaper than a split by a regular expression.
  const parts = text.includes(':s') ? text.split(mintedIdSplitter) : [text];
  return { text, parts, renamed: [], signature: null, shaped: false, shape0: 0, shape1: 0, shape2: 0, twins: null };
}

function pieceOf(text: string): Piece {
  const known = internedPieces.get(text);
  if (known) return known;
  const piece = newPiece(text);
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

/**
 * A piece's shape is its text with each minted id cut to its prefix, the
 * parts joined by newlines (which neither a JSON text nor a prefix holds, so
 * the parts can be read back): a piece's renamed text is its shape and the
 * numbers its ids are renamed to.
 */
function shapePiece(piece: Piece): void {
  const { parts } = piece;
  let shape = parts[0] as string;
  for (let index = 1; index < parts.length; index += 2) {
    const id = parts[index] as string;
    shape += `\n${id.slice(0, id.indexOf(':'))}\n${parts[index + 1] as string}`;
  }
  const digest = hash('sha1', shape, 'buffer');
  piece.shape0 = digest.readInt32LE(0);
  piece.shape1 = digest.readInt32LE(4);
  piece.shape2 = digest.readInt32LE(8);
  piece.shaped = true;
}

/**
 * The words a world's fingerprint hashes, reused from world to world (one
 * search runs on one thread), and the numbers its minted ids are given, in
 * order of first appearance as in canonicalText. Bounded by the world: three
 * words per piece, one per id, one for the network's size.
 */
let stream = new Int32Array(256);
let streamLength = 0;
const streamNames = new Map<string, number>();
const digestWords = new Int32Array(4);
const networkScratch: Piece[] = [];

function pushWord(word: number): void {
  if (streamLength === stream.length) {
    const grown = new Int32Array(stream.length * 2);
    grown.set(stream);
    stream = grown;
  }
  stream[streamLength] = word;
  streamLength += 1;
}

function pushPiece(piece: Piece): void {
  if (!piece.shaped) shapePiece(piece);
  pushWord(piece.shape0);
  pushWord(piece.shape1);
  pushWord(piece.shape2);
  const { parts } = piece;
  for (let index = 1; index < parts.length; index += 2) {
    const id = parts[index] as string;
    let number = streamNames.get(id);
    if (number === undefined) {
      number = streamNames.size;
      streamNames.set(id, number);
    }
    pushWord(number);
  }
}

function comparePieceTexts(left: Piece, right: Piece): number {
  return left.text < right.text ? -1 : left.text > right.text ? 1 : 0;
}

/**
 * The fingerprint of a world's image under a renaming, into `digestWords`:
 * the pieces rawPieces lists, in its order (servers, the network's size and
 * envelopes, the rest), each as its shape hash and its ids' numbers. It is
 * rawPieces written out without its arrays and closures, as it runs once per
 * transition; the test of the fingerprint against canonical texts covers both.
 */
function digestInto(world: World, serverPieces: readonly Piece[], renaming: ServerRenaming | undefined, history: boolean): void {
  streamLength = 0;
  if (streamNames.size > 0) streamNames.clear();
  const renamed = renaming !== undefined && renaming.index > 0 ? renaming : null;
  const { network } = world;
  for (let position = 0; position < serverPieces.length; position += 1) {
    const piece = serverPieces[renamed === null ? position : (renamed.serverAt[position] as number)] as Piece;
    pushPiece(renamed === null ? piece : renamedPiece(piece, renamed));
  }
  pushWord(network.length);
  if (network.length === 1) {
    pushPiece(envelopePiece(network[0] as Envelope, renamed));
  } else if (network.length > 1) {
    const pieces = networkScratch;
    pieces.length = 0;
    for (let index = 0; index < network.length; index += 1) pieces.push(envelopePiece(network[index] as Envelope, renamed));
    if (world.config.network !== 'ordered') pieces.sort(comparePieceTexts);
    for (let index = 0; index < pieces.length; index += 1) pushPiece(pieces[index] as Piece);
  }
  pushPiece(openBracket);
  pushPiece(renamedPiece(history ? objectPiece(world.clients) : pendingClientsPiece(world.clients), renamed));
  pushPiece(comma);
  pushPiece(renamedPiece(objectPiece(world.registers), renamed));
  pushPiece(comma);
  pushPiece(renamedPiece(objectPiece(world.budgets), renamed));
  pushPiece(comma);
  if (history) {
    pushPiece(renamedPiece(objectPiece(world.sightings), renamed));
    pushPiece(comma);
  }
  pushPiece(world.violation === null ? noViolationEnd : renamedPiece(violationPiece(world.violation), renamed));
  murmur3x86Words(stream, streamLength, 0, digestWords);
}

/**
 * A summary of a server that names no server and no minted id, so a server
 * and its renamed image have the same one: whether it is up, its incarnation,
 * its page data, the status and epoch of its copies and durable records, its
 * move stages, and how many requests, serves, continuations, tokens, timers
 * and pending commits it holds, and whether its disk fails its next write. It need not tell every pair of servers apart
 * (ties fall back to comparing whole texts); it must only be blind to names.
 */
function serverSignature(server: SimServer, piece: Piece): string {
  if (piece.signature === null) {
    // Every field summarised here is in the server's text, so servers sharing a piece share the signature.
    const { node } = server;
    const copies = [...node.replicas].map(([key, replica]) => `${key}:${replica.context.record?.status ?? '-'}:${replica.context.record?.epoch ?? '-'}`);
    const durable = Object.entries(server.meta.replicas).map(([key, record]) => `${key}:${record.status}:${record.epoch}`);
    const moves = Object.entries(node.moves).map(([key, move]) => `${key}:${move.snapshot.status}:${move.snapshot.context.checkpoint.stage}:${move.snapshot.context.pending?.stage ?? '-'}`);
    piece.signature = [
      server.up ? 1 : 0, node.incarnation, JSON.stringify(server.data), copies.join(','), durable.join(','), moves.join(','), Object.keys(server.meta.moves).length,
      node.requests.size, node.serves.size, node.continuations.size, Object.keys(server.tokens).length,
      server.timers.length, server.pendingMeta.length, rememberedList(node.forwardedWritesDone).length, rememberedList(node.forwardedTriesEnded).length,
      server.diskFailsNext ? 1 : 0,
    ].join('|');
  }
  return piece.signature;
}

const serverPieces = new WeakMap<SimServer, Piece>();
const envelopePieces = new WeakMap<Envelope, Piece>();

/** A server's piece under a renaming (null: as it is); its text is built once per server object. */
function serverPiece(server: SimServer, powerLoss: boolean, renaming: ServerRenaming | null): Piece {
  let piece = serverPieces.get(server);
  if (piece === undefined) {
    piece = pieceOf(serverText(server, powerLoss));
    serverPieces.set(server, piece);
  }
  return renaming === null ? piece : renamedPiece(piece, renaming);
}

/** The servers with the same text as this one that canonical-objects.ts keeps (the list is the piece's, to extend). */
export function serverTwins(server: SimServer, powerLoss: boolean): SimServer[] {
  const piece = serverPiece(server, powerLoss, null);
  piece.twins ??= [];
  return piece.twins as SimServer[];
}

/** The same for envelopes. */
export function envelopeTwins(envelope: Envelope): Envelope[] {
  const piece = envelopePiece(envelope, null);
  piece.twins ??= [];
  return piece.twins as Envelope[];
}

/**
 * A server's JSON text: the JSON text of its projection. It is built once
 * per server object; with one object per server state during a search
 * (canonical-objects.ts) that is once per state and cascade that made it.
 * (Assembling it from texts cached per part — node maps, durable records —
 * was tried: the WeakMap insertions per new part cost more than the
 * encoding they saved, 24,000 against 27,500 states per CPU-second.)
 */
export function serverText(server: SimServer, powerLoss: boolean): string {
  return JSON.stringify([
    server.up, projectNode(server.node), server.meta, server.pendingMeta, server.data,
    powerLoss ? server.durableData : null,
    server.tokens, [...server.timers].sort(), server.diskFailsNext,
  ]);
}

/**
 * Node fields the fingerprint leaves out, each because it cannot change what
 * happens next: the configuration and volume definitions are fixed for a
 * run, `started` follows the server's `up`, and `nextId` only numbers ids the
 * canonical text renames anyway. Every other field must be projected; a test
 * mutates each field and demands a different fingerprint.
 *
 * What else the server text leaves out, and why that is safe (the audit,
 * fingerprint-audit.ts, checks each claim on every state a search merges):
 * - the server's name (`id`, and the node's `config.self`): servers stand in
 *   the text in the order of their names (world.ts keeps server i named
 *   s<i+1>), and a renaming moves a server to the place of its new name;
 * - the simulated server's `incarnation`: it is the node's, which is projected
 *   (a start and a crash set both);
 * - `durableData` without power cuts: only a power cut reads it;
 * - the order of `timers`: a multiset to every reader (the enabled actions
 *   take them as a set, firing removes every copy), so they are sorted;
 * - in a request entry, the routing machine's context fields other than
 *   those listed: `requestId` is the entry's key; `self`, `retriesMax`,
 *   `hopCountMax` and `forwardTimeoutMs` are configuration; `pageKey` and
 *   `idempotent` follow from the operation (projected); `hopCount` and the
 *   entry's `replyTo` are spelt in its key (`c:<client id>`, or
 *   `p:<sender>:<sender's key>:<retry>`, one `p:` per hop); `failure` is set
 *   only on the way to a final state, which ends the entry in the same step;
 * - in a replica, its context's `pageKey`, which is the record's key;
 * - remembered forwarded writes as their window, oldest first: `isRemembered`
 *   and `remember` read nothing else (the shared log past the window is
 *   representation), and the order is kept because it decides which is
 *   forgotten first;
 * - XState snapshot fields other than value, status and context (`_nodes`
 *   follows from the value, `machine` is the definition; tags, children,
 *   history, output and error are the same in every state these machines
 *   reach, which the audit checks).
 * Two parts were missing until the audit found merges of worlds that behave
 * differently: a request's `operation` (a forwarded read outlives its client
 * when the forwarder crashes, and its block was then nowhere else; the two
 * merged owners answered with different data), and, projected since for the
 * same reason although no search merged on them, a pending commit's
 * completion id and a move's whole context (source, destination, kind,
 * piece count).
 */
export const nodeFieldsIgnored = ['config', 'volumes', 'started', 'nextId'] as const;

function projectNode(node: NodeState): unknown {
  return [
    Object.entries(node.moves).map(([key, move]) => [key, move.snapshot.value, move.snapshot.status, move.snapshot.context, move.chunksStored ?? null, move.destinationServesAttempt ?? null, move.failureDeferred ?? null]),
    // The per-page maps as entry lists in their canonical order: they iterate in an order fixed by their entries alone,
    // whatever order the entries came in (page-map.ts).
    [...node.replicas].map(([key, replica]) => [key, replica.value, replica.context.record]),
    [...node.routes],
    [...node.requests].map(([id, entry]) => {
      const { retries, retriesCharged, route, target, localCopy, forwardTo } = entry.snapshot.context;
      // The operation (its page, offset, length, kind, FUA) decides which part of the page is read or written and by
      // whom during a move; the clients list holds it only while the client waits, and a forwarded read outlives its
      // client when the forwarder crashes (fingerprint-audit.ts found such merges: the answer carried another block).
      return [id, entry.snapshot.value, retries, retriesCharged, route, target, localCopy, forwardTo, entry.readToken, entry.writeToken, entry.operation, entry.holders, entry.senderIncarnation];
    }),
    Object.fromEntries(node.serves), [...node.continuations], node.flushes,
    node.lastWriteSequence, [...node.localWritesInFlight], node.blockVersions, node.parked, node.handoversDeferred, node.attemptsJoined, rememberedEntries(node.forwardedWritesDone), rememberedEntries(node.forwardedTriesEnded),
    // Epoch 0 is the record every server builds from the group list at start, outside the fingerprint like the list itself;
    // projecting it as a mark keeps the member order (a list of names) from telling apart worlds that symmetry merges.
    node.incarnation, node.membership.epoch === 0 ? 'bootstrap membership' : node.membership, node.leaveCheck, node.forgetCheck, node.lostClaim, node.lostCheck, node.nonMemberRoutesMayRemain,
    node.lossEpoch, node.lossWatches, node.departedLossEpochs, node.earlierRunsSynced, node.flushExcused, node.volumeReservations, node.incarnationFence,
  ];
}

function envelopePiece(envelope: Envelope, renaming: ServerRenaming | null): Piece {
  let piece = envelopePieces.get(envelope);
  if (piece === undefined) {
    piece = pieceOf(JSON.stringify(envelope));
    envelopePieces.set(envelope, piece);
  }
  return renaming === null ? piece : renamedPiece(piece, renaming);
}

/** The world's pieces in canonical order: servers by position, the network (sorted unless ordered), the rest. */
function rawPieces(world: World, renaming: ServerRenaming | undefined, history: boolean): { servers: Piece[]; network: Piece[]; rest: Piece[] } {
  const powerLoss = world.config.powerLoss === true;
  const renamed = renaming !== undefined && renaming.index > 0 ? renaming : null;
  const servers = renamed
    ? renamed.serverAt.map((index) => serverPiece(world.servers[index] as SimServer, powerLoss, renamed))
    : world.servers.map((server) => serverPiece(server, powerLoss, null));
  const network = world.network.map((envelope) => envelopePiece(envelope, renamed));
  if (world.config.network !== 'ordered') network.sort(comparePieceTexts);
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
const literal = (text: string): Piece => newPiece(text);
const openBracket = literal('[');
const comma = literal(',');
const noViolationEnd = literal('null]');

function objectPiece(value: object): Piece {
  let piece = objectPieces.get(value);
  if (piece === undefined) {
    piece = pieceOf(JSON.stringify(value));
    objectPieces.set(value, piece);
  }
  return piece;
}

function violationPiece(violation: string): Piece {
  return newPiece(`${JSON.stringify(violation)}]`);
}

function restPieces(world: World, renaming: ServerRenaming | null, history: boolean): Piece[] {
  const piece = (value: object) => renamedPiece(objectPiece(value), renaming);
  const end = world.violation === null ? noViolationEnd : renamedPiece(violationPiece(world.violation), renaming);
  const sightings = history ? [piece(world.sightings), comma] : [];
  return [openBracket, renamedPiece(pendingClientsPiece(world.clients), renaming), comma, piece(world.registers), comma, piece(world.budgets), comma, ...sightings, end];
}

/** The piece of the client operations not yet answered, once per clients array (kept while it lives). */
const pendingClientsPieces = new WeakMap<readonly ClientOperation[], Piece>();

function pendingClientsPiece(clients: readonly ClientOperation[]): Piece {
  let piece = pendingClientsPieces.get(clients);
  if (piece === undefined) {
    piece = pieceOf(JSON.stringify(clients.filter((client) => client.status === 'pending')));
    pendingClientsPieces.set(clients, piece);
  }
  return piece;
}
