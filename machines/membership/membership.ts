import type { ServerId } from '../identifiers.js';
import { assert } from '../identifiers.js';

/**
 * Who is in the group: one record, exchanged between servers and kept
 * durably by each, whose epoch only grows.
 *
 * Theory of operation. Every change (a server joins, starts draining, leaves)
 * is made by one server, which writes the record with the epoch one above the
 * newest it knows and sends it to every member, old and new. A server that
 * hears a record merges it with its own (below); if that changes its own, it
 * persists the merge and tells its runtime, which connects to members
 * learned this way. A server whose record adds something to the one it
 * heard answers with its own, so one that was down during a change catches up the
 * first time it speaks (runtimes announce their record at start and every
 * few seconds). Like routes, membership is lazy: it converges, it is not
 * agreed on atomically.
 *
 * Concurrent changes merge. Each server id has a state that only grows:
 * (generation, active < draining < departed), where a server that left (a
 * leave or a forget) is kept as a departed entry, and one added again under
 * its id is a new generation. Two records merge per id to the greater state
 * (`mergedMembership`), a join-semilattice: commutative, associative and
 * idempotent, so any number of changes made at once on any servers all land,
 * whatever order records meet in (it used to be that one record won a
 * tie-break at its epoch and the loser's maker made its change again on top,
 * which cascading tie-breaks could lose with three changes at once). The
 * merge of two records is the newer one when it adds nothing to it, else a
 * new record one epoch above both, which every server that merges the same
 * two builds alike. Two joins of one id at one generation with different
 * addresses merge to the greater canonical text (one of them is lost); two
 * drains of the last two active members both land (the group then has no
 * active member until one is added).
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
  /** How many times a server of this id has left the group before; absent for 0 (a record made before 27 Nov has none). */
  readonly generation?: number;
  /**
   * The epoch of the record that added it; absent in a bootstrap record. Of two joins of one id at one generation
   * (made at once, or one on a stale record), the one made on the newer record wins the merge.
   */
  readonly joinedAt?: number;
}

/** A server that left the group (by a leave or a forget), at the generation it was. */
export interface DepartedMember {
  readonly id: ServerId;
  readonly generation: number;
}

export interface Membership {
  readonly epoch: number;
  /** Sorted by id, no repeats. */
  readonly members: readonly Member[];
  /** Servers that left, so that no merge brings one back; sorted by id, none a member; absent when empty. */
  readonly departed?: readonly DepartedMember[];
}

/** Bounds every membership record: a group larger than this is refused. */
export const membersMax = 256;
/** Bounds the departed servers a record keeps: a join of an id never seen before is refused once this many have left. */
export const departedMax = 4096;

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

export function generationOf(member: Member): number {
  return member.generation ?? 0;
}

function departedOf(membership: Membership, id: ServerId): DepartedMember | null {
  return membership.departed?.find((entry) => entry.id === id) ?? null;
}

/**
 * An id's state in a record, ordered by generation, then active < draining <
 * departed, then the epoch its join was made at (a join made on a newer
 * record is better informed: one made on a stale record must not displace a
 * member the group already has under that id), then canonical text.
 */
type IdState = { readonly generation: number; readonly rank: number; readonly joinedAt: number; readonly member: Member | null };

function idStatesOf(membership: Membership): Map<ServerId, IdState> {
  const states = new Map<ServerId, IdState>();
  for (const member of membership.members) states.set(member.id, { generation: generationOf(member), rank: member.draining ? 1 : 0, joinedAt: member.joinedAt ?? 0, member });
  for (const entry of membership.departed ?? []) states.set(entry.id, { generation: entry.generation, rank: 2, joinedAt: 0, member: null });
  return states;
}

function isGreaterState(a: IdState, b: IdState): boolean {
  if (a.generation !== b.generation) return a.generation > b.generation;
  if (a.rank !== b.rank) return a.rank > b.rank;
  if (a.joinedAt !== b.joinedAt) return a.joinedAt > b.joinedAt;
  return a.member !== null && b.member !== null && JSON.stringify(a.member) > JSON.stringify(b.member);
}

/**
 * The merge of two records (see the theory of operation): per id the greater
 * state. It is the record of the higher epoch if that already holds every
 * id's greater state, else a new record one epoch above both, so a server's
 * record never changes without its epoch rising (two records of one epoch
 * that differ merge one above it: the store keeps the record of the higher
 * epoch, and a review found an adopted record of an equal epoch never made
 * durable). An epoch-0 record (a server's own configuration, before any
 * change) takes no part: the other one is kept. A merge that breaks a rule a
 * single change keeps (two members at one address, more than `membersMax`
 * members, more than `departedMax` departed) gives way to the newer record
 * whole, as before merges, so the other change is lost (README, "Limits").
 */
