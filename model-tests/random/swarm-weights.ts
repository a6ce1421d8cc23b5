import fc from 'fast-check';
import type { Action } from '../world/world.js';

/**
 * Swarm testing (Groce et al., ISSTA 2012) for the random walks: each walk
 * draws how often it takes each kind of action, and some kinds not at all.
 * A uniform pick over the enabled actions spends most steps on whatever is
 * most numerous (a client write is one action per server and block, a crash
 * one per server), so the rare combinations that deep bugs need (a failed
 * commit, then a timer overtaking an answer, then a restart) are drawn
 * together in few walks. A walk that leaves out, say, client reads and
 * crashes has room for many more duplicates and failed commits; another
 * fires its timers at every turn. Across walks every combination is
 * sampled.
 *
 * A step's choice number picks first the kind, among the kinds enabled
 * now, in proportion to the kinds' weights, and then the action of that
 * kind; when every enabled kind weighs 0 it picks among all enabled
 * actions as a plain walk does. Lowering a choice towards 0 still shrinks
 * towards the first enabled action, as fast-check expects.
 */
export type ActionKind = Action['type'];
/** `move.abandon` and `disk.fail` may go unweighted (1): walks drawn before they existed keep their seeds' weights. */
export type ActionWeights = Readonly<Record<Exclude<ActionKind, 'move.abandon' | 'disk.fail'>, number>> & { readonly 'move.abandon'?: number; readonly 'disk.fail'?: number };

/** Kinds a walk may leave out entirely (weight 0); without the others a walk could not make progress. */
const optionalKinds: readonly ActionKind[] = [
  'client.write', 'client.read', 'client.flush', 'move.start', 'drop', 'duplicate', 'persist.fail', 'timer', 'crash',
];
const progressKinds: readonly ActionKind[] = ['deliver', 'persist', 'restart'];

/** Weights of one walk: an optional kind 0, 1, 4 or 16; a progress kind 1, 4 or 16. */
export function swarmWeightsArbitrary(): fc.Arbitrary<ActionWeights> {
  const optional = Object.fromEntries(optionalKinds.map((kind) => [kind, fc.constantFrom(0, 1, 4, 16)]));
  const progress = Object.fromEntries(progressKinds.map((kind) => [kind, fc.constantFrom(1, 4, 16)]));
  return fc.record({ ...optional, ...progress } as Record<Exclude<ActionKind, 'move.abandon' | 'disk.fail'>, fc.Arbitrary<number>>);
}

/** The action `choice` picks among `enabled` under `weights` (see the top of the file); null when nothing is enabled. */
export function pickWeighted(enabled: readonly Action[], weights: ActionWeights, choice: number): Action | null {
  if (enabled.length === 0) return null;
  const byKind = new Map<ActionKind, Action[]>();
  for (const action of enabled) {
    const ofKind = byKind.get(action.type);
    if (ofKind) ofKind.push(action);
    else byKind.set(action.type, [action]);
  }
  let totalWeight = 0;
  const weightOf = (kind: ActionKind): number => weights[kind] ?? 1;
  for (const kind of byKind.keys()) totalWeight += weightOf(kind);
  if (totalWeight === 0) return enabled[choice % enabled.length]!;
  let slot = choice % totalWeight;
  for (const [kind, actions] of byKind) {
    if (slot < weightOf(kind)) return actions[Math.floor(choice / totalWeight) % actions.length]!;
    slot -= weightOf(kind);
  }
  throw new Error('unreachable: the slot lies within the total weight');
}
