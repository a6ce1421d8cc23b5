import { and, assign, setup } from 'xstate';
import type { RequestOutcome } from '../effects.js';
import { effectActions } from '../effects.js';
import type { PageKey, ServerId } from '../identifiers.js';
import { assert } from '../identifiers.js';

/**
 * Routing of one client request through the group (the patent's FIG. 7).
 *
 * Theory of operation. A server receives a request (410/420) for a block of a
 * page and the node looks up its routing table and its own copy, passing the
 * result in as input. `lookingUp` (430) decides:
 *
 * - the server holds the valid copy → `servingLocally`; the node serves it,
 *   following any move of the page in progress (read/write targets of the
 *   move's stage), and answers `request.served`;
 * - otherwise → `forwarding` (450/460) to the owner the table names; the owner's
 *   answer is relayed to whoever sent the request (480) and the request ends
 *   (490).
 *
 * Tables update lazily, so the owner named may be stale. A server that holds
 * the page's copy flagged invalid answers `forward.stale` with the newer owner
 * and epoch; the forwarding server learns it (`routing.learn`) and retries, serving
 * locally if the newer owner is itself (a destination that missed the push).
 * A request held back while its page's move flipped (`copy.invalidated`)
 * looks up again the same way, so it reaches the new owner. In
 * the optional forwarding-pointer mode the invalid copy's server forwards the
 * request itself. A request that arrived forwarded and misses here is answered
 * stale rather than forwarded again, so only the server the client talks to
 * retries. Retries and hops are bounded: a request terminates (once the moves
 * made while it lives are done), and the client never sees a routing error
 * unless the bounds are exhausted (EIO). A
 * retry is charged only when it learnt nothing newer: one after an answer
 * naming a newer route (the page moved on while the request was on its way)
 * is free, so a request racing a page moved away and back again is not failed
 * for it (the explorer found such a write answered EIO with no fault at all);
 * free retries are bounded by the moves made while the request lives.
 * A forward that times out is sent again only if the request is idempotent
 * (a read): a write might already have run at the owner, whose memory of the
 * writes it ran does not survive its crash, so it must not run twice after
 * later writes (the fault harness found that trace on the real cluster).
 * Nor may a write be failed while its forward can still run: told EIO, a
 * client writes the block again, and the forward, waiting in a paused owner's
 * socket, would land over that later write. So a write whose forward times
 * out is `cancelling`: it asks the target to cancel that try and waits for
 * the answer, asking again every time-out. The target answers the forward's
 * own outcome if it ran it (the client then hears ok after all), answers when
 * done if it has it in hand, and otherwise remembers the try as cancelled,
 * so that it never runs, and answers that (the client hears ETIMEDOUT). A
 * target that restarted has lost what was sent to its last run, but not what
 * that run passed on, so it answers "cancelled" for a try it knows nothing of
 * only behind its incarnation fence (machines/node/incarnation-fence.ts),
 * which needs the try's hop count: the cancel carries the forward's. The client
 * of a target that stays unreachable waits, as it would for a local disk that
 * hangs; the TCP runtime answers at once a forward it never sent (still
 * queued for a link that is down).
 */
export type LocalCopy = 'valid' | 'invalid' | 'absent';

export interface RequestRoutingInput {
  readonly requestId: string;
  readonly pageKey: PageKey;
  readonly self: ServerId;
  /** How many servers forwarded this request before it reached `self`. */
  readonly hopCount: number;
  /** The freshest route `self` knows: its routing table or its invalid copy's record, whichever is newer. */
  readonly route: { readonly owner: ServerId; readonly epoch: number };
  readonly localCopy: LocalCopy;
  /** Forwarding pointer of an invalid local copy (optional mode), else null. */
  readonly forwardTo: ServerId | null;
  readonly retriesMax: number;
  /**
   * Whether sending the request again is harmless (a read). A write whose
   * forward timed out may have run at the owner; the owner remembers the
   * writes it ran only until it crashes, so a second try could run it twice,
   * after later writes. Such a write fails (EIO: outcome unknown) instead.
   */
  readonly idempotent: boolean;
  readonly hopCountMax: number;
  readonly forwardTimeoutMs: number;
}

export interface RequestRoutingContext extends RequestRoutingInput {
  /** Tries so far after the first: names the current try (its forward, its answer, its timers). */
  readonly retries: number;
  /**
   * The retries charged against `retriesMax`: those that learnt nothing newer. A retry after an answer naming a newer
   * route than this request knew (the page moved on meanwhile) is free, so a request racing moves that keep the page
   * on the move is not failed for it; such retries are bounded by the moves made while the request lives.
   */
  readonly retriesCharged: number;
  readonly target: ServerId | null;
  readonly failure: string | null;
}

