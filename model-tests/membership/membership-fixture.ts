import type { Member, Membership } from '../../machines/membership/membership.js';
import { acknowledged, noLossWatch } from '../../machines/node/loss-watch.js';
import type { WriteHolder } from '../../machines/node/loss-watch.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, nodeStep } from '../../machines/node/node.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';

/** What the pure-node membership tests share: the group they start from, its members, a started node, and a stepper. */
export const threeServers: readonly string[] = ['s1', 's2', 's3'];

export function member(id: string, capacityWeight = 1, draining = false): Member {
  const index = Number(id.slice(1));
  return { id, peer: { host: '127.0.0.1', port: 11_000 + index }, admin: { host: '127.0.0.1', port: 12_000 + index }, capacityWeight, draining };
}

/** A node of `group` started from the initial records of `volumes` and, if given, a stored membership record. */
export function startedNode(self: string, volumes: readonly VolumeDefinition[], membership: Membership | null, group: readonly string[] = threeServers): NodeState {
  return nodeStep(emptyNodeState(defaultNodeConfig(self, [...group]), 1), { type: 'node.start', durable: { ...initialDurableRecords(volumes, self), membership } })[0];
}

/**
 * Steps the node through the inputs. An I/O effect that `completesAtOnce`
 * picks is answered `ok` before the next input, as a store that finishes at
 * once would; every other effect is left for the test to complete.
 */
export function stepThrough(state: NodeState, inputs: readonly NodeInput[], completesAtOnce: (effect: NodeEffect) => boolean = () => false): [NodeState, NodeEffect[]] {
  const all: NodeEffect[] = [];
  let current = state;
  const pending = [...inputs];
  for (let input = pending.shift(); input; input = pending.shift()) {
    const [next, effects] = nodeStep(current, input);
    current = next;
    all.push(...effects);
    for (const effect of effects) {
      if ('completionId' in effect && typeof effect.completionId === 'string' && completesAtOnce(effect)) pending.unshift({ type: 'io.done', completionId: effect.completionId, ok: true });
    }
  }
  return [current, all];
}

/** The node once a FLUSH barrier over every member has completed since it started (`earlierRunsSynced`). */
export function afterFirstBarrier(state: NodeState): NodeState {
  return { ...state, earlierRunsSynced: true };
}

/** The node with writes of `volume` acknowledged and not yet flushed, applied by `holders` (as if its clients had written them). */
export function withUnflushedWrites(state: NodeState, volume: string, holders: readonly WriteHolder[]): NodeState {
  return { ...state, lossWatches: { ...state.lossWatches, [volume]: acknowledged(state.lossWatches[volume] ?? noLossWatch, holders, false) } };
}
