import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AnyStateMachine } from 'xstate';
import type { MoveInput } from '../../machines/migration/checkpoint.js';
import { piecewiseMoveMachine } from '../../machines/migration/piecewise-move.machine.js';
import { unitMoveMachine } from '../../machines/migration/unit-move.machine.js';
import { replicaMachine } from '../../machines/replica/replica.machine.js';
import { requestRoutingMachine } from '../../machines/routing/request-routing.machine.js';
import { start, startViaPublicTransition, step, stepViaPublicTransition } from '../../machines/step.js';
import { moveEvents, replicaEvents, routingEvents } from './event-alphabets.js';

/**
 * The explorer's hot loop uses `step`, which reuses one inert actor scope per
 * machine instead of XState's `transition()` building one per call. This
 * differential test drives random event sequences through both and demands
 * identical snapshots (value, status, context) and identical effects.
 */
type Snapshot = { value: unknown; status: string; context: { [key: string]: unknown } };
type Alphabet = (snapshot: never) => unknown[];

const moveInput = (kind: 'unit' | 'piecewise'): MoveInput => ({
  pageKey: { volume: 'v', page: 0 }, kind, source: 'A', destination: 'B', pieceCount: 3, epoch: 1, forwardingPointer: false, progressTimeoutMs: 100,
});
const cases: Array<[string, AnyStateMachine, unknown, Alphabet]> = [
  ['unit move', unitMoveMachine, moveInput('unit'), moveEvents as Alphabet],
  ['piecewise move', piecewiseMoveMachine, moveInput('piecewise'), moveEvents as Alphabet],
  ['replica', replicaMachine, { pageKey: { volume: 'v', page: 0 }, record: null }, replicaEvents as Alphabet],
  ['request routing', requestRoutingMachine, {
    requestId: 'r1', pageKey: { volume: 'v', page: 0 }, self: 'C', hopCount: 0, route: { owner: 'A', epoch: 1 },
    localCopy: 'absent', forwardTo: null, idempotent: false, retriesMax: 3, hopCountMax: 3, forwardTimeoutMs: 50,
  }, routingEvents as Alphabet],
];

const comparable = (snapshot: Snapshot) => ({ value: snapshot.value, status: snapshot.status, context: snapshot.context });

describe('the fast step equals XState\'s public transition()', () => {
  it.each(cases)('%s', (_name, machine, input, alphabet) => {
    const seed = Number(process.env['BLOCKSHIFT_SEED'] ?? Date.now() % 2 ** 31);
    console.log(`fast-step differential (${_name}) seed=${seed}`);
    let stepsCompared = 0;
    fc.assert(fc.property(fc.array(fc.nat(), { maxLength: 40 }), (choices) => {
      let [fast, fastEffects] = start(machine, input as never) as [Snapshot, unknown[]];
      let [slow, slowEffects] = startViaPublicTransition(machine, input as never) as [Snapshot, unknown[]];
      expect(comparable(fast)).toEqual(comparable(slow));
      expect(fastEffects).toEqual(slowEffects);
      for (const choice of choices) {
        if (fast.status !== 'active') break;
        const events = alphabet(fast as never);
        const event = events[choice % events.length];
        [fast, fastEffects] = step(machine, fast as never, event as never) as [Snapshot, unknown[]];
        [slow, slowEffects] = stepViaPublicTransition(machine, slow as never, event as never) as [Snapshot, unknown[]];
        expect(comparable(fast)).toEqual(comparable(slow));
        expect(fastEffects).toEqual(slowEffects);
        stepsCompared += 1;
      }
    }), { seed, numRuns: 300 });
    console.log(`${_name}: ${stepsCompared} steps compared`);
    expect(stepsCompared, "random walks reach past the first few events").toBeGreaterThan(500);
  });
});
