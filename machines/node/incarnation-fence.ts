import type { ServerId } from '../identifiers.js';
import { assert } from '../identifiers.js';
import { memberIds } from '../membership/membership.js';
import type { NodeDraft } from './node-draft.js';
import type { NodeEffect } from './node-io.js';

/**
 * The incarnation fence: what a restarted server must hear before it may say
 * that a forwarded write it knows nothing of will never run.
 *
 * Theory of operation. A forwarder whose try of a write timed out asks the
 * try's target to cancel it (request-routing.machine.ts, `cancelling`), and
 * fails the client's write when the target answers "cancelled": from then on
 * the write must never take effect. A target that restarted knows nothing of
 * the tries its earlier incarnation had in hand, and that incarnation may
 * have passed one on before it died: forwarded to the owner (a forwarding
 * pointer, FIG. 7) or sent as a part to a move's destination (Table 2). Such
 * a message can still run after the restart: it waits in a socket, or in the
 * hand of the server it reached. So the restarted server answers "cancelled"
 * for a try unknown to it only once every other member has *confirmed its
 * fence*: it has set a floor below which it drops every forward and part
 * sent by an earlier incarnation of this server, and it holds none in hand
 * that could still cause a write. (The explorer found the write otherwise
 * landing after its client was told it failed: a forwarding pointer's server
 * crashed with the forward on its way to the owner, 24 steps.)
 *
 * Cycles. A member's work in hand from the earlier incarnation may itself
 * wait for a restarted server's answer to a cancel (its onward forward timed
 * out), and that server's answer for its own fence. Hop counts break every
 * such cycle: a try that reached the restarted server at hop `h` was passed
 * on at hop `h + 1`, so the fence asks only about work of hop `h + 1` and
 * more (`hopCountMin`), parts included, and that work's own cancels ask
 * about hop `h + 2` and more; hops are bounded (`hopCountMax`), so the chain
 * of waits ends. A member confirms a fence at the hop asked and keeps it for
 * every higher one: past its floor, no work of the earlier incarnation can
 * come in.
 *
 * Asking is lazy: a fence is sent (again) to the members not yet confirmed
 * whenever a cancel of an unknown try must wait for it, and the forwarder
 * asks again at every time-out, so nothing needs a timer of its own and a
 * server that is never asked such a cancel never fences. A member that is
 * down holds the answer back until it is back (a member paused with the
 * earlier incarnation's forward in its socket would run it when it resumes).
 */
export interface IncarnationFence {
  /** Whether this incarnation had earlier ones (a first incarnation answers at once: node-io.ts, `earlierIncarnations`). */
  readonly needed: boolean;
  /** Per member: the lowest hop count at which it has confirmed this incarnation's fence. */
  readonly confirmedFrom: Readonly<Record<ServerId, number>>;
  /** Per peer: its newest incarnation that fenced here; forwards and parts from earlier ones are dropped. */
  readonly floors: Readonly<Record<ServerId, number>>;
  /**
   * Per peer: the hop counts its fence was asked at and not yet confirmed, ascending. Each is confirmed on its own: a
   * confirmation at a high hop may be what unblocks the work that holds back one at a low hop (the explorer found two
   * levels kept as their minimum wait for each other for ever).
   */
  readonly owed: Readonly<Record<ServerId, OwedFence>>;
}

export interface OwedFence {
  readonly incarnation: number;
  readonly hopCountsAsked: readonly number[];
}

export const noIncarnationFence: IncarnationFence = { needed: true, confirmedFrom: {}, floors: {}, owed: {} };
export const firstIncarnationFence: IncarnationFence = { ...noIncarnationFence, needed: false };

/** What the fence reads of a node step (node.ts): its draft, its effects, and the work of a peer's earlier incarnations in hand. */
export interface FenceWork {
  readonly next: NodeDraft;
  readonly effects: NodeEffect[];
  /**
   * The highest hop count of the forwarded requests in hand here that an incarnation of `from` below `incarnation`
   * sent (0 if none), or Infinity while such a part is being written (a part concerns a try of any hop).
   */
  heldWorkHopCountMax(from: ServerId, incarnation: number): number;
}

/** Whether a forward or part sent by `from`'s incarnation `senderIncarnation` comes from behind a fence `from` has since raised here. */
export function isFencedOff(fence: IncarnationFence, from: ServerId, senderIncarnation: number): boolean {
  const floor = fence.floors[from];
  return floor !== undefined && senderIncarnation < floor;
}

