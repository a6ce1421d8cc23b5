import type { PageKey } from '../../machines/identifiers.js';
import type { MoveCheckpoint, MoveInput, PieceMode } from '../../machines/migration/checkpoint.js';
import type { DurableRecords, MetadataWrite, Route } from '../../machines/node/node-io.js';
import { validateVolume } from '../../machines/node/volume.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import type { ReplicaRecord } from '../../machines/replica/replica-record.js';
import type { Membership } from '../../machines/membership/membership.js';
import { membershipProblem as membershipRecordProblem } from '../../machines/membership/membership.js';

/**
 * Shape checks for the records a metadata store holds. The store runs them
 * twice: on every write before it is committed (a malformed write is a
 * programmer error and must never reach the disk) and on every record it
 * loads (a malformed record means corruption or a format change, and the node
 * must not start from it). Each check returns a sentence naming the problem,
 * or null; the store turns a problem into a failed assertion.
 *
 * The checks accept extra properties, so a machine that adds a field does not
 * break the store; they reject missing or mistyped ones.
 */
export type Problem = string | null;

/** Volume names are also directory names, so '.' and '..' are refused besides what `validateVolume` refuses. */
const volumeNamePattern = /^[A-Za-z0-9._-]{1,64}$/;
const pieceModes: readonly PieceMode[] = ['atSource', 'inTransit', 'copied', 'atDestination'];

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isServer(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

export function volumeNameProblem(name: unknown): Problem {
  if (typeof name !== 'string' || !volumeNamePattern.test(name) || name === '.' || name === '..') {
    return `volume name ${JSON.stringify(name)} must be 1-64 letters, digits, '.', '_' or '-', and not '.' or '..'`;
  }
  return null;
}

export function pageKeyProblem(value: unknown): Problem {
  if (!isObject(value)) return 'a page key must be an object';
  const nameProblem = volumeNameProblem(value['volume']);
  if (nameProblem) return nameProblem;
  if (!isCount(value['page'])) return `page ${JSON.stringify(value['page'])} must be a non-negative safe integer`;
  return null;
}

export function volumeProblem(value: unknown): Problem {
  if (!isObject(value)) return 'a volume must be an object';
  const nameProblem = volumeNameProblem(value['name']);
  if (nameProblem) return nameProblem;
  if (!Array.isArray(value['servers']) || !value['servers'].every(isServer)) return 'volume servers must be a list of server names';
  const blockSizeBytes = value['blockSizeBytes'];
  if (!isCount(blockSizeBytes) || blockSizeBytes < 1) return 'blockSizeBytes must be a positive integer';
  return validateVolume(value as unknown as VolumeDefinition);
}

export function routeProblem(value: unknown): Problem {
  if (!isObject(value)) return 'a route must be an object';
  if (!isServer(value['owner'])) return 'a route owner must be a server name';
  if (!isCount(value['epoch'])) return 'a route epoch must be a non-negative integer';
  return null;
}

export function replicaRecordProblem(value: unknown): Problem {
  if (!isObject(value)) return 'a replica record must be an object';
  if (!isCount(value['epoch'])) return 'a replica epoch must be a non-negative integer';
  switch (value['status']) {
    case 'valid':
      return null;
    case 'receiving':
      if (!isServer(value['source'])) return 'a receiving replica names its source';
      if (!isCount(value['attempt'])) return 'a receiving replica carries a non-negative attempt';
      return null;
    case 'invalid':
      if (!isServer(value['owner'])) return 'an invalid replica names the new owner';
      if (value['forwardTo'] !== null && !isServer(value['forwardTo'])) return 'forwardTo must be a server name or null';
      return null;
    default:
      return `unknown replica status ${JSON.stringify(value['status'])}`;
  }
}

export function moveCheckpointProblem(value: unknown): Problem {
  if (!isObject(value)) return 'a move checkpoint must be an object';
  const stage = value['stage'];
  if (!isCount(stage) || stage < 1) return 'a checkpoint stage must be a positive integer';
  if (!isCount(value['attempt'])) return 'a checkpoint attempt must be a non-negative integer';
  if (!isCount(value['epoch'])) return 'a checkpoint epoch must be a non-negative integer';
  const modes = value['pieceModes'];
  if (!Array.isArray(modes) || !modes.every((mode) => pieceModes.includes(mode as PieceMode))) return 'pieceModes must be a list of piece modes';
  if (value['owner'] !== 'source' && value['owner'] !== 'destination') return "a checkpoint owner must be 'source' or 'destination'";
  for (const mark of ['commitAsked', 'abandoned'] as const) {
    if (value[mark] !== undefined && value[mark] !== true) return `a checkpoint's ${mark} must be true or absent`;
  }
  return null;
}

export function moveInputProblem(value: unknown): Problem {
  if (!isObject(value)) return 'a move input must be an object';
  const keyProblem = pageKeyProblem(value['pageKey']);
  if (keyProblem) return `move input: ${keyProblem}`;
  if (value['kind'] !== 'unit' && value['kind'] !== 'piecewise') return "a move kind must be 'unit' or 'piecewise'";
  if (!isServer(value['source']) || !isServer(value['destination'])) return 'a move names its source and destination';
  const pieceCount = value['pieceCount'];
  if (!isCount(pieceCount) || pieceCount < 1) return 'a move pieceCount must be a positive integer';
  if (!isCount(value['epoch'])) return 'a move epoch must be a non-negative integer';
  if (typeof value['forwardingPointer'] !== 'boolean') return 'forwardingPointer must be a boolean';
  const timeoutMs = value['progressTimeoutMs'];
  if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) return 'progressTimeoutMs must be a non-negative number';
  if (value['recovered'] !== undefined) return moveCheckpointProblem(value['recovered']);
  return null;
}

