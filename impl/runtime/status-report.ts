/**
 * What `blockshift status` shows of one server: its volumes, the page owners
 * its routing table names (with epochs), the copies it holds and the moves it
 * is running, with the stage each has durably reached.
 */
import type { ServerId } from '../../machines/identifiers.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { stageInProgress } from '../../machines/migration/queries.js';
import type { Membership } from '../../machines/membership/membership.js';
import { memberOf } from '../../machines/membership/membership.js';
import { drainRemaining } from '../../machines/membership/drain-plan.js';
import { ownValue } from '../../machines/identifiers.js';

export interface ServerStatus {
  readonly server: ServerId;
  /** The server process's id (the admin API adds it). */
  readonly pid?: number;
  /** The server's data directory, absolute (the admin API adds it): with its id, which group's server answers. */
  readonly dataDirectory?: string;
  readonly volumes: Array<{ name: string; pageCount: number; pageSizeBlocks: number; blockSizeBytes: number; piecesPerPage: number; servers: readonly ServerId[] }>;
  readonly routes: Record<string, { owner: ServerId; epoch: number }>;
  readonly copies: Record<string, string>;
  readonly moves: Array<{
    page: string; kind: string; destination: ServerId; state: string; durableStage: number; stageInProgress: number; attempt: number; piece: number; pieceCount: number;
    /** Given up by the administrator; kept until its destination confirms it let go of its partial copy. */
    abandoned: boolean;
    /** Pieces the durable checkpoint records as stored at the destination, and their bytes. */
    piecesCopied: number; bytesCopied: number; pageBytes: number;
  }>;
  readonly requestsInFlight: number;
  /** The membership record this server follows (members, weights, draining, epoch). */
  readonly membership: Membership;
  /** While this server drains: what it still holds, and once it asks to leave, the members that have not yet confirmed that no move toward it runs. */
  readonly drain: { pagesHeld: number; movesRunning: number; leaveWaitingFor: readonly ServerId[] | null } | null;
}

/**
 * The moves this server runs as their source, with their progress: `GET
 * /moves`, which `blockshift move` polls while it waits. Its cost follows the
 * moves under way (a bounded few), where `/status` follows the pages: on a
 * volume of 262,144 pages a status report is 12.8 MB and held the server's
 * event loop 0.74 s, and the command polled it every 25 ms (a review measured
 * a client's IOPS falling to a third).
 */
export function movesOf(state: NodeState): ServerStatus['moves'] {
  return Object.entries(state.moves).map(([page, move]) => {
    const context = move.snapshot.context;
    const volume = ownValue(state.volumes, context.pageKey.volume);
    const pageBytes = volume ? volume.pageSizeBlocks * volume.blockSizeBytes : 0;
    const piecesCopied = context.checkpoint.pieceModes.filter((mode) => mode === 'copied' || mode === 'atDestination').length;
    return {
      page, kind: move.kind, destination: context.destination, state: JSON.stringify(move.snapshot.value), durableStage: context.checkpoint.stage,
      stageInProgress: stageInProgress(context), attempt: context.attempt, piece: context.piece, pieceCount: context.pieceCount,
      piecesCopied, bytesCopied: (pageBytes / context.pieceCount) * piecesCopied, pageBytes, abandoned: context.checkpoint.abandoned === true,
    };
  });
}

export function statusOf(state: NodeState): ServerStatus {
  return {
    server: state.config.self,
    volumes: Object.values(state.volumes).map((volume) => ({ ...volume })),
    routes: Object.fromEntries(state.routes),
    copies: Object.fromEntries([...state.replicas].map(([page, replica]) => {
      const record = replica.context.record;
      return [page, record ? `${record.status} (epoch ${record.epoch})` : 'none'];
    })),
    moves: movesOf(state),
    requestsInFlight: state.requests.size,
    membership: state.membership,
    drain: memberOf(state.membership, state.config.self)?.draining ? { ...drainRemaining(state), leaveWaitingFor: leaveWaitingFor(state) } : null,
  };
}

function leaveWaitingFor(state: NodeState): ServerId[] | null {
  const check = state.leaveCheck;
  if (!check || check.epoch !== state.membership.epoch) return null;
  return state.membership.members.map((member) => member.id).filter((id) => id !== state.config.self && !check.confirmed.includes(id));
}
