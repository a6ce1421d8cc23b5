import type { ServerId } from '../identifiers.js';
import { assert } from '../identifiers.js';

/**
 * Who is in the group: one record, exchanged between servers and kept
 * durably by each, whose epoch only grows.
 *
 * Theory of operation. Every change (a server joins, starts draining, leaves)
 * is made by one server, which writes the record with the epoch one above the
 * newest it knows and sends it to every member, old and new. A server adopts
 * a record that is newer than its own (higher epoch; at an equal epoch — two
 * changes made concurrently on two servers — the greater canonical text, so
 * every server picks the same one), persists it and tells its runtime, which
 * connects to members learned this way. A server that hears an older record
 * answers with its own, so one that was down during a change catches up the
 * first time it speaks (runtimes announce their record at start and every
 * few seconds). Like routes, membership is lazy: it converges, it is not
 * agreed on atomically. Two concurrent changes at one epoch: one record wins
 * the tie-break, and the server whose join or drain it lacks makes that
 * change again on top of it, at the next epoch (machines/node/node-membership.ts,
 * `reapplyChangesMade`), so both land; a leave is asked again by its drain.
 *
 * Epoch 0 is the bootstrap record built from the group configuration at
 * process start; it is never persisted and every real change supersedes it.
 */
export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

export interface Member {
  readonly id: ServerId;
  /** Where its peer listener is; null in a bootstrap record built without addresses (the simulator). */
  readonly peer: PeerAddress | null;
  /** Where its admin API is (its balancer listens next to it); null when unknown. */
  readonly admin: PeerAddress | null;
  /** Relative share of the group's pages and load this server should carry. */
  readonly capacityWeight: number;
  /** A draining server gives its pages away and must not receive any. */
  readonly draining: boolean;
}

export interface Membership {
  readonly epoch: number;
  /** Sorted by id, no repeats. */
  readonly members: readonly Member[];
}

/** Bounds every membership record: a group larger than this is refused. */
export const membersMax = 256;

/**
 * Capacity weights are relative, so a range of a billion to one is room
 * enough; outside it the allocation's arithmetic breaks down (a weight of
 * 1e-320 made every imbalance Infinity and every gain NaN, so no move was
 * ever planned; a review found it).
 */
export const capacityWeightMin = 1e-3;
export const capacityWeightMax = 1e6;

export function capacityWeightProblem(weight: unknown): string | null {
  return typeof weight === 'number' && weight >= capacityWeightMin && weight <= capacityWeightMax ? null : `capacityWeight must be a number from ${capacityWeightMin} to ${capacityWeightMax}`;
}

export function bootstrapMembership(members: readonly Member[]): Membership {
  return { epoch: 0, members: sortedMembers(members) };
}

export function memberIds(membership: Membership): ServerId[] {
  return membership.members.map((member) => member.id);
}

export function memberOf(membership: Membership, id: ServerId): Member | null {
  return membership.members.find((member) => member.id === id) ?? null;
}

/** A server pages may move to and volumes may be created on: a member that is not draining. */
export function isActiveMember(membership: Membership, id: ServerId): boolean {
  const member = memberOf(membership, id);
  return member !== null && !member.draining;
}

/** Whether `candidate` should replace `known`: a higher epoch, or at the same epoch the greater canonical text (so every server picks the same). */
export function isNewerMembership(candidate: Membership, known: Membership): boolean {
  if (candidate.epoch !== known.epoch) return candidate.epoch > known.epoch;
  return membershipText(candidate) > membershipText(known);
}

export function membershipText(membership: Membership): string {
  return JSON.stringify(membership);
}

export type MembershipChange =
  | { readonly kind: 'add'; readonly member: Member }
  | { readonly kind: 'drain'; readonly id: ServerId }
  | { readonly kind: 'remove'; readonly id: ServerId }
  /** Members that cannot leave by themselves (down for good), removed by another once every other member confirms they hold nothing (machines/node/member-forget.ts). */
  | { readonly kind: 'forget'; readonly ids: readonly ServerId[] };

/**
 * Why a membership change was refused, for a program to act on (the admin
 * API passes it on beside the message, and the CLI decides by it: it used to
 * match the English of the message). `servers` names the members the reason
 * is about: those not members, already draining, not yet draining, not yet
 * confirming, or still holding something (pages they own, or a table or a
 * move that names them). `final` covers every other refusal
 * (an invalid member, a full group, the last active member, ...): asking
 * again changes nothing until the administrator does.
 */
export type MembershipRefusal =
  | { readonly reason: (typeof refusalReasonsNamingServers)[number]; readonly servers: readonly ServerId[] }
  | { readonly reason: 'final' };

/** The refusal reasons that name servers (the one list: the admin client checks answers against it). */
export const refusalReasonsNamingServers = ['notAMember', 'alreadyDraining', 'notDraining', 'waitingFor', 'stillHolds'] as const;

