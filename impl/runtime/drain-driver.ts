/**
 * Drives this server's drain: while the node's membership marks it draining,
 * it starts moves of the pages it owns, a few at a time, to the destinations
 * the pure plan picks (machines/membership/drain-plan.ts: lowest share of
 * pages per capacity weight first), and once it holds nothing and runs no
 * move it asks its own node to remove it from the membership (which it does
 * once every remaining member confirmed that no move toward it runs). Moves go
 * through the same migration machines as an admin move, so clients keep
 * reading and writing throughout. The driver holds no state the node does
 * not: a restarted server that is still marked draining simply carries on.
 */
import type { PageKey } from '../../machines/identifiers.js';
import { pageKeyText } from '../../machines/identifiers.js';
import { drainMoves, drainRemaining, isReadyToLeave } from '../../machines/membership/drain-plan.js';
import { memberOf } from '../../machines/membership/membership.js';
import type { ServerRuntime } from './server-runtime.js';

export interface DrainDriverOptions {
  readonly runtime: ServerRuntime;
  readonly log: (line: string) => void;
  /** Moves this server runs at once while draining. */
  readonly movesInFlightMax: number;
  readonly intervalMs: number;
  /** Whether a member can be reached now (the peer transport's link to it is up, or not yet tried); absent, every one can. */
  readonly isReachable?: (id: string) => boolean;
}

export class DrainDriver {
  readonly #options: DrainDriverOptions;
  readonly #timer: NodeJS.Timeout;
  /** Pages whose move request is on its way to the node (so one tick does not ask twice). */
  readonly #requested = new Set<string>();
  #leaving = false;
  #lastProgress = '';
  #lastLeaveAnswer = '';

  constructor(options: DrainDriverOptions) {
    this.#options = options;
    this.#timer = setInterval(() => this.#tick(), options.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #tick(): void {
    const { runtime, log } = this.#options;
    const state = runtime.state;
    if (!state.started || !memberOf(state.membership, runtime.self)?.draining) return;
    const { pagesHeld, movesRunning } = drainRemaining(state);
    const progress = `draining: ${pagesHeld} pages held, ${movesRunning} moves running`;
    if (progress !== this.#lastProgress) log(progress);
    this.#lastProgress = progress;
    if (isReadyToLeave(state)) {
      if (this.#leaving) return;
      this.#leaving = true;
      // The node asks every remaining member to confirm that no move toward this server runs; until all have, it refuses and this asks again next tick.
      void runtime.changeMembership({ kind: 'remove', id: runtime.self }).then((result) => {
        const line = result.ok ? `left the group: ${result.message}` : `cannot leave yet: ${result.message}`;
        if (line !== this.#lastLeaveAnswer) log(line);
        this.#lastLeaveAnswer = line;
        this.#leaving = false;
      });
      return;
    }
    const free = this.#options.movesInFlightMax - movesRunning - this.#requested.size;
    const isReachable = this.#options.isReachable;
    const unreachable = new Set(isReachable ? state.membership.members.map((member) => member.id).filter((id) => id !== runtime.self && !isReachable(id)) : []);
    for (const { pageKey, to } of drainMoves(state, free, this.#requested, unreachable)) {
      this.#request(pageKey, to);
    }
  }

  #request(pageKey: PageKey, to: string): void {
    const key = pageKeyText(pageKey);
    this.#requested.add(key);
    void this.#options.runtime.move(pageKey, to, 'piecewise').then((result) => {
      this.#requested.delete(key);
      this.#options.log(`drain: ${result.message}`);
    });
  }
}
