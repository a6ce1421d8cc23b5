/**
 * The node's timers (`timer.set` effects) on the real clock, cheaply.
 *
 * Theory of operation. Every forwarded request sets a forward timer
 * (`forwardTimeoutMs`, 5 s by default) that nearly always outlives its
 * request. One Node `Timeout` per timer kept some 50,000 of them (each with
 * a closure and its effect) alive at 10,000 forwarded requests a second;
 * they all survived into the old generation and made the garbage collector
 * a large share of a forwarding server's CPU. Here a timer is only its id
 * and due time: timers of equal delay fall due in the order they were set,
 * so each delay has a first-in, first-out queue (two parallel arrays) and
 * at most one Node timer, armed for the queue's head.
 *
 * Setting a timer again replaces it: the id's latest due time is kept in a
 * map, and a queue entry whose due time is no longer the id's latest is
 * skipped when it comes up (as `clearTimeout` would have). A fired timer
 * is handed to `onFire` once, after its due time. Bounds: one queue entry
 * per `set` still pending; entries leave when due.
 *
 * Dead timers. A forward timer is dead as soon as its request is answered,
 * within a millisecond or so, yet it stayed queued for its whole delay: at
 * 10,000 forwarded requests a second some 50,000 ids, every one surviving
 * into the old generation, cost a forwarder about a fifth of its CPU (GC and
 * a map of that size). So the owner may say which timers are dead
 * (`isDead`: a timer that can no longer matter, and never will unless it is
 * set again, which queues it anew), and every `setsPerPrune` settings (or
 * as many as timers stayed pending at the last prune, if more) the queues
 * are compacted to the timers still pending and alive. A pruned timer is one
 * `onFire`'s caller would have dropped when it fell due; its id now dies
 * young. A prune costs the entries set since the last one plus those still
 * pending, so amortised O(1) per setting.
 */
import { assert } from '../../machines/identifiers.js';

interface DelayQueue {
  readonly dueMs: number[];
  readonly timerIds: string[];
  /** Index of the first pending entry; entries before it are spent. */
  head: number;
  armed: NodeJS.Timeout | null;
}

export interface NodeTimersOptions {
  /** A timer that is dead now stays dead unless set again (see above); null when no timer is ever pruned. */
  readonly isDead?: ((timerId: string) => boolean) | null;
  readonly setsPerPrune?: number;
}

export class NodeTimers {
  readonly #onFire: (timerId: string) => void;
  readonly #nowMs: () => number;
  readonly #isDead: ((timerId: string) => boolean) | null;
  readonly #setsPerPrune: number;
  #setsSincePrune = 0;
  /** `setsPerPrune`, or more while more timers stay pending: a prune then costs O(1) per setting, however many are alive. */
  #setsBeforePrune: number;
  /** The latest due time of every pending timer. */
  readonly #dueMsById = new Map<string, number>();
  readonly #queues = new Map<number, DelayQueue>();
  #stopped = false;

  constructor(onFire: (timerId: string) => void, nowMs: () => number = () => performance.now(), options: NodeTimersOptions = {}) {
    this.#onFire = onFire;
    this.#nowMs = nowMs;
    this.#isDead = options.isDead ?? null;
    this.#setsPerPrune = options.setsPerPrune ?? 16;
    this.#setsBeforePrune = this.#setsPerPrune;
    assert(Number.isSafeInteger(this.#setsPerPrune) && this.#setsPerPrune >= 1, 'prune after a positive number of settings');
  }

  get pendingCount(): number {
    return this.#dueMsById.size;
  }

  set(timerId: string, delayMs: number): void {
    if (this.#stopped) return;
    // The message is built only on failure: a template literal per call is an allocation per forwarded request.
    if (!(Number.isFinite(delayMs) && delayMs >= 0)) assert(false, `timer ${timerId} delay ${delayMs}`);
    const dueMs = this.#nowMs() + delayMs;
    this.#dueMsById.set(timerId, dueMs);
    let queue = this.#queues.get(delayMs);
    if (!queue) {
      queue = { dueMs: [], timerIds: [], head: 0, armed: null };
      this.#queues.set(delayMs, queue);
    }
    queue.dueMs.push(dueMs);
    queue.timerIds.push(timerId);
    if (queue.armed === null) this.#arm(delayMs, queue);
    if (this.#isDead !== null && ++this.#setsSincePrune >= this.#setsBeforePrune) this.#prune(this.#isDead);
  }

  /** Drops every queue entry that is spent, superseded by a later setting, or dead; each queue keeps its order. */
  #prune(isDead: (timerId: string) => boolean): void {
    this.#setsSincePrune = 0;
    for (const [delayMs, queue] of this.#queues) {
      let kept = 0;
      for (let index = queue.head; index < queue.dueMs.length; index += 1) {
        const timerId = queue.timerIds[index]!;
        const dueMs = queue.dueMs[index]!;
        if (this.#dueMsById.get(timerId) !== dueMs) continue;
        if (isDead(timerId)) {
          this.#dueMsById.delete(timerId);
          continue;
        }
        queue.timerIds[kept] = timerId;
        queue.dueMs[kept] = dueMs;
        kept += 1;
      }
      queue.timerIds.length = kept;
      queue.dueMs.length = kept;
      queue.head = 0;
      // The armed Node timer stays: it falls due no later than the new head, and `#fire` re-arms for whatever is left.
      if (kept === 0) {
        if (queue.armed) clearTimeout(queue.armed);
        this.#queues.delete(delayMs);
      }
    }
    this.#setsBeforePrune = Math.max(this.#setsPerPrune, this.#dueMsById.size);
  }

  stop(): void {
    this.#stopped = true;
    for (const queue of this.#queues.values()) if (queue.armed) clearTimeout(queue.armed);
    this.#queues.clear();
    this.#dueMsById.clear();
  }

  #arm(delayMs: number, queue: DelayQueue): void {
    const waitMs = Math.max(0, queue.dueMs[queue.head]! - this.#nowMs());
    queue.armed = setTimeout(() => this.#fire(delayMs, queue), Math.ceil(waitMs));
  }

  #fire(delayMs: number, queue: DelayQueue): void {
    queue.armed = null;
    const nowMs = this.#nowMs();
    const due: string[] = [];
    while (queue.head < queue.dueMs.length && queue.dueMs[queue.head]! <= nowMs) {
      const timerId = queue.timerIds[queue.head]!;
      // A timer set again since this entry was queued is due later, from its newer entry.
      if (this.#dueMsById.get(timerId) === queue.dueMs[queue.head]) {
        this.#dueMsById.delete(timerId);
        due.push(timerId);
      }
      queue.head += 1;
    }
    if (queue.head === queue.dueMs.length) {
      queue.dueMs.length = 0;
      queue.timerIds.length = 0;
      queue.head = 0;
      this.#queues.delete(delayMs);
    } else {
      if (queue.head > 1024 && queue.head * 2 > queue.dueMs.length) {
        queue.dueMs.splice(0, queue.head);
        queue.timerIds.splice(0, queue.head);
        queue.head = 0;
      }
      this.#arm(delayMs, queue);
    }
    for (const timerId of due) {
      if (this.#stopped) return;
      this.#onFire(timerId);
    }
  }
}
