import type { ServerId } from '../identifiers.js';
import type { Membership } from '../membership/membership.js';
import { isActiveMember, memberIds, memberOf } from '../membership/membership.js';
import type { PeerMessage } from './messages.js';
import type { NodeEffect } from './node-io.js';
import type { NodeDraft } from './node-draft.js';
import type { VolumeDefinition } from './volume.js';
import { ownValue } from '../identifiers.js';

/**
 * Reserving a volume's name across the group before it is defined.
 *
 * Any server accepts any request for any volume (FIG. 7), so every member
 * must hold one and the same definition of a volume. Two administrators
 * creating the same name on two servers at once used to define two
 * different volumes, each spreading to the members it reached first: the
 * group then disagreed on a volume's geometry, and so on where its blocks
 * are. Now the server asked reserves the name on every member first, and
 * defines the volume once a majority of the members (itself included) have
 * granted it; a member grants a name to one reservation at a time, and
 * never a name it already defines otherwise. Any two majorities share a
 * member, so of two creations at once at most one gets its majority (the
 * other is refused, or both are, and the administrator tries again), while
 * a member that is down does not stop a creation: it learns the definition
 * when it comes back (`volumes.known`), as before.
 *
 * Theory of operation. Creator: `admin.createVolume` → reservation recorded,
 * `volume.reserve` to every other member, a timer; each
 * `volume.reserveAnswer` is counted; a majority granted → the volume is
 * defined here and sent to every member (`volume.define`), as before; so
 * many refusals that no majority is left, or the timer → the administrator
 * is refused and every member is told (`volume.release`). Member: `volume.reserve` → granted
 * and held (with a timer of its own, longer than the creator's, so a
 * creator that crashed does not block the name for good) unless the name is
 * reserved by another or defined otherwise; `volume.define` or
 * `volume.release` ends the hold. Reservations are volatile: a member that
 * restarts has forgotten its grants, which is why the creator's window is
 * short; a name granted twice across such a restart needs a crash inside a
 * second or two of two creations of one name.
 */
export interface VolumeReservation {
  readonly volume: VolumeDefinition;
  /** The creator; this server when it is the one the administrator asked. */
  readonly by: ServerId;
  /** Names this reservation (its messages and timers), so nothing of an earlier one of the name counts. */
  readonly id: string;
  /** At the creator: the administrator's request, and the members that granted and refused so far. */
  readonly requestId: string | null;
  readonly granted: readonly ServerId[];
  readonly refused: readonly ServerId[];
}

/** More than half of the members, the creator included: any two such sets share a member. */
export function grantsNeeded(memberCount: number): number {
  return Math.floor(memberCount / 2) + 1;
}

export interface ReservationWork {
  readonly next: NodeDraft;
  readonly effects: NodeEffect[];
  newReservationId(): string;
  /** All granted: define the volume here, durably, and send it to every member (answering the administrator once durable). */
  defineCreated(volume: VolumeDefinition, requestId: string): void;
}

export const reservationTimer = 'volume-reservation';

/** The creator waits this long for every grant; a member holds a grant this much longer, in case its creator died. */
export function reservationTimeoutsMs(peerRetryDelayMs: number): { creatorMs: number; memberMs: number } {
  return { creatorMs: 4 * peerRetryDelayMs, memberMs: 60 * peerRetryDelayMs };
}

function timerId(name: string, id: string): string {
  return `${reservationTimer}|${name}|${id}`;
}

function send(work: ReservationWork, to: ServerId, message: PeerMessage): void {
  work.effects.push({ type: 'peer.send', to, message });
}

export function sameDefinition(a: VolumeDefinition, b: VolumeDefinition): boolean {
  return a.name === b.name && a.pageCount === b.pageCount && a.pageSizeBlocks === b.pageSizeBlocks && a.blockSizeBytes === b.blockSizeBytes &&
    a.piecesPerPage === b.piecesPerPage && a.servers.length === b.servers.length && a.servers.every((server, index) => server === b.servers[index]);
}

/** Creator: the administrator's volume passed every local check; reserve its name everywhere, or define it at once in a group of one. */
export function reserveVolume(work: ReservationWork, requestId: string, volume: VolumeDefinition): void {
  const self = work.next.config.self;
  const others = memberIds(work.next.membership).filter((id) => id !== self);
  if (others.length === 0) return work.defineCreated(volume, requestId);
  const id = work.newReservationId();
  work.next.volumeReservations[volume.name] = { volume, by: self, id, requestId, granted: [], refused: [] };
  for (const to of others) send(work, to, { type: 'volume.reserve', volume, reservationId: id });
  work.effects.push({ type: 'timer.set', timerId: timerId(volume.name, id), delayMs: reservationTimeoutsMs(work.next.config.peerRetryDelayMs).creatorMs });
}

