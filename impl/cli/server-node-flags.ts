/**
 * The Node (V8) options every server process is started with.
 *
 * Theory of operation. A server's live heap is small (some 10 MB: tables,
 * the routing memo, requests in flight) while it allocates fast (several KB
 * per request, tens of MB a second under load) and most of it dies young.
 * V8 sizes the old generation's limit from the live size, so with a heap
 * this small the limit sat only a few MB above it: a few scavenges' worth
 * of promotion reached it, and V8 ran a full mark-compact about once per
 * scavenge (65-113 mark-compacts per server in one 12 s `BENCH_QUICK` run
 * of forwarded 4k requests, with concurrent marking and sweeping on the
 * other core, which fio and the other server need). An initial heap size
 * of 128 MB is the floor of that limit instead: the same run needs 0
 * mark-compacts on the owner and 5 on the forwarder, and the CPU per
 * forwarded request drops by about a fifth on both sides. The heap still
 * holds only what is live; the limit only decides how much garbage may be
 * promoted before it is collected, so memory stays within the 128 MB. The
 * figures are in the commit that introduced this file.
 */
export const serverNodeFlags: readonly string[] = ['--initial-heap-size=128'];
