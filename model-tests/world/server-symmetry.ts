import { assert } from '../../machines/identifiers.js';
import type { World } from './world.js';
import { serverName } from './world.js';

/**
 * Symmetry over interchangeable servers.
 *
 * Theory of operation. Two worlds that differ only by a renaming of servers
 * behave alike: every future of one is the renamed future of the other, and
 * every property and goal the explorer checks is blind to server names (it
 * counts valid copies, reads owners' data, compares epochs, collects stages
 * and sightings). So the explorer may keep one world per class of renamings:
 * the fingerprint of a world is the least canonical text over the renamings
 * allowed, and a world whose renamed form was seen is not explored again.
 *
 * Which renamings are allowed. Only those that fix every server the fixed
 * configuration tells apart. The world's volume definition (outside the
 * fingerprint, the same in every state) names the servers pages start on,
 * and `initialOwner` reads that list; so those servers stay put. Every other
 * server starts alike (same empty disk, same group list, same budgets) and
 * nothing in a node or in the simulator reads a server's name except to
 * address it: the group is iterated only to send to each member (the
 * network is a multiset on an unordered network; on an ordered one the
 * canonical text keeps the send order, so fewer worlds merge, never wrong
 * ones), and no code compares or sorts server names to pick one. A server
 * that became a move's source or destination is not renamed away from that
 * role: the renaming applies to the whole text, so it carries its role with
 * it, and the minimum over renamings only merges worlds that are exact images.
 *
 * Soundness does not depend on the canonical text being a perfect invariant:
 * if two renamed texts are equal the worlds are images of each other (the
 * text keeps everything that decides behaviour); if a list's order makes
 * images differ in text, they are merely explored twice.
 *
 * Bound: servers ≤ 5 and at least one is fixed, so at most 4! = 24 renamings.
 */
export interface ServerRenaming {
  /** Its place in `serverRenamings(world)`: 0 is the identity. */
  readonly index: number;
  /** `positionOf[i]`: where server i stands in the renamed world. */
  readonly positionOf: readonly number[];
  /** `serverAt[j]`: the server of the original world that stands at j. */
  readonly serverAt: readonly number[];
  /** The renamed name of each server name; absent names are unchanged. */
  readonly names: ReadonlyMap<string, string>;
}

export const renamingsMax = 24;

const renamingsByShape = new Map<string, readonly ServerRenaming[]>();

/** Every renaming that fixes the servers the configuration tells apart, the identity first. */
export function serverRenamings(world: World): readonly ServerRenaming[] {
  const fixed = world.volume.servers;
  const shape = `${world.servers.length}|${fixed.join(',')}`;
  const known = renamingsByShape.get(shape);
  if (known) return known;
  const count = world.servers.length;
  const movable = Array.from({ length: count }, (_, index) => index).filter((index) => !fixed.includes(serverName(index)));
  const renamings: ServerRenaming[] = [];
  for (const order of permutations(movable)) {
    const positionOf = Array.from({ length: count }, (_, index) => index);
    movable.forEach((index, slot) => { positionOf[index] = order[slot] as number; });
    const serverAt = Array<number>(count).fill(-1);
    positionOf.forEach((position, index) => { serverAt[position] = index; });
    const names = new Map<string, string>();
    positionOf.forEach((position, index) => { if (position !== index) names.set(serverName(index), serverName(position)); });
    renamings.push({ index: renamings.length, positionOf, serverAt, names });
  }
  assert(renamings.length <= renamingsMax, `at most ${renamingsMax} server renamings`);
  assert(renamings[0]?.names.size === 0, 'the identity renaming comes first');
  renamingsByShape.set(shape, renamings);
  return renamings;
}

function permutations(items: readonly number[]): number[][] {
  if (items.length <= 1) return [items.slice()];
  const result: number[][] = [];
  items.forEach((item, index) => {
    for (const rest of permutations([...items.slice(0, index), ...items.slice(index + 1)])) result.push([item, ...rest]);
  });
  return result;
}

/**
 * Server names as they appear in canonical text: `s3` alone or inside an id
 * (`io:s3.0.7`, `p:s3:c:w1:0`, `s3|c:w1`). The one other `s<digits>` a node
 * writes is the stage in a move's progress timer (`move:vol/0:a1:s2:p0`,
 * always after the attempt `a<digits>:`), which must not be renamed: a
 * renaming that touched it would merge timers of different stages.
 */
const serverNamePattern = /(?<!:a\d+:)\bs\d+\b/g;

export function renameServers(text: string, renaming: ServerRenaming): string {
  if (renaming.names.size === 0) return text;
  return text.replace(serverNamePattern, (name) => renaming.names.get(name) ?? name);
}
