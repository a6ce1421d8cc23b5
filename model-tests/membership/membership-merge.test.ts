import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Membership, MembershipChange } from '../../machines/membership/membership.js';
import { bootstrapMembership, changedMembership, isNewerMembership, isRefusedChange, memberOf, membershipProblem, mergedMembership } from '../../machines/membership/membership.js';
import { assertChecked, checkProperty } from '../random/checked-run.js';
import { runCount, runSeed } from '../random/run-seed.js';
import { member } from './membership-fixture.js';

/**
 * The merge of membership records (machines/membership/membership.ts,
 * `mergedMembership`) is what lets any number of changes made at once on
 * different servers all land: it must be a join on the records' content
 * (commutative, associative, idempotent), never lower an epoch, keep every
 * change a branch made (a drained server stays draining or gone, a departed
 * one never comes back unless added again, as a newer generation), and give
 * valid records. Branches are random sequences of changes made from one
 * shared record, as servers that have not heard of each other's changes
 * would make them. Each run prints its seed.
 */
const ids = ['s1', 's2', 's3', 's4', 's5'] as const;
const base = changedMembership(bootstrapMembership(['s1', 's2', 's3'].map((id) => member(id))), { kind: 'add', member: member('s4') }) as Membership;

const changeArbitrary: fc.Arbitrary<MembershipChange> = fc.oneof(
  fc.constantFrom(...ids).map((id): MembershipChange => ({ kind: 'add', member: member(id) })),
  fc.constantFrom(...ids).map((id): MembershipChange => ({ kind: 'drain', id })),
  fc.constantFrom(...ids).map((id): MembershipChange => ({ kind: 'remove', id })),
  fc.subarray([...ids], { minLength: 1, maxLength: 2 }).map((forgotten): MembershipChange => ({ kind: 'forget', ids: forgotten })),
);

/** A branch: the changes of `changes` that apply, made one after another from `from`, and the drains among them. */
function branch(from: Membership, changes: readonly MembershipChange[]): { record: Membership; drained: Set<string> } {
  let record = from;
  const drained = new Set<string>();
  for (const change of changes) {
    const next = changedMembership(record, change);
    if (isRefusedChange(next)) continue;
    record = next;
    if (change.kind === 'drain') drained.add(change.id);
    // A server added again is a new generation: its old drain no longer speaks for it.
    if (change.kind === 'add') drained.delete(change.member.id);
  }
  return { record, drained };
}

const content = (record: Membership) => JSON.stringify([record.members, record.departed ?? []]);
const stateOf = (record: Membership, id: string) => {
  const entry = memberOf(record, id);
  if (entry) return `${entry.generation ?? 0}:${entry.draining ? 'draining' : 'active'}`;
  const gone = record.departed?.find((departed) => departed.id === id);
  return gone ? `${gone.generation}:departed` : 'never';
};

