import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { setup } from 'xstate';
import { effectActions } from '../../machines/effects.js';
import { labelledMemo, startLabelled, stepLabelled, templatesPerMachineMax } from '../../machines/labelled-memo.js';
import type { RequestRoutingInput } from '../../machines/routing/request-routing.machine.js';
import { requestRoutingMachine } from '../../machines/routing/request-routing.machine.js';
import { start, step } from '../../machines/step.js';
import { routingEvents } from '../machines/event-alphabets.js';
import { runSeed } from '../random/run-seed.js';
import { referenceBound } from '../world/world-config.js';
import type { World } from '../world/world.js';
import { applyAction, enabledActions, initialWorld } from '../world/world.js';

/**
 * The node starts and steps a routing machine per request through a memo of
 * machine results (machines/labelled-memo.ts). These differential tests
 * demand that the memo changes nothing: a memoised start equals the real
 * start, and every later memoised step equals the real step from the real
 * snapshot; and whole simulated groups run with the memo on and off reach
 * identical node states, effects and histories.
 */
type Snapshot = { value: unknown; status: string; context: { [key: string]: unknown }; children: unknown; historyValue: unknown; tags: Set<string>; output: unknown; error: unknown };
const comparable = (snapshot: Snapshot) => ({
  value: snapshot.value, status: snapshot.status, context: snapshot.context, children: snapshot.children, historyValue: snapshot.historyValue, tags: [...snapshot.tags], output: snapshot.output, error: snapshot.error,
});

const servers = ['A', 'B', 'C'];
const labels = fc.record({ requestId: fc.string({ minLength: 1, maxLength: 12 }), pageKey: fc.record({ volume: fc.constantFrom('v', 'w'), page: fc.nat(3) }) });
const inputOutsideLabels: fc.Arbitrary<Omit<RequestRoutingInput, 'requestId' | 'pageKey'>> = fc.record({
  self: fc.constantFrom(...servers),
  hopCount: fc.nat(4),
  route: fc.record({ owner: fc.constantFrom(...servers), epoch: fc.nat(3) }),
  localCopy: fc.constantFrom('valid', 'invalid', 'absent'),
  forwardTo: fc.constantFrom(null, ...servers),
  idempotent: fc.boolean(),
  retriesMax: fc.nat(3),
  hopCountMax: fc.integer({ min: 1, max: 4 }),
  forwardTimeoutMs: fc.constantFrom(50, 5_000),
});

describe('memoised starts and steps of the routing machine equal real ones', () => {
  it('over random inputs and random event sequences after them', () => {
    const seed = runSeed();
    console.log(`labelled-memo differential seed=${seed}`);
    labelledMemo.enabled = true;
    const hitsBefore = labelledMemo.hits;
    let stepsCompared = 0;
    let starts = 0;
    let stepHits = 0;
    // A few inputs outside the labels per run, each started with many labels, so most starts are memo hits.
    const requests = fc.array(fc.record({ shape: fc.nat(), labels, choices: fc.array(fc.nat(), { maxLength: 8 }) }), { minLength: 1, maxLength: 12 });
    fc.assert(fc.property(fc.array(inputOutsideLabels, { minLength: 1, maxLength: 3 }), requests, (shapes, started) => started.forEach(({ shape, labels: requestLabels, choices }) => {
      const input: RequestRoutingInput = { ...shapes[shape % shapes.length]!, ...requestLabels };
      starts += 1;
      let [real, realEffects] = start(requestRoutingMachine, input) as unknown as [Snapshot, unknown[]];
      let [memo, memoEffects] = startLabelled(requestRoutingMachine, input, ['requestId', 'pageKey']) as unknown as [Snapshot, unknown[]];
      expect(comparable(memo)).toEqual(comparable(real));
      expect(memoEffects).toEqual(realEffects);
      for (const choice of choices) {
        if (real.status !== 'active') break;
        const events = routingEvents(real as never);
        const event = events[choice % events.length]!;
        [real, realEffects] = step(requestRoutingMachine, real as never, event) as unknown as [Snapshot, unknown[]];
        const hitsBeforeStep = labelledMemo.hits;
        [memo, memoEffects] = stepLabelled(requestRoutingMachine, memo as never, event, ['requestId', 'pageKey']) as unknown as [Snapshot, unknown[]];
        expect(comparable(memo)).toEqual(comparable(real));
        expect(memoEffects).toEqual(realEffects);
        stepHits += labelledMemo.hits - hitsBeforeStep;
        stepsCompared += 1;
      }
    })), { seed, numRuns: 1_000 });
    const hits = labelledMemo.hits - hitsBefore;
    console.log(`memo hits ${hits - stepHits} of ${starts} starts, ${stepHits} of ${stepsCompared} later steps`);
    expect(hits - stepHits).toBeGreaterThan(starts / 4);
    expect(stepHits).toBeGreaterThan(stepsCompared / 10);
  });
});

/** Node states as data: Maps and Sets spelt out, snapshots through their own toJSON (no machine definition). */
function worldText(world: World): string {
  return JSON.stringify(world, (_key, value: unknown) =>
    value instanceof Map ? { map: [...value] } : value instanceof Set ? { set: [...value] } : value);
}

