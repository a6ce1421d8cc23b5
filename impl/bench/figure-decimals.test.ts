import { describe, expect, it } from 'vitest';
import { decimalsFor } from './figure-decimals.js';

describe('decimals for a benchmark figure', () => {
  it('keeps about three significant digits, and at least one decimal', () => {
    expect([43_230, 172.7, 12, 1.5, 0.51, 0.051, 0].map(decimalsFor)).toEqual([1, 1, 1, 2, 3, 4, 1]);
    expect((0.5123).toFixed(decimalsFor(0.5123))).toBe('0.512');
  });
});