function samePageKey(a: PageKey, b: PageKey): boolean {
  return a.volume === b.volume && a.page === b.page;
}

export function metadataWriteProblem(write: unknown): Problem {
  if (!isObject(write)) return 'a metadata write must be an object';
  const kind = write['kind'];
  if (kind === 'volume') return volumeProblem(write['volume']);
  if (kind === 'membership') return membershipProblem(write['membership']);
  if (kind === 'lostClaim') return lostClaimProblem(write['claim']);
  const keyProblem = pageKeyProblem(write['pageKey']);
  if (keyProblem) return keyProblem;
  switch (kind) {
    case 'route':
      return routeProblem(write['route']);
    case 'replica':
      return replicaRecordProblem(write['record']);
    case 'move': {
      const problem = moveInputProblem(write['input']) ?? moveCheckpointProblem(write['checkpoint']);
      if (problem) return problem;
      return samePageKey((write['input'] as MoveInput).pageKey, write['pageKey'] as PageKey) ? null : 'a move input names another page than its write';
    }
    case 'move.delete':
      return null;
    default:
      return `unknown metadata write kind ${JSON.stringify(kind)}`;
  }
}

/** A claim to declare pages lost (machines/node/lost-pages.ts): a claimant and a sorted list of servers without repeats. */
export function lostClaimProblem(value: unknown): Problem {
  if (!isObject(value) || !isServer(value['claimant']) || !Array.isArray(value['servers']) || !isCount(value['epoch'])) return 'a lost-pages claim must be {servers: [...], claimant, epoch}';
  const servers = value['servers'] as unknown[];
  if (servers.length === 0 || !servers.every((id, index) => isServer(id) && (index === 0 || (servers[index - 1] as string) < (id as string)))) return 'a lost-pages claim names its servers sorted, without repeats';
  return null;
}

/** A membership record: its fields typed, then the record's own rules (sorted ids, no repeats, positive weights). */
export function membershipProblem(value: unknown): Problem {
  if (!isObject(value) || !Array.isArray(value['members'])) return 'a membership record must be {epoch, members: [...]}';
  if (!value['members'].every((member: unknown) => isObject(member) && (member['peer'] === null || isObject(member['peer'])) && (member['admin'] === null || isObject(member['admin'])) && typeof member['draining'] === 'boolean')) {
    return 'each member must be {id, peer: {host, port} | null, admin: {host, port} | null, capacityWeight, draining}';
  }
  return membershipRecordProblem(value as unknown as Membership);
}

/** The stored value of a page-keyed record repeats its page key, so a load can check it against the key it was found under. */
export interface StoredRoute { readonly pageKey: PageKey; readonly route: Route }
export interface StoredReplica { readonly pageKey: PageKey; readonly record: ReplicaRecord }
export interface StoredMove { readonly pageKey: PageKey; readonly input: MoveInput; readonly checkpoint: MoveCheckpoint }

export function pageKeyOrder(a: PageKey, b: PageKey): number {
  if (a.volume !== b.volume) return a.volume < b.volume ? -1 : 1;
  return a.page - b.page;
}

/** Records sorted by volume name, then page number, so two loads of the same store compare equal. */
export function sortedRecords(records: DurableRecords): DurableRecords {
  const byPage = (a: { pageKey: PageKey }, b: { pageKey: PageKey }): number => pageKeyOrder(a.pageKey, b.pageKey);
  return {
    volumes: [...records.volumes].sort((a, b) => (a.name === b.name ? 0 : a.name < b.name ? -1 : 1)),
    routes: [...records.routes].sort(byPage),
    replicas: [...records.replicas].sort(byPage),
    moves: [...records.moves].sort(byPage),
    membership: records.membership ?? null,
    ...(records.lostClaim ? { lostClaim: records.lostClaim } : {}),
  };
}