describe('merging membership records', () => {
  it('is a join: commutative, associative and idempotent on content; epochs never fall; every branch\'s changes land', () => {
    const branches = fc.array(fc.array(changeArbitrary, { maxLength: 6 }), { minLength: 3, maxLength: 3 });
    let mergesThatMadeNewRecords = 0;
    const property = fc.property(branches, (changeLists) => {
      const made = changeLists.map((changes) => branch(base, changes));
      const [a, b, c] = made.map((entry) => entry.record) as [Membership, Membership, Membership];
      const ab = mergedMembership(a, b);
      expect(content(ab)).toBe(content(mergedMembership(b, a)));
      expect(mergedMembership(ab, ab)).toBe(ab);
      expect(mergedMembership(a, a)).toBe(a);
      const left = mergedMembership(ab, c);
      const right = mergedMembership(a, mergedMembership(b, c));
      expect(content(left)).toBe(content(right));
      expect(ab.epoch).toBeGreaterThanOrEqual(Math.max(a.epoch, b.epoch));
      // A record never changes without its epoch rising: the store keeps the higher epoch (a review found a merge that
      // returned one record in place of another of the same epoch, which the store then never made durable).
      for (const input of [a, b]) if (content(ab) !== content(input)) expect(ab.epoch).toBeGreaterThan(input.epoch);
      expect(membershipProblem(left)).toBeNull();
      if (ab !== a && ab !== b) mergesThatMadeNewRecords += 1;
      // A merge that adds nothing to the newer record is that record: no epoch is spent on it.
      if (content(ab) === content(a) && a.epoch > b.epoch) expect(ab.epoch).toBe(a.epoch);
      for (const id of ids) {
        // Per id, the merge holds the greatest state any branch reached.
        const states = [a, b, c].map((record) => stateOf(record, id));
        expect(states).toContain(stateOf(left, id));
        for (const { record, drained } of made) {
          // A drain a branch made stays: the server is draining or gone, unless a newer generation of it joined.
          if (drained.has(id) && memberOf(left, id)?.draining === false) expect(memberOf(left, id)!.generation ?? 0).toBeGreaterThan(memberOf(record, id)?.generation ?? 0);
          // A server that left on a branch never comes back at its generation.
          const gone = record.departed?.find((departed) => departed.id === id);
          if (gone && memberOf(left, id)) expect(memberOf(left, id)!.generation ?? 0).toBeGreaterThan(gone.generation);
        }
      }
    });
    const numRuns = runCount(2_000);
    const run = checkProperty('membership merges', property, { numRuns, seed: runSeed(), timeLimitMs: 60_000 });
    console.log(`membership merges: ${mergesThatMadeNewRecords} of ${numRuns} merges of two branches made a record newer than both`);
    assertChecked(run, numRuns);
    // The branches conflict often enough that the merge has something to do.
    expect(mergesThatMadeNewRecords).toBeGreaterThan(numRuns / 10);
  });

  it('of two joins of one id at one generation, the one made on the newer record wins (one made on a stale record does not displace it)', () => {
    // A review: s4 left, the group added it again at one address; a server that restarted with the old record (s4
    // departed) and heard nothing yet added it at another. The stale join's text sorted higher, and won.
    const left = changedMembership(changedMembership(base, { kind: 'drain', id: 's4' }) as Membership, { kind: 'remove', id: 's4' }) as Membership;
    const group = changedMembership(changedMembership(left, { kind: 'drain', id: 's3' }) as Membership, { kind: 'add', member: { ...member('s4'), peer: { host: '10.0.0.1', port: 7000 }, admin: { host: '10.0.0.1', port: 7001 } } }) as Membership;
    const stale = changedMembership(left, { kind: 'add', member: { ...member('s4'), peer: { host: '10.0.0.9', port: 7000 }, admin: { host: '10.0.0.9', port: 7001 } } }) as Membership;
    expect(memberOf(group, 's4')?.generation).toBe(1);
    expect(memberOf(stale, 's4')?.generation).toBe(1);
    expect(memberOf(mergedMembership(group, stale), 's4')?.peer?.host).toBe('10.0.0.1');
    expect(memberOf(mergedMembership(stale, group), 's4')?.peer?.host).toBe('10.0.0.1');
  });

  it('a merge that would break a rule single changes keep (two members at one address) gives way to the newer record whole', () => {
    const at = (id: string) => ({ ...member(id), peer: { host: '10.0.0.1', port: 7000 }, admin: { host: '10.0.0.1', port: 7001 } });
    const withS5 = changedMembership(base, { kind: 'add', member: at('s5') }) as Membership;
    const withS6 = changedMembership(base, { kind: 'add', member: at('s6') }) as Membership;
    const merged = mergedMembership(withS5, withS6);
    expect(membershipProblem(merged)).toBeNull();
    expect(merged).toBe(isNewerMembership(withS5, withS6) ? withS5 : withS6);
  });

  it('a server forgotten and added again is a new generation, which a record still naming its old self does not undo', () => {
    const draining = changedMembership(base, { kind: 'drain', id: 's4' }) as Membership;
    const forgotten = changedMembership(draining, { kind: 'forget', ids: ['s4'] }) as Membership;
    expect(forgotten.departed).toEqual([{ id: 's4', generation: 0 }]);
    const again = changedMembership(forgotten, { kind: 'add', member: member('s4') }) as Membership;
    expect(memberOf(again, 's4')).toEqual({ ...member('s4'), generation: 1, joinedAt: again.epoch });
    expect(again.departed).toBeUndefined();
    // A server that was down through all of it still has s4 draining at generation 0: the merge keeps the new s4.
    const merged = mergedMembership(draining, again);
    expect(merged).toBe(again);
    expect(mergedMembership(forgotten, draining)).toBe(forgotten);
  });
});
