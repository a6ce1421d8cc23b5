/**
 * What `blockshift status` shows of one server: its volumes, the page owners
 * its routing table names (with epochs), the copies it holds and the moves it
 * is running, with the stage each has durably reached.
 */
import type { ServerId } from '../../machines/identifiers.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { stageInProgress } from '../../machines/migration/queries.js';

export interface ServerStatus {
  readonly server: ServerId;
  readonly volumes: Array<{ name: string; pageCount: number; pageSizeBlocks: number; blockSizeBytes: number; piecesPerPage: number; servers: readonly ServerId[] }>;
  readonly routes: Record<string, { owner: ServerId; epoch: number }>;
  readonly copies: Record<string, string>;
  readonly moves: Array<{ page: string; kind: string; destination: ServerId; state: string; durableStage: number; stageInProgress: number; attempt: number; piece: number; pieceCount: number }>;
  readonly requestsInFlight: number;
}

export function statusOf(state: NodeState): ServerStatus {
  return {
    server: state.config.self,
    volumes: Object.values(state.volumes).map((volume) => ({ ...volume })),
    routes: { ...state.routes },
    copies: Object.fromEntries(Object.entries(state.replicas).map(([page, replica]) => {
      const record = replica.context.record;
      return [page, record ? `${record.status} (epoch ${record.epoch})` : 'none'];
    })),
    moves: Object.entries(state.moves).map(([page, move]) => {
      const context = move.snapshot.context;
      return {
        page, kind: move.kind, destination: context.destination, state: JSON.stringify(move.snapshot.value), durableStage: context.checkpoint.stage,
        stageInProgress: stageInProgress(context), attempt: context.attempt, piece: context.piece, pieceCount: context.pieceCount,
      };
    }),
    requestsInFlight: state.requests.size,
  };
}
