import type { PageKey, ServerId } from './identifiers.js';
import { assert } from './identifiers.js';
import type { MoveCheckpoint } from './migration/checkpoint.js';
import type { ReplicaRecord } from './replica/replica-record.js';

/**
 * Everything a machine wants done comes back from `transition()` as one of
 * these records. The machines run nothing: the simulator in `model-tests/` and
 * the TCP runtime in `impl/` both switch over this closed union and end in
 * `assertNever`, so a new effect cannot be silently ignored by either.
 */
export interface EffectParams {
  /** Make a move checkpoint durable; answered by `stage.persisted`. */
  'stage.persist': { pageKey: PageKey; checkpoint: MoveCheckpoint };
  /** Read one piece at the source and store it durably at the destination; answered by `piece.copied`. */
  'piece.copy': { pageKey: PageKey; destination: ServerId; attempt: number; piece: number; pieceCount: number };
  /** Ask the destination to hold the page durably as its owner at `epoch`; answered by `destination.committed`. */
  'commit.request': { pageKey: PageKey; destination: ServerId; attempt: number; epoch: number };
  /** Drop the source's data after the flip; the invalid flag (and pointer) stay in its replica record. */
  'copy.release': { pageKey: PageKey; epoch: number; forwardTo: ServerId | null };
  /** Push a routing change to every server in the background (routing tables update lazily). */
  'routing.publish': { pageKey: PageKey; owner: ServerId; epoch: number };
  /** Update this server's routing table; epochs only grow, so an older entry is ignored. */
  'routing.learn': { pageKey: PageKey; owner: ServerId; epoch: number };
  /** Serve a request from this server's own valid copy, following any move in progress; answered by `request.served`. */
  'request.serveLocal': { requestId: string; pageKey: PageKey };
  /** Send a request to another server; answered by `forward.replied`, `forward.stale` or a timer. */
  'request.forward': { requestId: string; pageKey: PageKey; to: ServerId; hopCount: number };
  /** Ask `to` to cancel the current try of a forwarded write that timed out; answered like the forward (request-routing.machine.ts). */
  /** `hopCount`: the try's, as its forward carried it. */
  'request.cancel': { requestId: string; pageKey: PageKey; to: ServerId; hopCount: number };
  /** Answer whoever sent the request: the NBD client, or the server that forwarded it. */
  'request.reply': { requestId: string; outcome: RequestOutcome };
  /** Make a replica record (valid, receiving, invalid + pointer) durable. */
  'replica.persist': { pageKey: PageKey; record: ReplicaRecord };
  /** An abandoned move's source serves its whole copy again, valid at `epoch` (durable with the abandoned record). */
  'copy.reclaim': { pageKey: PageKey; epoch: number };
  /** Tell an abandoned move's destination to let go of its partial copy, receiving at `epoch`; answered by `destination.released`. */
  'abandon.notify': { pageKey: PageKey; destination: ServerId; attempt: number; epoch: number };
  /** Remove an abandoned move's record once its destination has let go. */
  'record.forget': { pageKey: PageKey };
  /** Deliver `timer.fired` with this id after `delayMs`. Time is an input: machines never read a clock. */
  'timer.set': { timerId: string; delayMs: number };
}

export type EffectType = keyof EffectParams;
export type Effect = { [K in EffectType]: { type: K } & EffectParams[K] }[EffectType];

export type RequestOutcome =
  | { status: 'ok' }
  | { status: 'stale'; owner: ServerId; epoch: number }
  | { status: 'error'; errno: number; reason: string };

const effectTypes: ReadonlySet<string> = new Set<EffectType>([
  'stage.persist', 'piece.copy', 'commit.request', 'copy.release', 'routing.publish', 'routing.learn',
  'request.serveLocal', 'request.forward', 'request.cancel', 'request.reply', 'replica.persist', 'timer.set',
  'copy.reclaim', 'abandon.notify', 'record.forget',
]);

/** XState action implementations that do nothing: the effect is the action object itself. */
export function effectActions<K extends EffectType>(types: readonly K[]): { [P in K]: (args: unknown, params: EffectParams[P]) => void } {
  const actions = {} as { [P in K]: (args: unknown, params: EffectParams[P]) => void };
  for (const type of types) actions[type] = () => {};
  return actions;
}

/** Turns the action objects returned by `transition()` into effects, refusing anything unknown. */
export function effectsFromActions(actions: ReadonlyArray<{ type: string; params?: unknown }>): Effect[] {
  return actions.map((action) => {
    assert(effectTypes.has(action.type), `machine emitted an action that is not an effect: ${action.type}`);
    return { type: action.type, ...(action.params as object) } as Effect;
  });
}