export function mergedMembership(a: Membership, b: Membership): Membership {
  if (a.epoch === 0 || b.epoch === 0) return b.epoch === 0 && a.epoch !== 0 ? a : a.epoch === 0 && b.epoch !== 0 ? b : isNewerMembership(b, a) ? b : a;
  const aText = membershipText(a);
  const bText = membershipText(b);
  // Records meet on every announcement, nearly always alike: no per-id work then.
  if (aText === bText) return a;
  const ofA = idStatesOf(a);
  const ofB = idStatesOf(b);
  const ids = [...new Set([...ofA.keys(), ...ofB.keys()])].sort();
  const members: Member[] = [];
  const departed: DepartedMember[] = [];
  for (const id of ids) {
    const stateA = ofA.get(id);
    const stateB = ofB.get(id);
    const greater = stateA === undefined ? stateB! : stateB === undefined ? stateA : isGreaterState(stateB, stateA) ? stateB : stateA;
    if (greater.member) members.push(greater.member);
    else departed.push({ id, generation: greater.generation });
  }
  const newer = isNewerMembership(b, a) ? b : a;
  if (a.epoch !== b.epoch && contentText(newer.members, newer.departed ?? []) === contentText(members, departed)) return newer;
  const merged = withDeparted({ epoch: Math.max(a.epoch, b.epoch) + 1, members }, departed);
  return membershipProblem(merged) === null ? merged : newer;
}

function contentText(members: readonly Member[], departed: readonly DepartedMember[]): string {
  return JSON.stringify([members, departed]);
}

