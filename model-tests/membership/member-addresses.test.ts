import { describe, expect, it } from 'vitest';
import type { Member } from '../../machines/membership/membership.js';
import { bootstrapMembership, changedMembership, isRefusedChange, refusedChange } from '../../machines/membership/membership.js';

/**
 * A member joins with addresses of its own. A review added one with an empty
 * host (every FLUSH then waited on a member nobody could reach) and one at
 * another member's ports (a move to it landed on the other server, which
 * then answered as itself); both were accepted.
 */
const at = (id: string, port: number): Member => ({ id, peer: { host: '127.0.0.1', port }, admin: { host: '127.0.0.1', port: port + 1000 }, capacityWeight: 1, draining: false });
const group = bootstrapMembership([at('s1', 11001), at('s2', 11002)]);

describe('a member joining', () => {
  it('is refused with an empty host or another member\'s peer or admin address, and accepted with its own', () => {
    expect(changedMembership(group, { kind: 'add', member: { ...at('s9', 11009), peer: { host: '', port: 11009 } } })).toEqual(refusedChange('peer must be {host, port} with a host and a port in 1-65535, or null'));
    expect(changedMembership(group, { kind: 'add', member: { ...at('s9', 11009), peer: { host: '127.0.0.1', port: 11002 } } })).toEqual(refusedChange('peer address 127.0.0.1:11002 is s2\'s'));
    expect(changedMembership(group, { kind: 'add', member: { ...at('s9', 11009), admin: { host: '127.0.0.1', port: 12001 } } })).toEqual(refusedChange('admin address 127.0.0.1:12001 is s1\'s'));
    const joined = changedMembership(group, { kind: 'add', member: at('s9', 11009) });
    expect(isRefusedChange(joined) ? joined : joined.members.map((member) => member.id)).toEqual(['s1', 's2', 's9']);
  });
});
