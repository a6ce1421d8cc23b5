/**
 * The administrator's side of adding and draining servers, shared by the
 * `blockshift server add|drain` commands and the cluster tests.
 *
 * Adding: the new server gets the next free ports and a data directory next
 * to the others', the group's configuration file is rewritten to name it (so
 * its process, `status` and `stop` find it), its process is started, and a
 * running member is asked to add it to the membership record; every member
 * then connects to it and sends it the volume definitions and the routes it
 * knows. Pages move to it by `blockshift move`, by a drain, or by the
 * balancer. A page may move to any member, not only to the servers its
 * volume was created over: a volume's server list only fixes where its pages
 * start (routing follows the routes, never that list).
 *
 * Forgetting: a member that is down for good and holds nothing is removed by
 * another member, once every other member confirms that nothing it knows
 * names it (`forgetServer`); the configuration file then drops it.
 *
 * Draining: the server is asked to mark itself draining; its own drain
 * driver (impl/runtime/drain-driver.ts) moves its pages away a few at a time
 * and, once it holds nothing, removes itself from the record. This side
 * reports progress until then, stops the process and drops it from the
 * configuration file. NBD clients connected to the drained server itself
 * are disconnected when it stops; clients of the other servers never notice.
 */
import { closeSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ServerStatus } from '../runtime/status-report.js';
import { refusalOf } from './admin-client.js';
import type { GroupConfig, ServerConfig } from './group-config.js';
import { readGroupConfig } from './group-config.js';

export function writeGroupConfig(path: string, config: GroupConfig): void {
  const temporary = `${path}.tmp.${process.pid}`;
  writeFileSync(temporary, `${JSON.stringify(config, null, 2)}\n`);
  renameSync(temporary, path);
}

/** How long a command waits for another's change of the group's configuration file. */
const configLockWaitMs = 30_000;

/**
 * Changes the group's configuration file under a lock, re-reading it first:
 * two commands that each read it, changed their own copy and wrote it back
 * lost one change (a review ran two drains at once, and a drained server came
 * back into the file; an add during a drain vanished from it, and the next
 * add was given its ports). The lock is a file made with O_EXCL holding the
 * holder's pid; one whose process is gone is taken over.
 */