/** Member: grant the name unless it is reserved by another or defined otherwise. */
export function receiveReserve(work: ReservationWork, from: ServerId, volume: VolumeDefinition, reservationId: string): void {
  const answer = (granted: boolean, reason: string | null) => send(work, from, { type: 'volume.reserveAnswer', name: volume.name, reservationId, granted, reason });
  const defined = ownValue(work.next.read('volumes'), volume.name);
  if (defined) return answer(sameDefinition(defined, volume), sameDefinition(defined, volume) ? null : `${work.next.config.self} defines ${volume.name} otherwise`);
  const held = ownValue(work.next.read('volumeReservations'), volume.name);
  if (held && held.id !== reservationId) return answer(false, `${work.next.config.self} holds ${volume.name} for a creation on ${held.by}`);
  // A server being drained or forgotten since the creator checked (member-forget.ts) must not be given pages.
  const inactive = volume.servers.filter((server) => !isActiveMember(work.next.membership, server));
  if (inactive.length > 0) return answer(false, inactiveReason(work.next.membership, inactive, work.next.config.self));
  work.next.volumeReservations[volume.name] = { volume, by: from, id: reservationId, requestId: null, granted: [], refused: [] };
  work.effects.push({ type: 'timer.set', timerId: timerId(volume.name, reservationId), delayMs: reservationTimeoutsMs(work.next.config.peerRetryDelayMs).memberMs });
  answer(true, null);
}

/**
 * Why `inactive` may not be given pages, as `self` sees them: draining, or
 * not a member of its record. A member whose record is older than the
 * creator's (a server added moments ago, whose join has not reached it yet)
 * says so, and that it passes: it used to say "draining or not a member",
 * which read like a refusal for good.
 */
function inactiveReason(membership: Membership, inactive: readonly ServerId[], self: ServerId): string {
  const draining = inactive.filter((server) => memberOf(membership, server) !== null);
  const unknown = inactive.filter((server) => memberOf(membership, server) === null);
  const parts = [
    ...(draining.length > 0 ? [`${draining.join(', ')} ${draining.length === 1 ? 'is' : 'are'} draining at ${self}`] : []),
    ...(unknown.length > 0 ? [`${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not a member at ${self} (at its membership epoch ${membership.epoch}: a server added moments ago is not known everywhere yet; try again in a few seconds)`] : []),
  ];
  return parts.join('; ');
}

/** Creator: a member's answer; a majority of grants defines the volume, a majority made impossible refuses it. */
export function receiveReserveAnswer(work: ReservationWork, from: ServerId, name: string, reservationId: string, granted: boolean, reason: string | null): void {
  const held = ownValue(work.next.read('volumeReservations'), name);
  if (!held || held.id !== reservationId || held.by !== work.next.config.self || held.requestId === null) return;
  if (held.granted.includes(from) || held.refused.includes(from)) return;
  const next = granted ? { ...held, granted: [...held.granted, from] } : { ...held, refused: [...held.refused, from] };
  const memberCount = memberIds(work.next.membership).length;
  const needed = grantsNeeded(memberCount);
  if (next.granted.length + 1 >= needed) {
    const inactive = held.volume.servers.filter((server) => !isActiveMember(work.next.membership, server));
    if (inactive.length > 0) return abandon(work, name, next, `volume ${name} was not created: ${inactive.join(', ')} ${inactive.length === 1 ? 'is' : 'are'} draining or not a member now`);
    delete work.next.volumeReservations[name];
    return work.defineCreated(held.volume, held.requestId);
  }
  if (memberCount - next.refused.length < needed) {
    return abandon(work, name, next, `volume ${name} is being created elsewhere or exists otherwise${reason ? ` (${reason})` : ''}; try again`);
  }
  work.next.volumeReservations[name] = next;
}

/** Member: the creator gave up. */
export function receiveRelease(work: ReservationWork, from: ServerId, name: string, reservationId: string): void {
  const held = ownValue(work.next.read('volumeReservations'), name);
  if (held && held.id === reservationId && held.by === from) delete work.next.volumeReservations[name];
}

/** A definition arrived (or was made here): any reservation of its name has done its work. */
export function endReservationByDefinition(work: ReservationWork, volume: VolumeDefinition): void {
  const held = ownValue(work.next.read('volumeReservations'), volume.name);
  if (held && held.requestId === null && sameDefinition(held.volume, volume)) delete work.next.volumeReservations[volume.name];
}

/** Whether a definition that arrives may be taken: not while this server holds its name for a different one. */
export function mayDefine(state: { readonly volumeReservations: Readonly<Record<string, VolumeReservation>> }, volume: VolumeDefinition): boolean {
  const held = ownValue(state.volumeReservations, volume.name);
  return !held || sameDefinition(held.volume, volume);
}

export function isReservationTimerLive(state: { readonly volumeReservations: Readonly<Record<string, VolumeReservation>> }, name: string, id: string): boolean {
  return ownValue(state.volumeReservations, name)?.id === id;
}

/** The creator's wait, or a member's hold, is over. */
export function reservationTimerFired(work: ReservationWork, name: string, id: string): void {
  const held = ownValue(work.next.read('volumeReservations'), name);
  if (!held || held.id !== id) return;
  if (held.requestId === null) {
    delete work.next.volumeReservations[name];
    return;
  }
  const silent = memberIds(work.next.membership).filter((member) => member !== work.next.config.self && !held.granted.includes(member) && !held.refused.includes(member));
  abandon(work, name, held, `volume ${name} was not created: too few members granted its name in time (a majority must; no answer from ${silent.join(', ') || 'none'}); try again`);
}

/** Every other member is told, not only those that granted: an answer still on its way is a grant held there. */
function abandon(work: ReservationWork, name: string, held: VolumeReservation, message: string): void {
  delete work.next.volumeReservations[name];
  for (const to of memberIds(work.next.membership)) if (to !== work.next.config.self) send(work, to, { type: 'volume.release', name, reservationId: held.id });
  if (held.requestId !== null) work.effects.push({ type: 'admin.reply', requestId: held.requestId, ok: false, message });
}
