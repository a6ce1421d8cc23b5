import { describe, expect, it } from 'vitest';
import { changesPerPairMax, rememberedClientChange } from './client-bookkeeping.js';
import { initialRegister } from './register-check.js';

describe('client bookkeeping changes are remembered per pair of lists and per change', () => {
  it('returns the same lists for the same change of the same pair, computes a new change or a new pair, and stays bounded', () => {
    const clients: string[] = [];
    const registers = [initialRegister];
    let computed = 0;
    const change = (key: string) => rememberedClientChange(clients, registers, key, () => {
      computed += 1;
      return { clients: [...clients, key], registers: registers.slice(), violation: null };
    });
    const first = change('reply|w1|true|null');
    expect(change('reply|w1|true|null')).toBe(first);
    expect(computed).toBe(1);
    expect(change('reply|w1|false|null')).not.toBe(first);
    expect(computed).toBe(2);
    const otherRegisters = registers.slice();
    rememberedClientChange(clients, otherRegisters, 'reply|w1|true|null', () => { computed += 1; return { clients, registers: otherRegisters, violation: null }; });
    expect(computed).toBe(3);
    for (let index = 0; index < 2 * changesPerPairMax; index += 1) change(`fill|${index}`);
    const before = computed;
    change(`fill|${2 * changesPerPairMax - 1}`);
    expect(computed).toBe(before + 1);
  });
});
