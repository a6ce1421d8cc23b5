import type { PageKey, ServerId } from '../identifiers.js';
import type { NodeState, ReplicaSnapshot } from '../node/node-state.js';
import { memberOf } from './membership.js';
import { copyStanding } from '../node/copy-standing.js';
import { isUnderWay } from '../migration/move-machines.js';

/**
 * What a draining server moves next, and when it may leave: pure functions
 * of the node's state, which its runtime calls on a timer and turns into
 * `admin.move` and `membership.change` inputs (the node still checks both).
 *
 * Destinations honour capacity weights: each page goes to the active member
 * whose share — pages this server's table names it owner of, plus the moves
 * already heading to it, over its weight — is lowest after taking the page,
 * ties broken by id so the plan is deterministic. Pages go in key order, a
 * few at a time, so a drain never floods the group with moves.
 */
export interface DrainMove {
  readonly pageKey: PageKey;
  readonly to: ServerId;
}

/**
 * `requested`: page texts whose move the caller has already asked for (and is waiting on): planned no more.
 * `unreachable`: members the caller cannot reach now; no move is planned to them (a review drained to a new member
 * that was down: it had the fewest pages, so it drew the moves, and writes to each page in transit failed with EIO
 * while its move restarted toward it again and again). Their pages wait for them to be reachable, or for another.
 */
export function drainMoves(state: NodeState, movesToStartMax: number, requested: ReadonlySet<string> = new Set(), unreachable: ReadonlySet<ServerId> = new Set()): DrainMove[] {
  const self = state.config.self;
  if (!memberOf(state.membership, self)?.draining || movesToStartMax <= 0) return [];
  const destinations = state.membership.members.filter((member) => member.id !== self && !member.draining && !unreachable.has(member.id));
  if (destinations.length === 0) return [];
  const pagesOwned = new Map<ServerId, number>(destinations.map((member) => [member.id, 0]));
  for (const [key, route] of state.routes) {
    // A copy held here, awaiting its flip, is counted once: toward the destination planned for it, not its old source.
    if (pagesOwned.has(route.owner) && copyStanding(state, key) === 'none') pagesOwned.set(route.owner, pagesOwned.get(route.owner)! + 1);
  }
  for (const move of Object.values(state.moves)) {
    const to = move.snapshot.context.destination;
    if (isUnderWay(move.snapshot) && pagesOwned.has(to)) pagesOwned.set(to, pagesOwned.get(to)! + 1);
  }
  // Every valid copy, a copy whose flip this server has not learnt yet (copy-standing.ts) included: the node refuses to
  // move that one until it learns the flip, and its refusal asks for the route (ServerRuntime.move waits it out), which
  // repairs a flip's push that was lost. Left out of the plan, such a copy kept a drain from ending until a restart.
  // Owned pages come first, so that copies waiting for a source that is down do not hold the drain's slots.
  // Each page's standing is looked up once, not in the sort's comparisons (a drain ticks over every page it holds).
  const candidates: Array<{ key: string; rank: number; replica: ReplicaSnapshot }> = [];
  for (const [key, replica] of state.replicas) {
    const standing = copyStanding(state, key);
    // A move abandoned here (its destination died) gives way to the drain's: the node lets a new move replace it.
    const move = state.moves[key];
    if (standing !== 'none' && (move === undefined || !isUnderWay(move.snapshot)) && !requested.has(key)) candidates.push({ key, rank: standing === 'owned' ? 0 : 1, replica });
  }
  const pages = candidates.sort((a, b) => a.rank - b.rank || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).slice(0, movesToStartMax);
  return pages.map(({ replica }) => {
    let best = destinations[0]!;
    let bestShare = Number.POSITIVE_INFINITY;
    for (const member of destinations) {
      const share = (pagesOwned.get(member.id)! + 1) / member.capacityWeight;
      if (share < bestShare) {
        best = member;
        bestShare = share;
      }
    }
    pagesOwned.set(best.id, pagesOwned.get(best.id)! + 1);
    return { pageKey: replica.context.pageKey, to: best.id };
  });
}

/** How much a draining server still has to give away: pages it holds valid or is receiving, and moves it runs. */
export function drainRemaining(state: NodeState): { readonly pagesHeld: number; readonly movesRunning: number } {
  const pagesHeld = [...state.replicas.values()].filter((replica) => {
    const status = replica.context.record?.status;
    return status === 'valid' || status === 'receiving';
  }).length;
  const movesRunning = Object.values(state.moves).filter((move) => isUnderWay(move.snapshot)).length;
  return { pagesHeld, movesRunning };
}

/** A server may leave once it holds no page, receives none and runs no move. */
export function isReadyToLeave(state: NodeState): boolean {
  const { pagesHeld, movesRunning } = drainRemaining(state);
  return pagesHeld === 0 && movesRunning === 0 && Object.keys(state.moves).length === 0;
}
