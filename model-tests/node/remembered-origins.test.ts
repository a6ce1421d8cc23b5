import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RememberedOrigins } from '../../machines/node/remembered-origins.js';
import { isRemembered, noOriginsRemembered, remember, rememberedEntries, rememberedList } from '../../machines/node/remembered-origins.js';
import { runSeed } from '../random/run-seed.js';

/**
 * The owner's memory of forwarded writes it ran used to be an array copied on
 * every write (`[...done, origin].slice(-max)`) and searched with `includes`.
 * This checks the shared-log version against that array, over random
 * histories that, like the simulator, keep stepping old values again: every
 * value ever made must keep answering exactly as its array would.
 */
interface Operation { readonly from: number; readonly origin: string }

function referenceRemember(done: readonly string[], origin: string, max: number): string[] {
  // Adding an origin already remembered changes nothing (the node never does: it refuses such a write first).
  if (done.includes(origin)) return [...done];
  const next = [...done, origin];
  return next.slice(Math.max(0, next.length - max));
}

describe('remembered origins equal a bounded array, old values included', () => {
  it('over random branching histories', () => {
    const seed = runSeed();
    console.log(`remembered-origins seed=${seed}`);
    const alphabet = Array.from({ length: 8 }, (_, index) => `s${index % 3}|r${index}`);
    let valuesChecked = 0;
    let forks = 0;
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.array(fc.record({ from: fc.nat(), origin: fc.constantFrom(...alphabet) }), { maxLength: 60 }),
      (max, operations: Operation[]) => {
        const values: RememberedOrigins<string>[] = [noOriginsRemembered<string>()];
        const references: string[][] = [[]];
        for (const { from, origin } of operations) {
          const index = from % values.length;
          const next = remember(values[index]!, origin, `value of ${origin}`, max);
          if (next.log !== values[index]!.log) forks += 1;
          values.push(next);
          references.push(referenceRemember(references[index]!, origin, max));
          for (const [which, value] of values.entries()) {
            expect(rememberedList(value)).toEqual(references[which]);
            // Each origin keeps the value it was remembered with, through every copy of the log.
            expect(rememberedEntries(value)).toEqual(references[which]!.map((origin) => [origin, `value of ${origin}`]));
            for (const candidate of alphabet) expect(isRemembered(value, candidate)).toBe(references[which]!.includes(candidate));
            valuesChecked += 1;
          }
        }
      },
    ), { seed, numRuns: 300 });
    console.log(`checked ${valuesChecked} values, ${forks} log copies`);
    expect(forks).toBeGreaterThan(0);
  });

  it('keeps the shared log bounded on a long straight line', () => {
    let value = noOriginsRemembered<number>();
    for (let index = 0; index < 10_000; index += 1) value = remember(value, `s1|r${index}`, index, 100);
    expect(rememberedList(value)).toEqual(Array.from({ length: 100 }, (_, index) => `s1|r${9_900 + index}`));
    expect(value.log.origins.length).toBeLessThanOrEqual(2 * 100 + 1);
    expect(value.log.values.length).toBe(value.log.origins.length);
  });
});