describe('simulated groups run identically with the memo on and off', () => {
  it('over random walks', () => {
    const seed = runSeed();
    console.log(`labelled-memo world differential seed=${seed}`);
    const hitsBefore = labelledMemo.hits;
    let stepsCompared = 0;
    try {
      fc.assert(fc.property(fc.array(fc.nat(), { minLength: 10, maxLength: 80 }), fc.boolean(), (choices, forwardingPointer) => {
        const config = { ...referenceBound, servers: 3, writes: 3, reads: 2, network: 'duplicating' as const, networkFaults: 1, forwardingPointer };
        let withMemo = initialWorld(config);
        let withoutMemo = initialWorld(config);
        for (const choice of choices) {
          const actions = enabledActions(withMemo);
          expect(enabledActions(withoutMemo)).toEqual(actions);
          if (actions.length === 0) break;
          const action = actions[choice % actions.length]!;
          labelledMemo.enabled = true;
          withMemo = applyAction(withMemo, action);
          labelledMemo.enabled = false;
          withoutMemo = applyAction(withoutMemo, action);
          expect(worldText(withMemo)).toBe(worldText(withoutMemo));
          stepsCompared += 1;
        }
      }), { seed, numRuns: 150 });
    } finally {
      labelledMemo.enabled = true;
    }
    const hits = labelledMemo.hits - hitsBefore;
    console.log(`${stepsCompared} world steps compared, memo hits ${hits}`);
    expect(hits).toBeGreaterThan(0);
  });
});

/**
 * A machine that reads its input in the ways the memo's key walk must tell
 * apart: a field that is absent or holds `undefined`, a nested record, an
 * array, and a Map (which the walk cannot spell, so such a start is never
 * memoised). Its one effect is a timer whose id names the request and
 * spells out what it read.
 */
interface ProbeInput { requestId: string; pageKey: { volume: string; page: number }; mode?: string | undefined; nested?: { depth: number }; list?: number[]; table?: Map<string, number> }
const probeMachine = setup({
  types: {} as { context: { requestId: string; pageKey: { volume: string; page: number }; reading: string }; input: ProbeInput; events: { type: 'tick' } },
  actions: { ...effectActions(['timer.set']) },
}).createMachine({
  id: 'probe',
  context: ({ input }) => ({
    requestId: input.requestId, pageKey: input.pageKey,
    reading: JSON.stringify(['mode' in input ? `has ${String(input.mode)}` : 'none', input.nested?.depth ?? -1, input.list ?? [], input.table?.get('x') ?? -1]),
  }),
  entry: { type: 'timer.set', params: ({ context }) => ({ timerId: `${context.requestId}|${context.reading}`, delayMs: 1 }) },
});

describe('the memo key tells apart every input the machine tells apart', () => {
  it('absent and undefined fields, nested records, arrays and Maps', () => {
    labelledMemo.enabled = true;
    const inputs: Array<Omit<ProbeInput, 'requestId' | 'pageKey'>> = [
      {}, { mode: undefined }, { mode: 'a' }, { nested: { depth: 1 } }, { nested: { depth: 2 } }, { list: [1] }, { list: [1, 2] }, { list: [] },
      { table: new Map([['x', 1]]) }, { table: new Map([['x', 2]]) },
    ];
    const hitsBefore = labelledMemo.hits;
    let starts = 0;
    for (let round = 0; round < 3; round += 1) {
      for (const [index, shape] of inputs.entries()) {
        const input = { requestId: `r${round}.${index}`, pageKey: { volume: 'v', page: round }, ...shape } as ProbeInput;
        const [real, realEffects] = start(probeMachine, input) as unknown as [Snapshot, unknown[]];
        const [memo, memoEffects] = startLabelled(probeMachine, input, ['requestId', 'pageKey']) as unknown as [Snapshot, unknown[]];
        expect(comparable(memo)).toEqual(comparable(real));
        expect(memoEffects).toEqual(realEffects);
        starts += 1;
      }
    }
    // Every input but the two with a Map hits from the second round on.
    expect(labelledMemo.hits - hitsBefore).toBe((inputs.length - 2) * 2);
    expect(starts).toBe(inputs.length * 3);
  });

  it('is emptied at its bound, and stays correct past it', () => {
    labelledMemo.enabled = true;
    const shapes = templatesPerMachineMax + 3;
    let missesInSecondCycle = 0;
    for (let index = 0; index < shapes * 2; index += 1) {
      const input: ProbeInput = { requestId: `bound${index}`, pageKey: { volume: 'v', page: 0 }, nested: { depth: index % shapes } };
      const [real, realEffects] = start(probeMachine, input) as unknown as [Snapshot, unknown[]];
      const missesBefore = labelledMemo.misses;
      const [memo, memoEffects] = startLabelled(probeMachine, input, ['requestId', 'pageKey']) as unknown as [Snapshot, unknown[]];
      if (index >= shapes) missesInSecondCycle += labelledMemo.misses - missesBefore;
      expect(comparable(memo)).toEqual(comparable(real));
      expect(memoEffects).toEqual(realEffects);
    }
    // More shapes than the memo holds: it was emptied on the way, so the second cycle misses again.
    expect(missesInSecondCycle).toBeGreaterThan(0);
  });
});
