import { describe, expect, it } from 'vitest';
import type { Action } from '../world/world.js';
import type { ActionWeights } from './swarm-weights.js';
import { pickWeighted } from './swarm-weights.js';

const weights = (overrides: Partial<ActionWeights>): ActionWeights => ({
  'client.write': 1, 'client.read': 1, 'client.flush': 1, 'move.start': 1, deliver: 1, drop: 1, duplicate: 1,
  persist: 1, 'persist.fail': 1, timer: 1, crash: 1, restart: 1, ...overrides,
});
const writes: Action[] = [0, 1, 2, 3, 4, 5].map((block) => ({ type: 'client.write', server: 0, block }));
const deliver: Action = { type: 'deliver', index: 0 };

describe('swarm pick', () => {
  it('picks a kind in proportion to its weight however many actions it has, then an action of that kind', () => {
    const enabled = [...writes, deliver];
    const picks = Array.from({ length: 7_000 }, (_, choice) => pickWeighted(enabled, weights({ 'client.write': 1, deliver: 6 }), choice));
    // Uniform over actions, six writes would outnumber the delivery six to one; by kind, the delivery is six of seven.
    expect(picks.filter((action) => action === deliver)).toHaveLength(6_000);
    expect(new Set(picks.filter((action) => action !== deliver))).toEqual(new Set(writes));
  });

  it('never picks a kind of weight 0 while another kind is enabled, and falls back to a plain pick when all weigh 0', () => {
    const enabled = [...writes, deliver];
    const noWrites = weights({ 'client.write': 0 });
    expect(Array.from({ length: 100 }, (_, choice) => pickWeighted(enabled, noWrites, choice)).every((action) => action === deliver)).toBe(true);
    expect(pickWeighted(writes, noWrites, 3)).toBe(writes[3]);
  });

  it('ends the walk when nothing is enabled, and choice 0 picks the first enabled action (the shrink target)', () => {
    expect(pickWeighted([], weights({}), 5)).toBeNull();
    expect(pickWeighted([...writes, deliver], weights({}), 0)).toBe(writes[0]);
  });
});
