import { describe, expect, it } from 'vitest';
import { brokenVariants } from '../explorer/broken-variants.js';
import type { ExploreResult } from '../explorer/explore.js';
import { explore } from '../explorer/explore.js';
import { PageMap } from '../../machines/node/page-map.js';
import { canonicalObjects, canonicalObjectStats, sameValue } from './canonical-objects.js';
import { applyAction, enabledActions, initialWorld } from './world.js';
import { referenceBound } from './world-config.js';
import type { WorldConfig } from './world-config.js';

describe('sameValue: equal in every field', () => {
  class Machine { constructor(readonly name: string) {} }
  const machine = new Machine('move');
  it('compares primitives, arrays, plain objects (keys in order), Maps and Sets (in order)', () => {
    expect(sameValue({ a: 1, b: [1, 'x', null] }, { a: 1, b: [1, 'x', null] }, 0)).toBe(true);
    expect(sameValue({ a: 1, b: 2 }, { b: 2, a: 1 }, 0)).toBe(false);
    expect(sameValue({ a: 1 }, { a: 1, b: undefined }, 0)).toBe(false);
    expect(sameValue([1, 2], [1, 2, 3], 0)).toBe(false);
    expect(sameValue(NaN, NaN, 0)).toBe(true);
    expect(sameValue(0, '0', 0)).toBe(false);
    expect(sameValue(new Map([['x', { v: 1 }], ['y', { v: 2 }]]), new Map([['x', { v: 1 }], ['y', { v: 2 }]]), 0)).toBe(true);
    expect(sameValue(new Map([['x', 1], ['y', 2]]), new Map([['y', 2], ['x', 1]]), 0)).toBe(false);
    expect(sameValue(new Map([['x', { v: 1 }]]), new Map([['x', { v: 2 }]]), 0)).toBe(false);
    expect(sameValue(new Set(['a', 'b']), new Set(['a', 'b']), 0)).toBe(true);
    expect(sameValue(new Set(['a', 'b']), new Set(['b', 'a']), 0)).toBe(false);
    expect(sameValue(new Map([['x', 1]]), { x: 1 }, 0)).toBe(false);
  });
  it('compares the per-page maps by their entries, however they were built or cut into chunks', () => {
    const built = PageMap.of([['vol/1', { v: 1 }], ['vol/0', { v: 0 }]]);
    const edited = PageMap.empty<{ v: number }>(4).with('vol/0', { v: 0 }).with('vol/1', { v: 1 }).with('vol/2', { v: 2 }).without('vol/2');
    expect(sameValue(built, edited, 0)).toBe(true);
    expect(sameValue(built, edited.with('vol/1', { v: 9 }), 0)).toBe(false);
    expect(sameValue(built, edited.without('vol/1').with('vol/9', { v: 1 }), 0)).toBe(false);
    expect(sameValue(built, edited.with('vol/2', { v: 2 }), 0)).toBe(false);
    expect(sameValue(built, new Map([...built]), 0)).toBe(false);
  });
  it('compares class instances by identity and functions by name and arity', () => {
    expect(sameValue({ machine }, { machine }, 0)).toBe(true);
    expect(sameValue({ machine }, { machine: new Machine('move') }, 0)).toBe(false);
    const snapshot = () => ({ value: 'idle', matches(state: string) { return state === this.value; } });
    expect(sameValue(snapshot(), snapshot(), 0)).toBe(true);
    expect(sameValue({ f: (a: number) => a }, { f: (a: number, b: number) => a + b }, 0)).toBe(false);
  });
});

/**
 * Swapping a cascade's server and envelopes for equal objects met before must
 * change nothing the explorer reports: the same states, transitions, depth,
 * goals, liveness and violation with the same trace, step by step.
 */
describe('sharing equal server and envelope objects changes no search result', () => {
  const small = (changes: Partial<WorldConfig>): WorldConfig => ({ ...referenceBound, servers: 2, writes: 1, reads: 0, crashes: 1, ...changes });
  // Capped searches compare too: the order of search is the same, so the first 40,000 states are.
  const options = { statesMax: 40_000, depthMax: 500, livenessSamples: 30, livenessEvery: 61, livenessStepsMax: 2_000 };
  const summary = (result: ExploreResult) => ({
    states: result.states, transitions: result.transitions, depth: result.depth, complete: result.complete, goals: result.goals, deadlocks: result.deadlocks,
    livenessChecked: result.livenessChecked, liveness: result.livenessFailure?.map((step) => step.description) ?? null,
    violation: result.violation ? { property: result.violation.property, detail: result.violation.detail, trace: result.violation.trace.map((step) => step.description) } : null,
  });
  const cases: Array<[string, WorldConfig]> = [
    ['a write and a crash, two servers', small({})],
    ['three servers, a write, a read, a crash', small({ servers: 3, reads: 1 })],
    ['power loss, two writes', small({ writes: 2, powerLoss: true })],
    ['duplicating network', small({ crashes: 0, network: 'duplicating', networkFaults: 1 })],
    ...Object.keys(brokenVariants).map((variant): [string, WorldConfig] => [`broken: ${variant}`, small({ reads: 1, crashes: variant === 'restart-one-piece-late' ? 1 : 0, variant })]),
  ];
  it.each(cases)('%s', (_name, config) => {
    const unshared = explore(config, { ...options, shareEqualObjects: false });
    const before = { ...canonicalObjectStats };
    const shared = explore(config, options);
    const swapped = canonicalObjectStats.serversShared - before.serversShared;
    console.log(`${_name}: ${shared.states} states, ${shared.transitions} transitions; ${swapped} servers swapped for an equal one`);
    expect(swapped).toBeGreaterThan(0);
    expect(summary(shared)).toEqual(summary(unshared));
    // The real machines' searches must also be clean (a failed assertion while healing is a liveness failure).
    if (!config.variant) expect([shared.violation, shared.livenessFailure]).toEqual([null, null]);
  });

  it('is on only while the explorer searches', () => {
    expect(canonicalObjects.enabled).toBe(false);
    const before = canonicalObjectStats.servers;
    let world = initialWorld(small({}));
    for (let step = 0; step < 5; step += 1) world = applyAction(world, enabledActions(world)[0]!);
    expect(canonicalObjectStats.servers).toBe(before);
  });
});
