import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { NodeTimers } from './node-timers.js';

/**
 * The runtime's timers against a reference model on a fake clock: every
 * timer fires once, exactly at its last setting's due time, however timers
 * of equal and different delays, settings again and stop interleave.
 */
const seed = Number(process.env['BLOCKSHIFT_SEED'] ?? Date.now() % 2 ** 31);

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

function recorder(): { timers: NodeTimers; fired: string[] } {
  const fired: string[] = [];
  const timers = new NodeTimers((timerId) => fired.push(`${timerId}@${Date.now()}`), () => Date.now());
  return { timers, fired };
}

describe('node timers', () => {
  it('fires timers of one delay in order at their due time, a timer set again only at its later due time, nothing after stop', () => {
    const start = Date.now();
    const { timers, fired } = recorder();
    timers.set('a', 100);
    vi.advanceTimersByTime(10);
    timers.set('b', 100);
    timers.set('c', 30);
    vi.advanceTimersByTime(20);
    timers.set('a', 100);
    vi.advanceTimersByTime(99);
    expect(fired).toEqual([`c@${start + 40}`, `b@${start + 110}`]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual([`c@${start + 40}`, `b@${start + 110}`, `a@${start + 130}`]);
    expect(timers.pendingCount).toBe(0);
    timers.set('d', 5);
    timers.stop();
    vi.advanceTimersByTime(10);
    expect(fired).toHaveLength(3);
  });

  it('matches the reference model for any interleaving of settings and waits', () => {
    console.log(`node timers seed=${seed}`);
    const operation = fc.tuple(fc.nat({ max: 40 }), fc.constantFrom('t0', 't1', 't2', 't3', 't4'), fc.constantFrom(0, 5, 10, 25, 500));
    fc.assert(fc.property(fc.array(operation, { maxLength: 60 }), (operations) => {
      vi.setSystemTime(0);
      const { timers, fired } = recorder();
      const expectedDue = new Map<string, number>();
      const expected: string[] = [];
      let nowMs = 0;
      const advanceModel = (toMs: number) => {
        for (const [timerId, dueMs] of [...expectedDue].sort((a, b) => a[1] - b[1])) {
          if (dueMs > toMs) continue;
          expected.push(`${timerId}@${dueMs}`);
          expectedDue.delete(timerId);
        }
        nowMs = toMs;
      };
      for (const [waitMs, timerId, delayMs] of operations) {
        vi.advanceTimersByTime(waitMs);
        advanceModel(nowMs + waitMs);
        timers.set(timerId, delayMs);
        expectedDue.set(timerId, nowMs + delayMs);
      }
      vi.advanceTimersByTime(1_000);
      advanceModel(nowMs + 1_000);
      expect([...fired].sort()).toEqual([...expected].sort());
      expect(timers.pendingCount).toBe(0);
      timers.stop();
    }), { seed, numRuns: 300 });
  });

  it('prunes dead timers long before they fall due, and still fires every live one at its due time', () => {
    const start = Date.now();
    const fired: string[] = [];
    const dead = new Set<string>();
    const timers = new NodeTimers((timerId) => fired.push(`${timerId}@${Date.now() - start}`), () => Date.now(), { isDead: (timerId) => dead.has(timerId), setsPerPrune: 2 });
    dead.add('a');
    timers.set('a', 100);
    timers.set('b', 100);
    // The second setting pruned the queue: 'a' is gone, long before its due time.
    expect(timers.pendingCount).toBe(1);
    dead.add('c');
    timers.set('c', 50);
    dead.delete('a');
    timers.set('a', 100);
    expect(timers.pendingCount).toBe(2);
    vi.advanceTimersByTime(200);
    // 'c' died and was pruned; 'a', set again after its prune, fires at its new due time.
    expect(fired).toEqual(['b@100', 'a@100']);
    expect(timers.pendingCount).toBe(0);
    timers.stop();
  });

  it('with pruning, fires what the reference model fires, less only timers that were dead', () => {
    const operation = fc.tuple(fc.nat({ max: 40 }), fc.constantFrom('t0', 't1', 't2', 't3', 't4'), fc.constantFrom(0, 5, 10, 25, 500), fc.boolean());
    fc.assert(fc.property(fc.array(operation, { maxLength: 60 }), fc.integer({ min: 1, max: 4 }), (operations, setsPerPrune) => {
      vi.setSystemTime(0);
      const fired: string[] = [];
      // A dead timer stays dead until it is set again, as the runtime's request timers do.
      const dead = new Set<string>();
      const timers = new NodeTimers((timerId) => fired.push(`${timerId}@${Date.now()}`), () => Date.now(), { isDead: (timerId) => dead.has(timerId), setsPerPrune });
      const expectedDue = new Map<string, number>();
      const mustFire: string[] = [];
      const mayFire = new Set<string>();
      let nowMs = 0;
      const advanceModel = (toMs: number) => {
        for (const [timerId, dueMs] of [...expectedDue].sort((a, b) => a[1] - b[1])) {
          if (dueMs > toMs) continue;
          const event = `${timerId}@${dueMs}`;
          if (dead.has(timerId)) mayFire.add(event);
          else mustFire.push(event);
          expectedDue.delete(timerId);
        }
        nowMs = toMs;
      };
      for (const [waitMs, timerId, delayMs, dies] of operations) {
        vi.advanceTimersByTime(waitMs);
        advanceModel(nowMs + waitMs);
        // Either a setting (which makes the timer alive again), or the timer's death.
        if (dies) {
          dead.add(timerId);
          continue;
        }
        dead.delete(timerId);
        timers.set(timerId, delayMs);
        expectedDue.set(timerId, nowMs + delayMs);
      }
      vi.advanceTimersByTime(1_000);
      advanceModel(nowMs + 1_000);
      // Each live setting fires once; anything else fired must be a dead one's. (A dead setting and a live one of the same
      // id can fall due at the same time, so a fired event is matched to a live setting first: filtering out every event
      // a dead setting could also have made dropped the live one's too, as seed 403280226 showed.)
      const missing = [...mustFire];
      const unexpected: string[] = [];
      for (const event of fired) {
        const index = missing.indexOf(event);
        if (index >= 0) missing.splice(index, 1);
        else if (!mayFire.has(event)) unexpected.push(event);
      }
      expect(missing).toEqual([]);
      expect(unexpected).toEqual([]);
      expect(timers.pendingCount).toBe(0);
      timers.stop();
    }), { seed, numRuns: 300 });
  });
});
