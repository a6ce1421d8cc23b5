import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { nodeStepMany } from '../../machines/node/node.js';
import type { RememberedOrigins } from '../../machines/node/remembered-origins.js';
import { rememberedEntries } from '../../machines/node/remembered-origins.js';
import { runSeed } from '../random/run-seed.js';
import { referenceBound } from '../world/world-config.js';
import { applyAction, enabledActions, initialWorld, nodeStepObserver } from '../world/world.js';

/**
 * `nodeStepMany(state, inputs)` must be `nodeStep` folded over the inputs:
 * the same state and the same effects in the same order. The TCP runtime
 * steps whatever inputs it has queued together, so any difference would be a
 * decision the explorer never checked. This differential test records the
 * node steps of random simulated runs (moves, crashes, duplicated messages,
 * forwarding pointers), chains each server's consecutive steps, cuts every
 * chain into batches at random points, and demands that each batch stepped
 * at once ends in the state the single steps ended in, with their effects
 * concatenated.
 */

/**
 * Node states and effects as data: Maps spelt out, snapshots through their own
 * toJSON, the node's config without its machine definitions, and remembered
 * origins as the list they hold (their log is shared and grows past a value's
 * window, so it is not part of the value).
 */
function text(value: unknown): string {
  return JSON.stringify(value, (key, item: unknown) => {
    if (key === 'machines') return undefined;
    if (item instanceof Map) return { map: [...item] };
    if (item instanceof Set) return { set: [...item] };
    if (key === 'forwardedWritesDone' || key === 'forwardedTriesEnded') return rememberedEntries(item as RememberedOrigins<unknown>);
    return item;
  });
}

interface Chain {
  readonly start: NodeState;
  readonly inputs: NodeInput[];
  /** The state after each input, as the single step returned it. */
  readonly states: NodeState[];
  readonly effects: NodeEffect[][];
}

describe('nodeStepMany equals nodeStep applied to each input in turn', () => {
  it('over the node steps of random simulated runs, cut into random batches', () => {
    const seed = runSeed();
    console.log(`node-step-many differential seed=${seed}`);
    let batchesCompared = 0;
    let inputsInBatches = 0;
    const inputKinds = new Set<string>();
    try {
      fc.assert(fc.property(fc.array(fc.nat(), { minLength: 10, maxLength: 80 }), fc.boolean(), fc.array(fc.nat(4), { minLength: 1, maxLength: 32 }), (choices, forwardingPointer, cuts) => {
        // Every step of a run, chained by state: a step that starts from the state another ended with extends its chain.
        const chains: Chain[] = [];
        const chainEndingIn = new Map<NodeState, Chain>();
        nodeStepObserver.current = (before, input, after, effects) => {
          let chain = chainEndingIn.get(before);
          if (chain === undefined) {
            chain = { start: before, inputs: [], states: [], effects: [] };
            chains.push(chain);
          }
          chainEndingIn.delete(before);
          chain.inputs.push(input);
          chain.states.push(after);
          chain.effects.push([...effects]);
          chainEndingIn.set(after, chain);
        };
        const config = { ...referenceBound, servers: 3, writes: 3, reads: 2, network: 'duplicating' as const, networkFaults: 1, moveKinds: ['piecewise', 'unit'] as const, forwardingPointer };
        let world = initialWorld(config);
        for (const choice of choices) {
          const actions = enabledActions(world);
          if (actions.length === 0) break;
          world = applyAction(world, actions[choice % actions.length]!);
        }
        nodeStepObserver.current = null;
        let cutIndex = 0;
        for (const chain of chains) {
          // Batches of 1 to 5 inputs, as the cut list says, then the whole chain at once.
          let state = chain.start;
          for (let first = 0; first < chain.inputs.length;) {
            const size = Math.min(1 + cuts[cutIndex++ % cuts.length]!, chain.inputs.length - first);
            const [batchState, batchEffects] = nodeStepMany(state, chain.inputs.slice(first, first + size));
            expect(text(batchState)).toBe(text(chain.states[first + size - 1]));
            expect(text(batchEffects)).toBe(text(chain.effects.slice(first, first + size).flat()));
            if (size > 1) {
              batchesCompared += 1;
              inputsInBatches += size;
              for (const input of chain.inputs.slice(first, first + size)) inputKinds.add(input.type === 'peer.message' ? `peer.message ${input.message.type}` : input.type);
            }
            state = batchState;
            first += size;
          }
          const [wholeState, wholeEffects] = nodeStepMany(chain.start, chain.inputs);
          expect(text(wholeState)).toBe(text(chain.states.at(-1)));
          expect(text(wholeEffects)).toBe(text(chain.effects.flat()));
        }
      }), { seed, numRuns: 300 });
    } finally {
      nodeStepObserver.current = null;
    }
    console.log(`${batchesCompared} batches of several inputs compared (${inputsInBatches} inputs); kinds: ${[...inputKinds].sort().join(', ')}`);
    // Not vacuous: many real batches, covering requests, completions, timers, moves and the peer messages of a move.
    expect(batchesCompared).toBeGreaterThan(1_000);
    for (const kind of ['client.request', 'io.done', 'timer.fired', 'admin.move', 'node.start', 'peer.message request.forward', 'peer.message piece.copy', 'peer.message block.write']) {
      expect(inputKinds).toContain(kind);
    }
  });
});
