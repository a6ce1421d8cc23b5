import { pageKeyText } from '../../machines/identifiers.js';
import { isSettled } from '../explorer/explore.js';
import { resolveOwner } from '../explorer/liveness.js';
import { checkState } from '../world/properties.js';
import { enabledActions, volumeName } from '../world/world.js';
import type { Completion, CompletionStep } from './fault-free-completion.js';
import { completeFaultFree } from './fault-free-completion.js';
import type { ClientModel, GroupUnderTest } from './two-server-move.js';
import { failureTrace, foldReplies, moveDestination, moveSource, perform } from './two-server-move.js';

/**
 * The end of a two-server move: faults stop, the group is driven to
 * quiescence by the fair schedule (starting the move there if the command
 * list never did, or again if a crash made the source forget it before it
 * was durable, so every run ends with the page on s2), and then the
 * outcome is checked against the clients' model:
 *
 * (a) s2's copy of the page equals what the clients wrote: each block holds
 *     its last acknowledged write, or a write whose outcome the client never
 *     learnt;
 * (b) after the flip exactly one valid copy exists, on s2, both in the
 *     durable replica records and in each node's live replica state, and s1
 *     has released its data;
 * (c) the routing tables agree: every server's live and durable route names
 *     s2 at one epoch. On a lossy network the push after the flip may be
 *     dropped; the patent repairs such a table lazily, on its next request,
 *     so there (c) asks that every server's routing reaches s2 (FIG. 7).
 *
 * Returns the first broken promise with the described trace, or null.
 */
const completionStepsMax = 2_000;
const key = pageKeyText({ volume: volumeName, page: 0 });

export function settleAndCheck(model: ClientModel, group: GroupUnderTest): string | null {
  const record = (step: CompletionStep) => {
    group.trace.push(step.description);
    group.actions.push(step.action);
  };
  const settle = (): string | null => {
    let completion: Completion;
    try {
      completion = completeFaultFree(group.world, completionStepsMax);
    } catch (error) {
      const failed = (error as Error & { completion?: Completion }).completion;
      for (const step of failed?.steps ?? []) record(step);
      return `simulator assertion: ${(error as Error).message}`;
    }
    for (const step of completion.steps) record(step);
    group.world = completion.world;
    foldReplies(model, group.world);
    if (completion.violation) return `${completion.violation.property}: ${completion.violation.detail}`;
    if (!completion.quiescent) return `the fair completion did not quiesce within ${completionStepsMax} steps`;
    return null;
  };
  const fail = (reason: string) => `${reason}\n${failureTrace(group)}`;

  group.trace.push('--- faults stop; fair fault-free completion ---');
  const healed = settle();
  if (healed) return fail(healed);
  // A move the source had not yet made durable is forgotten by a crash, as an admin request in flight would be:
  // the admin then asks again. A run whose command list never started the move starts it here.
  const destinationOwns = group.world.servers[moveDestination]?.meta.replicas[key]?.status === 'valid';
  if (!destinationOwns) {
    const start = enabledActions(group.world).find((action) => action.type === 'move.start' && action.to === moveDestination);
    if (!start) return fail('the move to s2 could not be (re)started once the group healed');
    group.trace.push(model.moveStarted ? '--- the move was lost in a crash before it was durable: the admin asks again ---' : '--- the command list never started the move: start it now ---');
    model.moveStarted = true;
    try {
      perform(model, group, start);
    } catch (error) {
      // `perform` reports a broken property with the trace already attached.
      return (error as Error).message;
    }
    const moved = settle();
    if (moved) return fail(moved);
  }
  const world = group.world;
  if (!isSettled(world)) return fail('the group is not settled after the fair completion');
  const audit = checkState(world);
  if (audit) return fail(`${audit.property}: ${audit.detail}`);

  const source = world.servers[moveSource];
  const destination = world.servers[moveDestination];
  if (!source || !destination) return fail('the group has two servers');

  // (a) The destination's page image is what the clients wrote.
  const image = destination.data[key];
  if (!image) return fail(`(a) s2 holds no data for ${key} after the move`);
  for (let block = 0; block < model.pieces; block += 1) {
    const value = image[block] ?? 0;
    const acknowledged = model.acknowledged[block] ?? 0;
    const unknown = model.unknown[block] ?? [];
    if (value !== acknowledged && !unknown.includes(value)) {
      return fail(`(a) block ${block} on s2 holds w${value}, but the last acknowledged write is w${acknowledged}` +
        `${unknown.length > 0 ? ` and the writes of unknown outcome are ${unknown.map((write) => `w${write}`).join(', ')}` : ''}; image ${JSON.stringify(image)}`);
    }
  }

  // (b) Exactly one valid copy, on the destination, durably and in memory; the source has let its data go.
  const durableValid = world.servers.filter((server) => server.meta.replicas[key]?.status === 'valid').map((server) => server.id);
  const liveValid = world.servers.filter((server) => server.node.replicas.get(key)?.context.record?.status === 'valid').map((server) => server.id);
  if (durableValid.join() !== destination.id || liveValid.join() !== destination.id) {
    return fail(`(b) valid copies of ${key}: durable [${durableValid.join(', ')}], live [${liveValid.join(', ')}]; expected exactly [${destination.id}]`);
  }
  if (source.data[key] !== undefined) return fail(`(b) s1 still holds data for ${key} after the flip`);

  // (c) The routing tables agree on the new owner.
  const routes = world.servers.flatMap((server) => [
    { where: `${server.id} live`, route: server.node.routes.get(key) },
    { where: `${server.id} durable`, route: server.meta.routes[key] },
  ]);
  const epochs = new Set(routes.map(({ route }) => route?.epoch));
  if (world.config.network === 'lossy') {
    const lost = world.servers.filter((server) => resolveOwner(world, key, server.id) !== destination.id).map((server) => server.id);
    if (lost.length > 0) return fail(`(c) routing on ${lost.join(', ')} does not reach the owner ${destination.id}`);
  } else if (routes.some(({ route }) => route?.owner !== destination.id) || epochs.size !== 1) {
    return fail(`(c) routing tables disagree on ${key}: ${routes.map(({ where, route }) => `${where} ${route ? `${route.owner}@${route.epoch}` : 'none'}`).join(', ')}`);
  }
  return null;
}
