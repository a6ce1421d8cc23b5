import { describe, expect, it } from 'vitest';
import { CopyPacer } from './copy-pacer.js';

/** A pacer on a clock the test moves; rates in bytes per second, so 1000 B/s is one byte per millisecond. */
function pacerAt(maxBytesPerSecond: number, underLoadBytesPerSecond: number): { pacer: CopyPacer; clock: { nowMs: number } } {
  const clock = { nowMs: 1_000 };
  const pacer = new CopyPacer({ maxBytesPerSecond, underLoadBytesPerSecond, clientQuietMs: 100 }, () => clock.nowMs);
  return { pacer, clock };
}

describe('copy pacer (md-style: fast while clients are quiet, slower while they are active)', () => {
  it('sends at once with no client about and no maximum rate, however much is queued', () => {
    const { pacer } = pacerAt(0, 1_000);
    expect([pacer.reserve(500), pacer.reserve(500), pacer.reserve(500)]).toEqual([0, 0, 0]);
  });

  it('paces at the rate under load while a client request is recent, and stops pacing once clients have been quiet for clientQuietMs', () => {
    const { pacer, clock } = pacerAt(0, 1_000);
    pacer.clientRequestArrived(clock.nowMs);
    expect(pacer.reserve(50)).toBe(0); // first piece goes at once: an idle pacer banks nothing
    expect(pacer.reserve(50)).toBe(50); // the next waits out the first's share at 1 byte/ms
    expect(pacer.reserve(10)).toBe(100);
    clock.nowMs += 99; // still within 100 ms of the request
    expect(pacer.reserve(10)).toBe(11);
    clock.nowMs += 1; // exactly 100 ms after it: quiet; FIFO still puts this piece behind the queued ones
    expect(pacer.reserve(1_000_000)).toBe(20);
    clock.nowMs += 20;
    expect(pacer.reserve(1_000_000)).toBe(0);
  });

  it('takes the lower of the two rates under load and the maximum when quiet', () => {
    const { pacer, clock } = pacerAt(2_000, 1_000);
    expect(pacer.reserve(100)).toBe(0);
    expect(pacer.reserve(100)).toBe(50); // quiet: 2 bytes/ms
    clock.nowMs += 100; // the queue has drained
    pacer.clientRequestArrived(clock.nowMs);
    expect(pacer.reserve(100)).toBe(0);
    expect(pacer.reserve(100)).toBe(100); // under load: 1 byte/ms
    const { pacer: capped } = pacerAt(500, 1_000);
    capped.clientRequestArrived(1_000);
    capped.reserve(100);
    expect(capped.reserve(100)).toBe(200); // a maximum below the rate under load still binds
  });

  it('says whether it paces at all (neither rate set: the runtime skips it)', () => {
    expect(pacerAt(0, 0).pacer.paces).toBe(false);
    expect(pacerAt(0, 1).pacer.paces).toBe(true);
    expect(pacerAt(1, 0).pacer.paces).toBe(true);
  });

  it('refuses a rate that is negative or not finite', () => {
    expect(() => pacerAt(-1, 0)).toThrow(/copy rate/);
    expect(() => pacerAt(0, Number.POSITIVE_INFINITY)).toThrow(/copy rate/);
  });
});
