import type { Action, World } from './world.js';
import { enabledActions } from './world.js';

/**
 * The fair schedule that heals a group once faults stop, for the explorer's
 * liveness check and the random walks' completion: every crashed server
 * restarts, every pending metadata commit becomes durable, the network
 * delivers its oldest message, and only when none of those is possible does
 * a timer fire. No new client request or move is issued, nothing is dropped
 * or duplicated.
 *
 * Timers take turns by server, and by timer within a server: a server whose
 * timers keep re-arming (a move restarting against a destination that never
 * answers) must not keep another server's timer from ever firing, as real
 * time would not. Picking the first enabled timer did exactly that, and a
 * liveness failure it reported was then the schedule's, not the group's.
 */
export class FairSchedule {
  /** The server whose timer fires next, if it has one. */
  #timerServer = 0;
  /** Timers fired per server: the next one of a server is the one after, cyclically. */
  readonly #timersFired: number[] = [];

  next(world: World): Action | undefined {
    const actions = enabledActions(world);
    const first = actions.find((action) => action.type === 'restart') ??
      actions.find((action) => action.type === 'persist') ??
      actions.find((action) => action.type === 'deliver');
    if (first) return first;
    const serverCount = world.servers.length;
    for (let offset = 0; offset < serverCount; offset += 1) {
      const server = (this.#timerServer + offset) % serverCount;
      const timers = actions.filter((action) => action.type === 'timer' && action.server === server);
      if (timers.length === 0) continue;
      const fired = this.#timersFired[server] ?? 0;
      this.#timersFired[server] = fired + 1;
      this.#timerServer = (server + 1) % serverCount;
      return timers[fired % timers.length];
    }
    return undefined;
  }
}