export async function changeGroupConfig(path: string, change: (config: GroupConfig) => GroupConfig): Promise<GroupConfig> {
  const lockPath = `${path}.lock`;
  const deadline = Date.now() + configLockWaitMs;
  for (;;) {
    try {
      const descriptor = openSync(lockPath, 'wx');
      writeFileSync(descriptor, `${process.pid}\n`);
      closeSync(descriptor);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(readFileSync(lockPath, 'utf8').trim());
      if (!isAlive(holder)) {
        rmSync(lockPath, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`${path} is being changed by process ${holder} (lock ${lockPath}); try again`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  try {
    const changed = change(readGroupConfig(path));
    writeGroupConfig(path, changed);
    return changed;
  } finally {
    rmSync(lockPath, { force: true });
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A new server's configuration: the next ports after every port in use (nbd, peer, admin each one past the largest), data next to the first server's. */
export function nextServerConfig(group: GroupConfig, id: string, capacityWeight: number): ServerConfig {
  const first = group.servers[0];
  if (!first) throw new Error('the group has no server');
  if (group.servers.some((server) => server.id === id)) throw new Error(`${id} is already in the group configuration`);
  const next = (name: 'nbd' | 'peer' | 'admin') => ({ host: first[name].host, port: Math.max(...group.servers.map((server) => server[name].port)) + 1 });
  return { id, nbd: next('nbd'), peer: next('peer'), admin: next('admin'), dataDirectory: join(dirname(first.dataDirectory), id), capacityWeight };
}

export type AdminCall = <T>(server: ServerConfig, path: string, body?: unknown) => Promise<T>;

/** Asks the first reachable member to add `server`, then waits until the new server follows a record that names it and knows the volumes. */
export async function joinServer(group: GroupConfig, server: ServerConfig, admin: AdminCall, report: (line: string) => void, timeoutMs = 30_000): Promise<void> {
  const others = group.servers.filter((candidate) => candidate.id !== server.id);
  let added: { message: string } | null = null;
  let lastError = '';
  for (const other of others) {
    try {
      added = await admin<{ message: string }>(other, '/members', { id: server.id, peer: server.peer, admin: server.admin, capacityWeight: server.capacityWeight });
      report(`${other.id}: ${added.message}`);
      break;
    } catch (error) {
      lastError = (error as Error).message;
    }
  }
  if (!added) throw new Error(`no member added ${server.id}: ${lastError}`);
  const reference = await admin<ServerStatus>(others[0]!, '/status').catch(() => null);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await admin<ServerStatus>(server, '/status').catch(() => null);
    if (status && status.membership.members.some((member) => member.id === server.id) && status.volumes.length >= (reference?.volumes.length ?? 0)) {
      report(`${server.id} joined: membership epoch ${status.membership.epoch}, ${status.volumes.length} volumes known`);
      return;
    }
    if (Date.now() > deadline) throw new Error(`${server.id} did not learn its membership within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Marks `server` draining and follows it until it has left the membership
 * record and every remaining member follows a record without it (it stops
 * nothing: the caller does, and must keep the server up until this returns).
 * The server's own record dropping it is not enough: the update to the others
 * may be queued or lost, or reach a member only with a record that lacks the
 * leave (its drain driver then leaves again), so
 * stopping it early could leave a draining member for ever, which every FLUSH
 * waits for. A server already draining (a drain asked before, perhaps by a
 * command that died) is simply followed.
 */
export async function drainServer(server: ServerConfig, admin: AdminCall, report: (line: string) => void, timeoutMs = 600_000, othersTimeoutMs = 30_000): Promise<void> {
  try {
    const result = await admin<{ message: string }>(server, '/members/drain', { id: server.id });
    report(result.message);
  } catch (error) {
    // Not a member any more: a drain asked before has finished (its command died before it could stop the server
    // and drop it from the file; a review found the drain then could never be finished). Followed like any.
    const reason = refusalOf(error)?.reason;
    if (reason !== 'alreadyDraining' && reason !== 'notAMember') throw error;
    report(reason === 'alreadyDraining' ? `${server.id} is already draining; following it` : `${server.id} has already left; confirming that every member follows`);
  }
  const deadline = Date.now() + timeoutMs;
  let leftAt: number | null = null;
  let last = '';
  for (;;) {
    // A server restarted during its drain (kill -9, a power cut) is waited for, not given up on at its first refusal.
    const status = await admin<ServerStatus>(server, '/status').catch((error: unknown) => {
      if (Date.now() > deadline) throw error;
      return null;
    });
    if (status === null) {
      report(`  ${server.id} does not answer; waiting for it`);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      continue;
    }
    let line: string;
    if (!status.membership.members.some((member) => member.id === server.id)) {
      leftAt ??= Date.now();
      const lagging = await membersStillListing(server, status.membership.members, admin);
      if (lagging.length === 0) {
        report(`${server.id} holds nothing and left the group (membership epoch ${status.membership.epoch}); every remaining member follows a record without it`);
        return;
      }
      line = `  ${server.id} left at membership epoch ${status.membership.epoch}; waiting for ${lagging.join(', ')} to follow it`;
      if (Date.now() - leftAt > othersTimeoutMs) {
        throw new Error(`${server.id} left at membership epoch ${status.membership.epoch}, but after ${othersTimeoutMs} ms ${lagging.join(', ')} still list it; ${server.id} is kept running (stopping it now would leave a draining member that every FLUSH waits for): check those servers and run the drain again`);
      }
    } else {
      leftAt = null; // A concurrent change brought it back as a draining member: its drain driver leaves again.
      line = status.drain
        ? `  ${server.id}: ${status.drain.pagesHeld} pages held, ${status.drain.movesRunning} moves running${status.moves.map((move) => `; ${move.page}→${move.destination} stage ${move.stageInProgress}`).join('')}` +
          (status.drain.leaveWaitingFor?.length ? `; leave waits for ${status.drain.leaveWaitingFor.join(', ')} to confirm no move toward it runs (a member that is down blocks it)` : '')
        : `  ${server.id}: waiting for the draining mark`;
    }
    if (line !== last) report(line);
    last = line;
    if (Date.now() > deadline) throw new Error(`${server.id} did not drain within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * Forgets `servers`, members down for good that hold nothing
 * (machines/node/member-forget.ts), through `via`, a running member. The
 * forget is asked first: a server that still owns a page is refused before
 * anything changes (a drain cannot be taken back). Then the servers not
 * draining yet are marked draining, and the forget is asked again while `via`
 * waits for every other member to confirm that nothing they know names them
 * (a refusal naming pages is asked again for a few seconds, while stale
 * routes are repaired). Once `via` says ok, the records are checked: one that
 * still lists the servers (a record persisted before 27 Nov, which merges
 * without departed entries) has the forget asked again; the
 * other members that answer must follow a record without them. With
 * `declareLost`, pages whose only copy was on one of them are declared lost
 * and served empty by `via` (machines/node/lost-pages.ts), and the forget is
 * asked again until they are; a claim another member made first is finished
 * through that member.
 */
export async function forgetServer(servers: readonly ServerConfig[], firstVia: ServerConfig, others: readonly ServerConfig[], admin: AdminCall, report: (line: string) => void, timeoutMs = 30_000, declareLost = false): Promise<void> {
  let via = firstVia;
  // Those already gone (forgotten or left before) are not asked about: the node refuses a forget naming a non-member.
  const members = new Set((await admin<ServerStatus>(via, '/status')).membership.members.map((member) => member.id));
  const gone = servers.filter((server) => !members.has(server.id)).map((server) => server.id);
  if (gone.length > 0) report(`${via.id}: ${gone.join(', ')} not a member (forgotten or left before)`);
  const ids = servers.map((server) => server.id).filter((id) => members.has(id));
  if (ids.length === 0) return;
  let deadline = Date.now() + timeoutMs;
  const waitedForDownSince = new Map<string, number>();
  let refusedPagesUntil = Date.now() + forgetPageRefusalRetryMs;
  let drainedForTakeover = false;
  let last = '';
  for (;;) {
    if (Date.now() > deadline) throw new Error(`${ids.join(', ')} not forgotten within ${timeoutMs} ms${last ? `: ${last}` : ''}`);
    try {
      const result = await admin<{ message: string }>(via, '/members/forget', declareLost ? { ids, declareLost: true } : { ids });
      report(`${via.id}: ${ids.join(', ')} forgotten: ${result.message}`);
      if (await followedWithout(ids, via, others, admin, report)) return;
      report(`  ${via.id} lists ${ids.join(', ')} again; asking again`);
      continue;
    } catch (error) {
      const message = (error as Error).message;
      const refusal = refusalOf(error);
      if (refusal?.reason === 'notAMember' && await followedWithout(ids, via, others, admin, report)) {
        report(`${via.id}: ${ids.join(', ')} not a member any more (forgotten or left before)`);
        return;
      }
      if (refusal?.reason === 'notDraining') {
        await drainForForget(refusal.servers, via, admin, report);
        continue;
      }
      // Pages named only because a move from them committed at another member before they flipped: drained, they are
      // taken over (machines/node/dead-source-takeover.ts), which a forget through that member would have done at once.
      if (refusal?.reason === 'stillHolds' && !drainedForTakeover) {
        const pages = await pagesAwaitingTakeover(ids, via, others, admin);
        if (pages !== null) {
          report(`  ${pages.map(({ page, at }) => `${page} (committed at ${at})`).join(', ')}: copied by moves from ${ids.join(', ')} that never flipped; draining ${ids.length === 1 ? 'it' : 'them'} so that the copies are taken over`);
          await drainForForget(ids, via, admin, report);
          drainedForTakeover = true;
          // The takeovers and the route pushes that repair `via`'s table take their own time: the window starts over.
          refusedPagesUntil = Date.now() + forgetPageRefusalRetryMs;
          continue;
        }
      }
      // Pages being declared lost (machines/node/lost-pages.ts): asked again until done; another member's claim to
      // declare them is finished through that member.
      if (refusal?.reason === 'declaringLost') {
        const claimant = refusal.servers.length === 1 && !ids.includes(refusal.servers[0]!) ? [via, ...others].find((other) => other.id === refusal.servers[0]) : undefined;
        if (claimant && claimant !== via) {
          // A claimant that died too holds its claim until it is drained (machines/node/lost-pages.ts, `claimStands`).
          if (!(await admin<ServerStatus>(claimant, '/status').then(() => true, () => false))) {
            throw new Error(`${message}, but ${claimant.id} does not answer: if it is down for good, drain it (its claim then lapses) and ask again, or forget it with them (--id ${[...ids, claimant.id].join(',')})`);
          }
          report(`  ${message}: asking ${claimant.id}`);
          via = claimant;
        } else if (message !== last) report(`  ${message}`);
        last = message;
        // Each round declares at most 64 pages: while rounds declare, the time-out starts over (a large server's).
        if (/declaring \d+ pages? lost/.test(message)) deadline = Date.now() + timeoutMs;
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
        continue;
      }
      // A member that is down and not named blocks the forget: said after a few seconds rather than at the time-out.
      const waitingFor = refusal?.reason === 'waitingFor' ? refusal.servers : [];
      for (const id of waitingFor) {
        const other = others.find((candidate) => candidate.id === id);
        if (!other) continue;
        if (await admin<ServerStatus>(other, '/status').then(() => true, () => false)) {
          waitedForDownSince.delete(id);
          continue;
        }
        if (!waitedForDownSince.has(id)) waitedForDownSince.set(id, Date.now());
        if (Date.now() - waitedForDownSince.get(id)! > forgetDownMemberWaitMs) {
          throw new Error(`${message}: ${id} does not answer; forget it with them (--id ${[...ids, id].join(',')}) if it is down for good, or bring it back`);
        }
      }
      const retry = refusal?.reason === 'waitingFor' || (refusal?.reason === 'stillHolds' && Date.now() < refusedPagesUntil);
      if (!retry || Date.now() > deadline) throw error;
      if (message !== last) report(`  ${message}`);
      last = message;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Marks `ids` draining through `via` (one already draining, by another command, is as good). */
async function drainForForget(ids: readonly string[], via: ServerConfig, admin: AdminCall, report: (line: string) => void): Promise<void> {
  for (const id of ids) {
    const drained = await admin<{ message: string }>(via, '/members/drain', { id }).then((result) => result.message, (drainError: unknown) => {
      if (refusalOf(drainError)?.reason === 'alreadyDraining') return `${id} is already draining`;
      throw drainError;
    });
    report(`${via.id}: ${drained}`);
  }
}

/**
 * The pages `via`'s table names one of `ids` owner, if each is held valid by
 * an answering member whose own table still names one of them (a committed
 * destination whose flip never came), with the member; null if any is not
 * (the refusal stands) or there is none. The node checks again: this only
 * decides that draining the dead servers is worth it.
 */
async function pagesAwaitingTakeover(ids: readonly string[], via: ServerConfig, others: readonly ServerConfig[], admin: AdminCall): Promise<Array<{ page: string; at: string }> | null> {
  const statuses = (await Promise.all([via, ...others].map((server) => admin<ServerStatus>(server, '/status').catch(() => null)))).filter((status): status is ServerStatus => status !== null);
  const viaStatus = statuses.find((status) => status.server === via.id);
  if (!viaStatus) return null;
  const named = Object.entries(viaStatus.routes).filter(([, route]) => ids.includes(route.owner)).map(([page]) => page);
  const found: Array<{ page: string; at: string }> = [];
  for (const page of named) {
    // As the node decides (dead-source-takeover.ts): a valid copy one epoch above a route naming a dead server, at a
    // member that is not itself being forgotten.
    const holder = statuses.find((status) => {
      const route = status.routes[page];
      const copyEpoch = /^valid \(epoch (\d+)\)$/.exec(status.copies[page] ?? '')?.[1];
      return !ids.includes(status.server) && route !== undefined && ids.includes(route.owner) && copyEpoch !== undefined && Number(copyEpoch) === route.epoch + 1;
    });
    if (!holder) return null;
    found.push({ page, at: holder.server });
  }
  return found.length > 0 ? found : null;
}

/** A member the forget waits for that does not answer fails the command after this long. */
const forgetDownMemberWaitMs = 3_000;

/** A refusal naming pages is asked again for this long: the asked member repairs a stale route meanwhile (route.query). */
const forgetPageRefusalRetryMs = 3_000;

/**
 * Whether `via` and every other member that answers follow a record without
 * `ids` (waiting a little for them); false if `via` lists them again. The
 * other members are those of the configuration and those of `via`'s record
 * that the configuration does not name (a server another administrator added
 * with another configuration file), asked at the admin address the record
 * gives.
 */
async function followedWithout(ids: readonly string[], via: ServerConfig, others: readonly ServerConfig[], admin: AdminCall, report: (line: string) => void, timeoutMs = 10_000): Promise<boolean> {
  const lists = (status: ServerStatus) => status.membership.members.some((member) => ids.includes(member.id));
  const deadline = Date.now() + timeoutMs;
  const silent = new Set<string>();
  for (;;) {
    const viaStatus = await admin<ServerStatus>(via, '/status');
    if (lists(viaStatus)) return false;
    const known = new Set([via.id, ...ids, ...others.map((other) => other.id)]);
    // Only the id and admin address are used to call a member (as in membersStillListing).
    const unconfigured = viaStatus.membership.members.filter((member) => !known.has(member.id) && member.admin !== null).map((member): ServerConfig => ({ ...via, id: member.id, admin: member.admin! }));
    const lagging: string[] = [];
    for (const other of [...others, ...unconfigured]) {
      const status = await admin<ServerStatus>(other, '/status').catch(() => null);
      if (status === null && !silent.has(other.id)) report(`  ${other.id} does not answer: it learns the record when it is back`);
      if (status === null) silent.add(other.id);
      else if (lists(status)) lagging.push(`${other.id} (epoch ${status.membership.epoch})`);
    }
    if (lagging.length === 0) return true;
    if (Date.now() > deadline) throw new Error(`${via.id} forgot ${ids.join(', ')}, but after ${timeoutMs} ms ${lagging.join(', ')} still list ${ids.length === 1 ? 'it' : 'them'}: check those servers and run the command again`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The members (of the leaving server's last record) whose own record still names it, or that do not answer: with a reason each. */
async function membersStillListing(leaving: ServerConfig, members: ServerStatus['membership']['members'], admin: AdminCall): Promise<string[]> {
  const lagging = await Promise.all(members.map(async (member) => {
    if (!member.admin) return `${member.id} (no admin address known)`;
    // Only the id and admin address are used to call a member; the rest of the configuration is the leaving server's.
    const target: ServerConfig = { ...leaving, id: member.id, admin: member.admin };
    try {
      const status = await admin<ServerStatus>(target, '/status');
      return status.membership.members.some((candidate) => candidate.id === leaving.id) ? `${member.id} (epoch ${status.membership.epoch})` : null;
    } catch (error) {
      return `${member.id} (${(error as Error).message})`;
    }
  }));
  return lagging.filter((entry): entry is string => entry !== null);
}
