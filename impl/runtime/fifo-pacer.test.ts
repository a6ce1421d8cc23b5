import { describe, expect, it } from 'vitest';
import { FifoPacer } from './fifo-pacer.js';

describe('FIFO pacer', () => {
  it('queues jobs behind each other: each starts when the one before ends, and an idle pacer banks nothing', () => {
    let nowMs = 0;
    const pacer = new FifoPacer(1000, () => nowMs); // one unit per ms
    expect(pacer.reserve(5)).toEqual({ startInMs: 0, endInMs: 5 });
    expect(pacer.reserve(3)).toEqual({ startInMs: 5, endInMs: 8 });
    nowMs = 6;
    expect(pacer.reserve(1)).toEqual({ startInMs: 2, endInMs: 3 });
    nowMs = 100;
    expect(pacer.reserve(2)).toEqual({ startInMs: 0, endInMs: 2 });
  });

  it('refuses a rate that is not positive', () => {
    expect(() => new FifoPacer(0)).toThrow(/positive/);
  });
});
