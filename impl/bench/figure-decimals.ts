/**
 * Decimals that show about three significant digits of a benchmark figure of
 * this size, and at least one: an IOPS or MB/s figure keeps one decimal, a
 * ratio such as forwarded/owner (about 0.5) three.
 */
export function decimalsFor(figure: number): number {
  const magnitude = Math.abs(figure);
  if (magnitude === 0 || !Number.isFinite(magnitude)) return 1;
  return Math.min(6, Math.max(1, 2 - Math.floor(Math.log10(magnitude))));
}
