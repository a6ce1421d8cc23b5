import fc from 'fast-check';

/**
 * Runs a property with fast-check and reports it: how many runs completed in
 * how long, whether a time limit cut the run short, and on failure
 * fast-check's own report (seed, replay path, shrunk counterexample, error),
 * thrown so the test fails. Shrinking a long random walk can take minutes, so
 * runs stop after `timeLimitMs` and keep the shortest counterexample found so
 * far; a run cut short before any failure fails too, so a slow machine can
 * never turn into a silent pass with fewer runs than asked for.
 */
export interface CheckedRun<T> {
  readonly details: fc.RunDetails<T>;
  readonly seconds: number;
}

export function checkProperty<T>(name: string, property: fc.IProperty<T>, parameters: fc.Parameters<T> & { timeLimitMs: number }): CheckedRun<T> {
  const { timeLimitMs, ...rest } = parameters;
  const started = performance.now();
  const details = fc.check(property, { ...rest, plugins: [fc.interruptAfterTimeLimit(timeLimitMs) as fc.Plugin<T>] });
  const seconds = (performance.now() - started) / 1000;
  console.log(`${name}: ${details.numRuns} runs, ${details.numShrinks} shrinks in ${seconds.toFixed(1)} s${details.interrupted ? ` (time limit ${timeLimitMs / 1000} s reached)` : ''}; seed=${details.seed}${details.failed ? ` path=${details.counterexamplePath}` : ''}`);
  return { details, seconds };
}

/** Fails the test with fast-check's report if the property failed, or if the time limit stopped it before `numRuns`. */
export function assertChecked<T>(run: CheckedRun<T>, numRuns: number): void {
  const { details } = run;
  if (details.failed) {
    const cause = details.errorInstance instanceof Error ? details.errorInstance : new Error(String(details.errorInstance));
    throw new Error(fc.defaultReportMessage(details) ?? 'property failed', { cause });
  }
  if (details.numRuns < numRuns) throw new Error(`only ${details.numRuns} of ${numRuns} runs finished within the time limit (seed=${details.seed})`);
}
