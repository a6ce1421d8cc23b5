/**
 * Waiting for a server's output: `waitFor` resolves on the first line offered
 * from now on that matches its pattern, or rejects after `timeoutMs`. Used by
 * the cluster tests and the fault harness to act at a logged stage.
 */
interface LineWaiter {
  readonly pattern: RegExp;
  readonly resolve: (line: string) => void;
}

export class LineWaiters {
  readonly #waiters = new Set<LineWaiter>();

  /** Hands a line to every waiter whose pattern it matches; each is resolved once. */
  offer(line: string): void {
    for (const waiter of this.#waiters) {
      if (!waiter.pattern.test(line)) continue;
      this.#waiters.delete(waiter);
      waiter.resolve(line);
    }
  }

  waitFor(pattern: RegExp, timeoutMs: number): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const waiter: LineWaiter = { pattern, resolve: (line) => { clearTimeout(timer); resolve(line); } };
      const timer = setTimeout(() => { this.#waiters.delete(waiter); reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms`)); }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }
}