export type RequestRoutingEvent =
  | { type: 'request.served' }
  | { type: 'request.failed'; errno: number; reason: string }
  | { type: 'forward.replied'; retry: number }
  /** The target holds an invalid copy: `owner`/`epoch` name the newer owner, `localCopy` is this server's own copy once it has learnt that. */
  | { type: 'forward.stale'; retry: number; owner: ServerId; epoch: number; localCopy: LocalCopy }
  | { type: 'forward.failed'; retry: number; errno: number; reason: string }
  /** The local copy was given up (a move flipped) before this request was served: look up again with the node's fresh view. */
  | { type: 'copy.invalidated'; route: { owner: ServerId; epoch: number }; localCopy: LocalCopy; forwardTo: ServerId | null }
  | { type: 'timer.fired'; timerId: string };

export const errnoIo = 5;
export const errnoTimedOut = 110;
/** The failure of a forward that timed out (a read out of retries, or a write whose try was cancelled): ETIMEDOUT. */
export const forwardTimedOut = 'forward timed out';
/** A target's answer to the cancel of a write's try that it never ran, and now never will (`cancelling`). */
export const cancelledTryOutcome: Extract<RequestOutcome, { status: 'error' }> = { status: 'error', errno: errnoTimedOut, reason: forwardTimedOut };

export function forwardTimerId(context: RequestRoutingContext): string {
  return `request:${context.requestId}:r${context.retries}`;
}

/** The timer after which a write's cancel of its current try is asked again. */
export function cancelTimerId(context: RequestRoutingContext): string {
  return `request:${context.requestId}:r${context.retries}:cancel`;
}

/** The route an event teaches that is newer than the request's, or null: a retry on it is free (`retriesCharged`). */
function newerRouteOf(context: RequestRoutingContext, event: RequestRoutingEvent): { owner: ServerId; epoch: number } | null {
  if (event.type === 'forward.stale') return event.epoch > context.route.epoch ? { owner: event.owner, epoch: event.epoch } : null;
  if (event.type === 'copy.invalidated') return event.route.epoch > context.route.epoch ? event.route : null;
  return null;
}

/**
 * A stale answer to the current try, while forwarding or cancelling: learn the newer owner and look up again, or
 * fail once retries are used up. (One list for both states.)
 */
const staleAnswer = [
  {
    guard: and(['answersCurrentTry', 'canRetry']),
    target: 'lookingUp',
    actions: [
      'learnRoute',
      {
        type: 'routing.learn',
        params: ({ context, event }: { context: RequestRoutingContext; event: RequestRoutingEvent }) => {
          assert(event.type === 'forward.stale', 'a stale answer teaches a route');
          return { pageKey: context.pageKey, owner: event.owner, epoch: event.epoch };
        },
      },
    ],
  },
  { guard: 'answersCurrentTry', target: 'failed', actions: 'noteRetriesExhausted' },
] as const;

