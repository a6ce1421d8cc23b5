import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { nodeStep } from '../../machines/node/node.js';

/**
 * The node step, remembered. `nodeStep` is pure and its states are immutable
 * values that successor worlds share by reference, so the same node state
 * meets the same input again and again in a search: every interleaving of
 * independent actions on other servers replays it. The answer is remembered
 * per node-state object (a WeakMap, so it dies with the states that can ask
 * for it) and per input.
 *
 * Inputs are keyed by what they carry: a peer message by the identity of the
 * message object (envelopes share it; a WeakMap numbers it) and its sender,
 * the small inputs by their fields. `node.start` is not remembered (its
 * durable records are rebuilt on every restart, and restarts are rare).
 * A miss only costs the step; a wrong hit would be unsound, so keys are
 * exact: identity or the input's whole content.
 */
export interface NodeStepMemoStats {
  hits: number;
  misses: number;
}

export const nodeStepMemoStats: NodeStepMemoStats = { hits: 0, misses: 0 };

/** Remembered answers per node state; at most this many inputs per state (a state meets a handful). */
const inputsPerStateMax = 64;

const answers = new WeakMap<NodeState, Map<string, readonly [NodeState, NodeEffect[]]>>();
const messageSerials = new WeakMap<PeerMessage, number>();
let nextMessageSerial = 0;

function inputKey(input: NodeInput): string | null {
  switch (input.type) {
    case 'peer.message': {
      let serial = messageSerials.get(input.message);
      if (serial === undefined) {
        nextMessageSerial += 1;
        serial = nextMessageSerial;
        messageSerials.set(input.message, serial);
      }
      return `m|${input.from}|${serial}`;
    }
    case 'io.done': return `d|${input.ok ? 1 : 0}|${input.completionId}`;
    case 'timer.fired': return `t|${input.timerId}`;
    case 'client.request':
    case 'client.flush':
    case 'admin.move':
      return `j|${JSON.stringify(input)}`;
    case 'node.start':
    case 'admin.createVolume':
      return null;
    default: return null;
  }
}

export function rememberedNodeStep(state: NodeState, input: NodeInput): readonly [NodeState, readonly NodeEffect[]] {
  const key = inputKey(input);
  if (key === null) return nodeStep(state, input);
  let known = answers.get(state);
  const answer = known?.get(key);
  if (answer) {
    nodeStepMemoStats.hits += 1;
    return answer;
  }
  nodeStepMemoStats.misses += 1;
  const computed = nodeStep(state, input);
  if (!known) {
    known = new Map();
    answers.set(state, known);
  }
  if (known.size < inputsPerStateMax) known.set(key, computed);
  return computed;
}
