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
 * Members that restarted too. A member that held the earlier incarnation's
 * try may itself have passed it on and then restarted: it holds nothing, but
 * its own earlier incarnation's forward or part can still land. So a member
 * that has earlier incarnations of its own confirms a fence at hop `k` only
 * once its own fence is confirmed at hop `k + 1` (a review found a write
 * landing through such a middle server); past `hopCountMax` no forward
 * exists, so from there on it confirms on what it holds alone.
 *
 * Cycles. A member's work in hand from the earlier incarnation may itself
 * wait for a restarted server's answer to a cancel (its onward forward timed
 * out), and that server's answer for its own fence. Hop counts break every
 * such cycle: a try that reached the restarted server at hop `h` was passed
 * on at hop `h + 1`, so the fence asks only about work of hop `h + 1` and
 * more (`hopCountMin`), parts included; that work's own cancels are of hop
 * `h + 2` and their fences ask about hop `h + 3` and more, and a restarted
 * member's own fence asks one hop higher than the fence it confirms. Hops are
 * bounded (`hopCountMax`), so every chain of waits ends. Each hop asked is
 * confirmed on its own, and a confirmation holds for every higher hop: past
 * its floor, no work of the earlier incarnation can come in. Reads in hand
 * are not waited for: they write nothing.
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
   * The highest hop count of the forwarded writes in hand here that an incarnation of `from` below `incarnation`
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
 * reached it at hop `hopCount`: its fence stands at hop `hopCount + 1`. If
 * not, the fence is asked of the members that have not confirmed it.
 */
export function fenceAllowsCancel(work: FenceWork, hopCount: number): boolean {
  return ownFenceStands(work, hopCount + 1, true);
}

/**
 * Whether this incarnation's fence stands at hop `hopCountMin`: it is the
 * first incarnation, or every other member has confirmed it at that hop or
 * lower. `ask`: send the fence to those that have not.
 */
function ownFenceStands(work: FenceWork, hopCountMin: number, ask: boolean): boolean {
  const fence = work.next.incarnationFence;
  if (!fence.needed) return true;
  const self = work.next.config.self;
  let stands = true;
  for (const member of memberIds(work.next.membership)) {
    if (member === self) continue;
    const confirmed = fence.confirmedFrom[member];
    if (confirmed !== undefined && confirmed <= hopCountMin) continue;
    stands = false;
    if (!ask) return false;
    work.effects.push({ type: 'peer.send', to: member, message: { type: 'fence.raise', incarnation: work.next.incarnation, hopCountMin } });
  }
  return stands;
}

/** Whether this server's own earlier incarnations are fenced off enough to confirm another's fence at `hopCountMin` (see "Members that restarted too"). */
function mayConfirmAt(work: FenceWork, hopCountMin: number, ask: boolean): boolean {
  return hopCountMin > work.next.config.hopCountMax || ownFenceStands(work, hopCountMin + 1, ask);
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
  // Asked (again: the restarted server asks at every time-out of the cancel it holds back) before this server's own
  // fence stands where it must: ask for that too. The node settles what it owes after every step (node.ts, `handle`).
  mayConfirmAt(work, hopCountMin, true);
}

/**
 * Confirms what it can of every fence owed: at the lowest hop asked that is
 * above all the earlier incarnation's work in hand and at which this server's
 * own fence allows, covering each hop asked above it (run after every step
 * while one is owed).
 */
export function settleOwedFences(work: FenceWork): void {
  let owed: Record<ServerId, OwedFence> | null = null;
  for (const [peer, { incarnation, hopCountsAsked }] of Object.entries(work.next.incarnationFence.owed)) {
    // Nothing can be confirmed while this server's own fence does not allow even the highest hop asked (allowing a hop
    // allows every higher one): then the scan of the work in hand, run after every step, is skipped.
    if (!mayConfirmAt(work, hopCountsAsked[hopCountsAsked.length - 1] as number, false)) continue;
    const clearFrom = work.heldWorkHopCountMax(peer, incarnation) + 1;
    // The hops asked ascending: the first that is clear and allowed is confirmed; those below it stay owed.
    const confirmedIndex = hopCountsAsked.findIndex((hopCount) => hopCount >= clearFrom && mayConfirmAt(work, hopCount, false));
    if (confirmedIndex < 0) continue;
    const stillOwed = hopCountsAsked.slice(0, confirmedIndex);
    const confirmedAt = hopCountsAsked[confirmedIndex] as number;
    owed ??= { ...work.next.incarnationFence.owed };
    if (stillOwed.length === 0) delete owed[peer];
    else owed[peer] = { incarnation, hopCountsAsked: stillOwed };
    work.effects.push({ type: 'peer.send', to: peer, message: { type: 'fence.confirmed', incarnation, hopCountMin: confirmedAt } });
  }
  if (owed !== null) work.next.incarnationFence = { ...work.next.incarnationFence, owed };
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