export const requestRoutingMachine = setup({
  types: {} as { context: RequestRoutingContext; events: RequestRoutingEvent; input: RequestRoutingInput },
  actions: {
    ...effectActions(['request.serveLocal', 'request.forward', 'request.cancel', 'request.reply', 'routing.learn', 'timer.set']),
    targetOwner: assign(({ context }) => ({ target: context.route.owner })),
    targetPointer: assign(({ context }) => ({ target: context.forwardTo })),
    // The node's own copy as it stands now, whether or not the answer's route is newer: a source whose move commits
    // sends a request to the destination before its own copy is invalid, and a destination that does not serve the
    // page yet answers with an older route; the retry then finds the copy here valid (and waits behind the commit).
    // A stale answer uses the forwarding pointer up: its target no longer holds the page, so the retry follows the route
    // (a review's trace: kept, the pointer sent every retry back to the same stale server until the client got EIO).
    learnRoute: assign(({ context, event }) => {
      if (event.type !== 'forward.stale') return { retries: context.retries + 1, retriesCharged: context.retriesCharged + 1 };
      const newer = newerRouteOf(context, event);
      return { route: newer ?? context.route, localCopy: event.localCopy, forwardTo: null, retries: context.retries + 1, retriesCharged: context.retriesCharged + (newer ? 0 : 1) };
    }),
    countRetry: assign(({ context }) => ({ retries: context.retries + 1, retriesCharged: context.retriesCharged + 1 })),
    lookUpAgain: assign(({ context, event }) => {
      if (event.type !== 'copy.invalidated') return {};
      const newer = newerRouteOf(context, event);
      return { route: newer ?? context.route, localCopy: event.localCopy, forwardTo: event.forwardTo, retries: context.retries + 1, retriesCharged: context.retriesCharged + (newer ? 0 : 1) };
    }),
    noteFailure: assign(({ event }) => ({ failure: 'reason' in event ? event.reason : forwardTimedOut })),
    noteHopLimit: assign({ failure: 'hop limit reached' }),
    noteRetriesExhausted: assign({ failure: 'routing retries exhausted' }),
    noteNoValidCopy: assign({ failure: 'routing table names this server but it holds no valid copy' }),
  },
  guards: {
    holdsValidCopy: ({ context }) => context.localCopy === 'valid',
    hopLimitReached: ({ context }) => context.hopCount >= context.hopCountMax,
    hasForwardingPointer: ({ context }) => context.localCopy === 'invalid' && context.forwardTo !== null,
    arrivedForwarded: ({ context }) => context.hopCount > 0,
    namesSelf: ({ context }) => context.route.owner === context.self,
    /** A retry is allowed while retries are left to charge, or when it is free: its event names a newer route (see `retriesCharged`). */
    canRetry: ({ context, event }) => context.retriesCharged < context.retriesMax || newerRouteOf(context, event) !== null,
    isIdempotent: ({ context }) => context.idempotent,
    /** A read out of retries fails at its time-out: a late forward of it changes nothing. A write must be cancelled first. */
    mayFailAtTimeOut: ({ context }) => context.idempotent,
    answersCurrentTry: ({ context, event }) => 'retry' in event && event.retry === context.retries,
    isForwardTimer: ({ context, event }) => event.type === 'timer.fired' && event.timerId === forwardTimerId(context),
    isCancelTimer: ({ context, event }) => event.type === 'timer.fired' && event.timerId === cancelTimerId(context),
  },
}).createMachine({
  id: 'requestRouting',
  context: ({ input }) => ({ ...input, retries: 0, retriesCharged: 0, target: null, failure: null }),
  initial: 'lookingUp',
  states: {
    lookingUp: {
      always: [
        { guard: 'holdsValidCopy', target: 'servingLocally' },
        { guard: 'hopLimitReached', target: 'failed', actions: 'noteHopLimit' },
        { guard: 'hasForwardingPointer', target: 'forwarding', actions: 'targetPointer' },
        { guard: 'arrivedForwarded', target: 'answeredStale' },
        { guard: 'namesSelf', target: 'failed', actions: 'noteNoValidCopy' },
        { target: 'forwarding', actions: 'targetOwner' },
      ],
    },
    servingLocally: {
      entry: { type: 'request.serveLocal', params: ({ context }) => ({ requestId: context.requestId, pageKey: context.pageKey }) },
      on: {
        'request.served': 'replied',
        'request.failed': { target: 'failed', actions: 'noteFailure' },
        'copy.invalidated': [
          { guard: 'canRetry', target: 'lookingUp', actions: 'lookUpAgain' },
          { target: 'failed', actions: 'noteRetriesExhausted' },
        ],
      },
    },
    forwarding: {
      entry: [
        {
          type: 'request.forward',
          params: ({ context }) => ({ requestId: context.requestId, pageKey: context.pageKey, to: context.target ?? context.route.owner, hopCount: context.hopCount + 1 }),
        },
        { type: 'timer.set', params: ({ context }) => ({ timerId: forwardTimerId(context), delayMs: context.forwardTimeoutMs }) },
      ],
      on: {
        'forward.replied': { guard: 'answersCurrentTry', target: 'replied' },
        'forward.stale': staleAnswer,
        'forward.failed': { guard: 'answersCurrentTry', target: 'failed', actions: 'noteFailure' },
        'timer.fired': [
          { guard: and(['isForwardTimer', 'canRetry', 'isIdempotent']), target: 'lookingUp', actions: 'countRetry' },
          { guard: and(['isForwardTimer', 'mayFailAtTimeOut']), target: 'failed', actions: 'noteFailure' },
          { guard: 'isForwardTimer', target: 'cancelling' },
        ],
      },
    },
    // A write's forward timed out: its outcome is settled only by the target (see the theory of operation).
    cancelling: {
      entry: [
        { type: 'request.cancel', params: ({ context }) => ({ requestId: context.requestId, pageKey: context.pageKey, to: context.target ?? context.route.owner, hopCount: context.hopCount + 1 }) },
        { type: 'timer.set', params: ({ context }) => ({ timerId: cancelTimerId(context), delayMs: context.forwardTimeoutMs }) },
      ],
      on: {
        'forward.replied': { guard: 'answersCurrentTry', target: 'replied' },
        // The target did not run it (it holds an invalid copy) and will not: a retry is as safe as before the time-out.
        'forward.stale': staleAnswer,
        'forward.failed': { guard: 'answersCurrentTry', target: 'failed', actions: 'noteFailure' },
        'timer.fired': { guard: 'isCancelTimer', target: 'cancelling', reenter: true },
      },
    },
    replied: {
      type: 'final',
      entry: { type: 'request.reply', params: ({ context }) => ({ requestId: context.requestId, outcome: { status: 'ok' as const } }) },
    },
    answeredStale: {
      type: 'final',
      entry: {
        type: 'request.reply',
        params: ({ context }) => ({ requestId: context.requestId, outcome: { status: 'stale' as const, owner: context.route.owner, epoch: context.route.epoch } }),
      },
    },
    failed: {
      type: 'final',
      entry: {
        type: 'request.reply',
        params: ({ context }) => ({
          requestId: context.requestId,
          outcome: { status: 'error' as const, errno: context.failure === forwardTimedOut ? errnoTimedOut : errnoIo, reason: context.failure ?? 'unknown' },
        }),
      },
    },
  },
});
