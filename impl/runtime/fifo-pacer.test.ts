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

  it('takes a job at a rate of its own when given one, and a job at rate 0 waits behind the queue but takes no time', () => {
    let nowMs = 0;
    const pacer = new FifoPacer(1000, () => nowMs);
    expect(pacer.reserve(5, 500)).toEqual({ startInMs: 0, endInMs: 10 });
    expect(pacer.reserve(1_000_000, 0)).toEqual({ startInMs: 10, endInMs: 10 });
    expect(pacer.reserve(2)).toEqual({ startInMs: 10, endInMs: 12 });
    nowMs = 50;
    expect(pacer.reserve(7, 0)).toEqual({ startInMs: 0, endInMs: 0 });
  });

  it('refuses a rate that is not positive', () => {
    expect(() => new FifoPacer(0)).toThrow(/positive/);
  });
});
