import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { keyHash, PageMap, pageMapChunkEntriesMax } from '../../machines/node/page-map.js';
import { runSeed } from '../random/run-seed.js';

/**
 * The node's per-page records are persistent maps (machines/node/page-map.ts).
 * The unit tests pin the edge cases and the sharing an edit promises; the
 * property test runs random branching histories, as the simulator does, and
 * checks every version ever made against a reference `Map` built the same
 * way, including versions long since edited into others.
 */
function byKey<V>(entries: Iterable<readonly [string, V]>): (readonly [string, V])[] {
  return [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The map holds exactly the reference's entries; `keys()` and `values()` follow the entries' order. */
function expectEqualTo<V>(map: PageMap<V>, reference: ReadonlyMap<string, V>, keys: readonly string[]): void {
  map.assertWellFormed();
  const entries = [...map];
  // One comparison per map: vitest's expect costs more than the map under test.
  expect({
    size: map.size, entries: byKey(entries), keys: [...map.keys()], values: [...map.values()],
    found: keys.map((key) => map.get(key)), held: keys.map((key) => map.has(key)),
  }).toEqual({
    size: reference.size, entries: byKey(reference), keys: entries.map(([key]) => key), values: entries.map(([, value]) => value),
    found: keys.map((key) => reference.get(key)), held: keys.map((key) => reference.has(key)),
  });
}

const pageTexts = (count: number) => Array.from({ length: count }, (_, page) => `vol/${page}`);
/** Pairs of keys with one hash each (found by search), so that ties between hashes are broken by key. */
const collidingPairs = [['c/988', 'c/39955'], ['c/49692', 'c/53555'], ['c/16289', 'c/72233']] as const;

describe('page map', () => {
  it('answers for an empty map and returns itself when an edit changes nothing', () => {
    const empty = PageMap.empty<number>();
    expect(empty.size).toBe(0);
    expect(empty.get('vol/0')).toBeUndefined();
    expect(empty.has('vol/0')).toBe(false);
    expect([...empty]).toEqual([]);
    expect(empty.without('vol/0')).toBe(empty);
    const one = empty.with('vol/0', 7);
    expect(one.get('vol/0')).toBe(7);
    expect(empty.size, 'the empty map is unchanged').toBe(0);
    expect(one.with('vol/0', 7), 'the same value again').toBe(one);
    expect(one.without('vol/1'), 'a key it does not hold').toBe(one);
    expect(one.without('vol/0').size).toBe(0);
    const two = one.with('a/1', 1);
    expect(JSON.stringify(two), 'JSON shows the entries').toBe(JSON.stringify([...two]));
    expect(byKey(two)).toEqual([['a/1', 1], ['vol/0', 7]]);
  });

  it('iterates in an order fixed by its entries, whatever order they came in', () => {
    const forward = pageTexts(40).reduce((map, key, index) => map.with(key, index), PageMap.empty<number>(4));
    const backward = [...pageTexts(40)].reverse().reduce((map, key, index) => map.with(key, 39 - index), PageMap.empty<number>(4));
    expect([...forward]).toEqual([...backward]);
    expect([...PageMap.of([...forward].reverse())]).toEqual([...forward]);
    expect([...forward.keys()], 'the order is the hashes\', not the keys\'').not.toEqual([...forward.keys()].sort());
    expect([...forward.keys()].sort()).toEqual([...pageTexts(40)].sort());
  });

  it('finds every key when the hashes crowd into one end, so that the interpolated first guess is far off', () => {
    // Keys whose hashes all fall in the lowest or the highest 1/256 of the range (found by search).
    const crowded = (low: boolean) => {
      const keys: string[] = [];
      for (let index = 0; keys.length < 1_500; index += 1) {
        const hash = keyHash(`k/${index}`);
        if (low ? hash < 2 ** 22 : hash >= 2 ** 30 - 2 ** 22) keys.push(`k/${index}`);
      }
      return keys;
    };
    for (const keys of [crowded(true), crowded(false)]) {
      // Chunks of at most 4 entries (hundreds of chunk heads) and of 512 (a few long chunks).
      for (const chunkEntriesMax of [4, 512]) {
        const map = keys.reduce((built, key, index) => built.with(key, index), PageMap.empty<number>(chunkEntriesMax));
        map.assertWellFormed();
        const missed = keys.filter((key, index) => map.get(key) !== index || !map.has(key));
        expect(missed, `keys not found with chunks of at most ${chunkEntriesMax}`).toEqual([]);
        expect(map.get('k/absent')).toBeUndefined();
      }
    }
  });

  it('keeps the last of equal keys when built from many entries', () => {
    const entries: [string, number][] = pageTexts(100).map((key, index) => [key, index]);
    const map = PageMap.of([...entries, ['vol/5', -1], ['vol/5', -2]], 8);
    map.assertWellFormed();
    expect(map.size).toBe(100);
    expect(map.get('vol/5')).toBe(-2);
    const added = map.withEntries(pageTexts(200).map((key) => [key, 0]));
    added.assertWellFormed();
    expect(added.size).toBe(200);
    expect(map.get('vol/7'), 'the old map is unchanged').toBe(7);
  });

  it(`shares all but one or two chunks with the map an edit came from (65,536 pages, chunks of at most ${pageMapChunkEntriesMax})`, () => {
    const big = PageMap.of<{ owner: string; epoch: number }>(pageTexts(65_536).map((key) => [key, { owner: 's1', epoch: 1 }]));
    big.assertWellFormed();
    const { chunks } = PageMap.sharing(big, big);
    expect(chunks, 'chunks are half full after a bulk build').toBe(65_536 / (pageMapChunkEntriesMax / 2));
    // Insert as many pages again, one by one, so that chunks fill up and split; every insertion replaces one chunk
    // (two when it splits one). Every 64th is checked, as the check costs more than the insertion.
    let grown = big;
    for (let extra = 0; extra < 65_536; extra += 1) {
      const before = grown;
      grown = grown.with(`more/${extra}`, { owner: 's2', epoch: 2 });
      if (extra % 64 !== 0) continue;
      const sharing = PageMap.sharing(before, grown);
      expect(sharing.chunks - sharing.shared, 'an insertion replaces one chunk, or two when it splits one').toBeLessThanOrEqual(2);
      expect(sharing.entriesNotShared).toBeLessThanOrEqual(pageMapChunkEntriesMax + 1);
    }
    grown.assertWellFormed();
    expect(grown.size).toBe(2 * 65_536);
    expect(PageMap.sharing(big, grown).chunks, 'chunks split').toBeGreaterThan(chunks);
    expect(grown.get('more/4242')).toEqual({ owner: 's2', epoch: 2 });
    expect(big.has('more/4242'), 'the map it grew from is unchanged').toBe(false);
    for (const key of pageTexts(65_536)) if (grown.get(key)?.epoch !== 1) expect.unreachable(`${key} is found`);
    const updated = big.with('vol/4242', { owner: 's3', epoch: 2 });
    expect(PageMap.sharing(big, updated)).toEqual({ chunks, shared: chunks - 1, entriesNotShared: pageMapChunkEntriesMax / 2 });
    const removed = big.without('vol/4242');
    expect(PageMap.sharing(big, removed).shared).toBe(chunks - 1);
    expect(big.get('vol/4242'), 'the old map is unchanged').toEqual({ owner: 's1', epoch: 1 });
    expect(big.size).toBe(65_536);
  });

  it('equals a reference Map over random branching histories, old versions included', () => {
    const seed = runSeed();
    console.log(`page-map seed=${seed}`);
    for (const [a, b] of collidingPairs) expect(keyHash(a), `${a} and ${b} collide`).toBe(keyHash(b));
    const keys = [...pageTexts(30), 'a/0', 'vol/', 'zz/9', 'vol/1x', ...collidingPairs.flat()];
    /** `from`: how many versions back from the newest the edit starts. */
    type Operation =
      | { readonly kind: 'with'; readonly from: number; readonly key: string; readonly value: number }
      | { readonly kind: 'without'; readonly from: number; readonly key: string }
      | { readonly kind: 'withEntries'; readonly from: number; readonly entries: readonly [string, number][] };
    const key = fc.constantFrom(...keys);
    // How many versions back an edit starts from: mostly the newest, so maps grow large enough to split and merge
    // chunks, and now and then an older one, so histories branch.
    const from = fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat() });
    const operation: fc.Arbitrary<Operation> = fc.oneof(
      { weight: 5, arbitrary: fc.record({ kind: fc.constant('with' as const), from, key, value: fc.integer({ min: 0, max: 3 }) }) },
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('without' as const), from, key }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('withEntries' as const), from, entries: fc.array(fc.tuple(key, fc.integer({ min: 0, max: 3 })), { maxLength: 40, size: 'max' }) }) },
    );
    let splits = 0;
    let merges = 0;
    fc.assert(fc.property(fc.constantFrom(4, 8, 512), fc.array(operation, { maxLength: 150, size: 'max' }), (chunkEntriesMax, operations) => {
      const versions = [PageMap.empty<number>(chunkEntriesMax)];
      const references = [new Map<string, number>()];
      for (const step of operations) {
        const index = versions.length - 1 - (step.from % versions.length);
        const map = versions[index]!;
        const reference = new Map(references[index]!);
        let next: PageMap<number>;
        if (step.kind === 'with') {
          next = map.with(step.key, step.value);
          reference.set(step.key, step.value);
        } else if (step.kind === 'without') {
          next = map.without(step.key);
          reference.delete(step.key);
        } else {
          next = map.withEntries(step.entries);
          for (const [entryKey, value] of step.entries) reference.set(entryKey, value);
        }
        const { chunks: chunksBefore } = PageMap.sharing(map, map);
        const { chunks: chunksAfter } = PageMap.sharing(map, next);
        if (chunksAfter > chunksBefore) splits += 1;
        if (chunksAfter < chunksBefore && next.size > 0) merges += 1;
        expectEqualTo(next, reference, keys);
        versions.push(next);
        references.push(reference);
      }
      // Persistence: no edit changed a version it started from.
      versions.forEach((version, index) => expectEqualTo(version, references[index]!, keys));
      // Iteration is a function of the contents: the same entries given in any order iterate alike.
      const last = references[references.length - 1]!;
      expect([...PageMap.of([...last].reverse(), chunkEntriesMax)]).toEqual([...versions[versions.length - 1]!]);
    }), { seed, numRuns: 300 });
    console.log(`page-map: ${splits} edits split chunks, ${merges} merged them`);
    expect(splits, 'chunks split').toBeGreaterThan(0);
    expect(merges, 'chunks merged').toBeGreaterThan(0);
  });
});
