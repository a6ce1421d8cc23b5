/**
 * The seed of a random run. A run is reproducible only if its seed is known,
 * so the seed comes from `BLOCKSHIFT_SEED` when set (to replay a failure) and
 * is otherwise drawn afresh; either way the caller prints it before running.
 * fast-check seeds are 32-bit integers.
 */
export function runSeed(): number {
  const fromEnvironment = process.env['BLOCKSHIFT_SEED'];
  if (fromEnvironment !== undefined && fromEnvironment.trim() !== '') {
    const seed = Number(fromEnvironment);
    if (!Number.isInteger(seed)) throw new Error(`BLOCKSHIFT_SEED must be an integer, got ${JSON.stringify(fromEnvironment)}`);
    return seed | 0;
  }
  return (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) | 0;
}

/** The number of runs, overridable with `BLOCKSHIFT_RUNS` for a longer soak. */
export function runCount(defaultRuns: number): number {
  const fromEnvironment = Number(process.env['BLOCKSHIFT_RUNS'] ?? '');
  return Number.isInteger(fromEnvironment) && fromEnvironment > 0 ? fromEnvironment : defaultRuns;
}