/**
 * Whether this server may answer "cancelled" for a try unknown to it that
 * reached it at hop `hopCount`: it is its first incarnation, or every other
 * member has confirmed the fence at hop `hopCount + 1` or lower. If not, the
 * fence is asked of those that have not.
 */
export function fenceAllowsCancel(work: FenceWork, hopCount: number): boolean {
  const fence = work.next.incarnationFence;
  if (!fence.needed) return true;
  const self = work.next.config.self;
  const hopCountMin = hopCount + 1;
  let allowed = true;
  for (const member of memberIds(work.next.membership)) {
    if (member === self) continue;
    const confirmed = fence.confirmedFrom[member];
    if (confirmed !== undefined && confirmed <= hopCountMin) continue;
    allowed = false;
    work.effects.push({ type: 'peer.send', to: member, message: { type: 'fence.raise', incarnation: work.next.incarnation, hopCountMin } });
  }
  return allowed;
}

/** `from` restarted as `incarnation` and asks this server to drop its earlier incarnations' work from hop `hopCountMin` on. */
export function receiveFence(work: FenceWork, from: ServerId, incarnation: number, hopCountMin: number): void {
  assert(Number.isInteger(hopCountMin) && hopCountMin >= 1, 'a fence asks about forwards of hop 1 or more');
  const fence = work.next.incarnationFence;
  const floor = fence.floors[from] ?? 0;
  // A fence of an incarnation older than one already raised here is late: the newer fence covers it.
  if (incarnation < floor) return;
  const before = fence.owed[from];
  const asked = before !== undefined && before.incarnation === incarnation ? before.hopCountsAsked : [];
  const hopCountsAsked = asked.includes(hopCountMin) ? asked : [...asked, hopCountMin].sort((a, b) => a - b);
  assert(hopCountsAsked.length <= work.next.config.hopCountMax + 1, 'a fence is asked at no more hop counts than a request can take');
  work.next.incarnationFence = { ...fence, floors: { ...fence.floors, [from]: incarnation }, owed: { ...fence.owed, [from]: { incarnation, hopCountsAsked } } };
  settleOwedFences(work);
}

/**
 * Confirms what it can of every fence owed: at the lowest hop above all the
 * earlier incarnation's work in hand, each hop asked at or above it (run
 * after every step while one is owed).
 */
export function settleOwedFences(work: FenceWork): void {
  const fence = work.next.incarnationFence;
  let owed: Record<ServerId, OwedFence> | null = null;
  for (const [peer, { incarnation, hopCountsAsked }] of Object.entries(fence.owed)) {
    const clearFrom = work.heldWorkHopCountMax(peer, incarnation) + 1;
    const stillOwed = hopCountsAsked.filter((hopCount) => hopCount < clearFrom);
    if (stillOwed.length === hopCountsAsked.length) continue;
    // Confirmed at the lowest hop asked that is clear: it covers every higher one asked.
    const confirmedAt = hopCountsAsked[stillOwed.length] as number;
    owed ??= { ...fence.owed };
    if (stillOwed.length === 0) delete owed[peer];
    else owed[peer] = { incarnation, hopCountsAsked: stillOwed };
    work.effects.push({ type: 'peer.send', to: peer, message: { type: 'fence.confirmed', incarnation, hopCountMin: confirmedAt } });
  }
  if (owed !== null) work.next.incarnationFence = { ...fence, owed };
}

/** `from` confirmed this server's fence at hop `hopCountMin` (a confirmation of an earlier incarnation's fence is ignored). */
export function fenceConfirmed(work: FenceWork, from: ServerId, incarnation: number, hopCountMin: number): void {
  if (incarnation !== work.next.incarnation) return;
  const fence = work.next.incarnationFence;
  const confirmed = fence.confirmedFrom[from];
  if (confirmed !== undefined && confirmed <= hopCountMin) return;
  work.next.incarnationFence = { ...fence, confirmedFrom: { ...fence.confirmedFrom, [from]: hopCountMin } };
}

/** Whether any fence is owed here (so the step must see whether it can be confirmed now). */
export function owesFences(fence: IncarnationFence): boolean {
  for (const _ in fence.owed) return true;
  return false;
}
