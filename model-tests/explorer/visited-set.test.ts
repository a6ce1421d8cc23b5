import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Action } from '../world/world.js';
import { VisitedSet } from './visited-set.js';

const digestOf = (text: string) => createHash('sha1').update(text).digest();

describe('the compact visited set', () => {
  it('finds every state added, by ordinal, across many growths, and nothing else', () => {
    const visited = new VisitedSet();
    const count = 200_000;
    for (let index = 0; index < count; index += 1) {
      const action: Action = { type: 'persist', server: index % 7 };
      expect(visited.add(digestOf(`state ${index}`), index - 1, index === 0 ? null : action)).toBe(index);
    }
    expect(visited.size).toBe(count);
    let found = 0;
    for (let index = 0; index < count; index += 1) if (visited.find(digestOf(`state ${index}`)) === index) found += 1;
    expect(found).toBe(count);
    for (let index = 0; index < 1_000; index += 1) expect(visited.find(digestOf(`absent ${index}`))).toBe(-1);
    expect(visited.parentOf(12_345)).toBe(12_344);
    expect(visited.actionOf(12_345)).toEqual({ type: 'persist', server: 12_345 % 7 });
    expect(visited.actionOf(0)).toBeNull();
  });

  it('tells apart digests that agree on all but one of the 96 bits it keeps', () => {
    const visited = new VisitedSet();
    const base = digestOf('base');
    visited.add(base, -1, null);
    for (let byte = 0; byte < 12; byte += 1) {
      const other = Buffer.from(base);
      other[byte] = (other[byte] as number) ^ 0x80;
      expect(visited.find(other), `byte ${byte}`).toBe(-1);
      expect(visited.add(other, 0, null)).toBe(byte + 1);
    }
    expect(visited.find(base)).toBe(0);
  });
});
