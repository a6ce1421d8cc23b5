import type { NodeState } from './node-state.js';

/**
 * Where a server stands with its copy of a page, by its own records alone.
 *
 * - `owned`: a valid copy, and the server's routing table names it the owner
 *   at that copy's epoch or later. The flip that made the copy valid is known
 *   here: the server serves the page as its owner, may move it on, and refuses
 *   the late messages of the move that brought it.
 * - `awaitingFlip`: a valid copy the table does not yet name this server for.
 *   The server committed as a move's destination and has not learnt that the
 *   source flipped (the source's route push is on its way, or a crash took it).
 *   Until it learns, the source may still send it that move's dual writes and
 *   parts (an interrupted source does, after a restart), so the server takes
 *   them, serves the page only through the move's write ordering, and moves it
 *   on to nobody: a move of its own would miss those writes (a review found a
 *   write lost and one brought back that way).
 * - `none`: no valid copy (absent, receiving or invalid).
 *
 * Every check of "has this server learnt the flip" goes through here, so that
 * serving, taking move data, moving on, draining and restart repair agree.
 */
export type CopyStanding = 'owned' | 'awaitingFlip' | 'none';

export function copyStanding(state: Pick<NodeState, 'config' | 'routes' | 'replicas'>, pageText: string): CopyStanding {
  const record = state.replicas.get(pageText)?.context.record;
  if (record?.status !== 'valid') return 'none';
  const route = state.routes.get(pageText);
  return route !== undefined && route.owner === state.config.self && route.epoch >= record.epoch ? 'owned' : 'awaitingFlip';
}