function withDeparted(membership: { epoch: number; members: readonly Member[] }, departed: readonly DepartedMember[]): Membership {
  return departed.length === 0 ? membership : { ...membership, departed };
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
  /** With `declareLost`, the pages whose only copy was on one of them are declared lost and served empty instead (machines/node/lost-pages.ts). */
  | { readonly kind: 'forget'; readonly ids: readonly ServerId[]; readonly declareLost?: boolean };

/**
 * Why a membership change was refused, for a program to act on (the admin
 * API passes it on beside the message, and the CLI decides by it: it used to
 * match the English of the message). `servers` names the members the reason
 * is about: those not members, already draining, not yet draining, not yet
 * confirming, or still holding something (pages they own, or a table or a
 * move that names them; `declaringLost`: pages of theirs being declared lost,
 * or the claimant to ask instead). `final` covers every other refusal
 * (an invalid member, a full group, the last active member, ...): asking
 * again changes nothing until the administrator does.
 */
export type MembershipRefusal =
  | { readonly reason: (typeof refusalReasonsNamingServers)[number]; readonly servers: readonly ServerId[] }
  | { readonly reason: 'final' };

/** The refusal reasons that name servers (the one list: the admin client checks answers against it). */
export const refusalReasonsNamingServers = ['notAMember', 'alreadyDraining', 'notDraining', 'waitingFor', 'stillHolds', 'declaringLost'] as const;

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
  const departed = membership.departed ?? [];
  const next = (members: readonly Member[], nextDeparted: readonly DepartedMember[] = departed): Membership =>
    withDeparted({ epoch: membership.epoch + 1, members: sortedMembers(members) }, [...nextDeparted].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)));
  // The servers leaving go to `departed` at their generation (replacing an older entry of their id).
  const leaving = (ids: readonly ServerId[]): DepartedMember[] => [
    ...departed.filter((entry) => !ids.includes(entry.id)),
    ...ids.map((id) => ({ id, generation: generationOf(memberOf(membership, id)!) })),
  ];
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
      // A server added again under an id that left is a new generation of it, greater than the departed entry.
      const before = departedOf(membership, change.member.id);
      if (!before && departed.length >= departedMax) return refusedChange(`${departedMax} servers have left this group: a new id cannot join (add one under an id that left)`);
      const { generation: _given, joinedAt: _at, ...fields } = change.member;
      const joinedAt = membership.epoch + 1;
      const joining: Member = before ? { ...fields, draining: false, generation: before.generation + 1, joinedAt } : { ...fields, draining: false, joinedAt };
      return next([...membership.members, joining], departed.filter((entry) => entry.id !== change.member.id));
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
      return next(left, leaving(change.ids));
    }
    case 'remove': {
      const member = memberOf(membership, change.id);
      if (!member) return notAMember(change.id);
      if (!member.draining) return refusedChange(`${change.id} must be drained before it leaves`, { reason: 'notDraining', servers: [change.id] });
      return next(membership.members.filter((other) => other.id !== change.id), leaving([change.id]));
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

const memberIdPattern = /^[A-Za-z0-9_-]{1,32}$/;

export function memberProblem(member: Member): string | null {
  if (typeof member.id !== 'string' || !memberIdPattern.test(member.id)) return 'member id must be 1-32 letters, digits, \'_\' or \'-\'';
  if (capacityWeightProblem(member.capacityWeight)) return capacityWeightProblem(member.capacityWeight);
  for (const name of ['peer', 'admin'] as const) {
    const address = member[name];
    if (address !== null && (typeof address !== 'object' || typeof address.host !== 'string' || address.host.length === 0 || !Number.isInteger(address.port) || address.port < 1 || address.port > 65535)) {
      return `${name} must be {host, port} with a host and a port in 1-65535, or null`;
    }
  }
  return null;
}

/** Epochs stay far below 2^53, so that no merge (one above the greater of two) leaves the safe integers. */
export const epochMax = 2 ** 48;

export function membershipProblem(membership: Membership): string | null {
  // A peer's bytes: not even an object (a review's malformed lost.check, whose null record threw out of the step).
  if (typeof membership !== 'object' || membership === null) return 'a membership record must be an object';
  if (!Number.isSafeInteger(membership.epoch) || membership.epoch < 0 || membership.epoch > epochMax) return `epoch must be an integer from 0 to ${epochMax}`;
  if (!Array.isArray(membership.members) || membership.members.length > membersMax) return `members must be a list of at most ${membersMax}`;
  for (const member of membership.members) {
    const problem = memberProblem(member);
    if (problem) return `${String(member.id)}: ${problem}`;
  }
  const ids = memberIds(membership);
  if (!isStrictlySorted(ids)) return 'members must be sorted by id, without repeats';
  const addressOwners = new Map<string, ServerId>();
  for (const member of membership.members) {
    for (const field of ['generation', 'joinedAt'] as const) {
      const value = member[field];
      if (value !== undefined && (!Number.isSafeInteger(value) || value < 0 || value > epochMax)) return `${member.id}: ${field} must be an integer from 0 to ${epochMax}`;
    }
    // One pass, not addressTakenBy per member: peers' records are checked on every announcement.
    for (const address of [member.peer, member.admin]) {
      if (address === null) continue;
      const text = `${address.host}:${address.port}`;
      const owner = addressOwners.get(text);
      if (owner !== undefined && owner !== member.id) return `${member.id} and ${owner} share the address ${text}`;
      addressOwners.set(text, member.id);
    }
  }
  if (membership.departed !== undefined) {
    if (!Array.isArray(membership.departed) || membership.departed.length > departedMax) return `departed must be a list of at most ${departedMax}`;
    for (const entry of membership.departed) {
      if (typeof entry !== 'object' || entry === null || typeof entry.id !== 'string' || !memberIdPattern.test(entry.id) || !Number.isSafeInteger(entry.generation) || entry.generation < 0 || entry.generation > epochMax) {
        return 'departed entries must be {id, generation} with a valid id';
      }
    }
    const departedIds = membership.departed.map((entry) => entry.id);
    if (!isStrictlySorted(departedIds) || departedIds.some((id) => memberOf(membership, id) !== null)) return 'departed servers must be sorted by id, without repeats, and not members';
  }
  return null;
}

function isStrictlySorted(ids: readonly ServerId[]): boolean {
  return ids.every((id, index) => index === 0 || ids[index - 1]! < id);
}

function sortedMembers(members: readonly Member[]): Member[] {
  const sorted = [...members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  assert(new Set(sorted.map((member) => member.id)).size === sorted.length, 'members do not repeat');
  return sorted;
}

/** Whether a peer's list of servers (a forget check's, a lost-pages claim's) is one: sorted, without repeats, at most a record's worth. */
export function isServerList(servers: readonly ServerId[], membership: Membership): boolean {
  return Array.isArray(servers) && servers.length > 0 && servers.length <= membership.members.length &&
    servers.every((id, index) => typeof id === 'string' && (index === 0 || servers[index - 1]! < id));
}

/** Whether two sorted server lists are the same. */
export function sameServers(a: readonly ServerId[], b: readonly ServerId[]): boolean {
  return a.length === b.length && a.every((id, index) => id === b[index]);
}