/** A refused change: what to tell the administrator, and why for a program. */
export interface RefusedChange {
  readonly message: string;
  readonly refusal: MembershipRefusal;
}

export function refusedChange(message: string, refusal: MembershipRefusal = { reason: 'final' }): RefusedChange {
  return { message, refusal };
}

export function isRefusedChange(outcome: Membership | RefusedChange): outcome is RefusedChange {
  return 'refusal' in outcome;
}

/** The record after a change, or why the change is refused. A change that is already in effect is refused too, so it never bumps the epoch twice. */
export function changedMembership(membership: Membership, change: MembershipChange): Membership | RefusedChange {
  const next = (members: readonly Member[]): Membership => ({ epoch: membership.epoch + 1, members: sortedMembers(members) });
  const notAMember = (id: ServerId): RefusedChange => refusedChange(`${id} is not a member`, { reason: 'notAMember', servers: [id] });
  switch (change.kind) {
    case 'add': {
      const problem = memberProblem(change.member);
      if (problem) return refusedChange(problem);
      if (memberOf(membership, change.member.id)) return refusedChange(`${change.member.id} is already a member`);
      if (membership.members.length >= membersMax) return refusedChange(`the group already has ${membersMax} members`);
      // Another member's address would give the new member that server's traffic (a review added s5 at s4's ports: a
      // move to s5 landed on s4, and every FLUSH then waited on a member that never answered as itself).
      const taken = addressTakenBy(membership, change.member);
      if (taken) return refusedChange(taken);
      return next([...membership.members, { ...change.member, draining: false }]);
    }
    case 'drain': {
      const member = memberOf(membership, change.id);
      if (!member) return notAMember(change.id);
      if (member.draining) return refusedChange(`${change.id} is already draining`, { reason: 'alreadyDraining', servers: [change.id] });
      if (!membership.members.some((other) => other.id !== change.id && !other.draining)) return refusedChange(`${change.id} is the last member that is not draining`);
      return next(membership.members.map((other) => (other.id === change.id ? { ...other, draining: true } : other)));
    }
    case 'forget': {
      if (change.ids.length === 0) return refusedChange('no member to forget');
      for (const id of change.ids) {
        const member = memberOf(membership, id);
        if (!member) return notAMember(id);
        if (!member.draining) return refusedChange(`drain ${id} first, so that no move toward it starts`, { reason: 'notDraining', servers: [id] });
      }
      const left = membership.members.filter((other) => !change.ids.includes(other.id));
      if (!left.some((other) => !other.draining)) return refusedChange('no member that is not draining would be left');
      return next(left);
    }
    case 'remove': {
      const member = memberOf(membership, change.id);
      if (!member) return notAMember(change.id);
      if (!member.draining) return refusedChange(`${change.id} must be drained before it leaves`, { reason: 'notDraining', servers: [change.id] });
      return next(membership.members.filter((other) => other.id !== change.id));
    }
  }
}

/** Why a new member's peer or admin address is another member's, or null. */
function addressTakenBy(membership: Membership, member: Member): string | null {
  for (const other of membership.members) {
    for (const [mine, name] of [[member.peer, 'peer'], [member.admin, 'admin']] as const) {
      if (mine === null) continue;
      for (const theirs of [other.peer, other.admin]) {
        if (theirs !== null && theirs.host === mine.host && theirs.port === mine.port) return `${name} address ${mine.host}:${mine.port} is ${other.id}'s`;
      }
    }
  }
  return null;
}

export function memberProblem(member: Member): string | null {
  if (typeof member.id !== 'string' || !/^[A-Za-z0-9_-]{1,32}$/.test(member.id)) return 'member id must be 1-32 letters, digits, \'_\' or \'-\'';
  if (capacityWeightProblem(member.capacityWeight)) return capacityWeightProblem(member.capacityWeight);
  for (const name of ['peer', 'admin'] as const) {
    const address = member[name];
    if (address !== null && (typeof address !== 'object' || typeof address.host !== 'string' || address.host.length === 0 || !Number.isInteger(address.port) || address.port < 1 || address.port > 65535)) {
      return `${name} must be {host, port} with a host and a port in 1-65535, or null`;
    }
  }
  return null;
}

export function membershipProblem(membership: Membership): string | null {
  if (!Number.isSafeInteger(membership.epoch) || membership.epoch < 0) return 'epoch must be a non-negative integer';
  if (!Array.isArray(membership.members) || membership.members.length > membersMax) return `members must be a list of at most ${membersMax}`;
  for (const member of membership.members) {
    const problem = memberProblem(member);
    if (problem) return `${String(member.id)}: ${problem}`;
  }
  const ids = memberIds(membership);
  if (new Set(ids).size !== ids.length) return 'members repeat';
  return null;
}

function sortedMembers(members: readonly Member[]): Member[] {
  const sorted = [...members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  assert(new Set(sorted.map((member) => member.id)).size === sorted.length, 'members do not repeat');
  return sorted;
}
