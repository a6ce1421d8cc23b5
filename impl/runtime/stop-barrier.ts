import type { RuntimeReply } from './server-runtime.js';

/**
 * The last FLUSH of a server that stops cleanly, which lets its next run serve
 * FLUSHes while a member is down.
 *
 * Theory of operation. A server's FLUSH barrier may excuse a silent member
 * only once it knows that member holds none of the writes the server's
 * earlier runs acknowledged (machines/node/flush-barrier.ts,
 * `earlierRunsSynced`): the loss watch that names the holders is volatile. A
 * server restarted while a member was down therefore failed every FLUSH until
 * that member came back, on every volume, even one the member held no page
 * of: an administrator restarting a healthy server for an upgrade while
 * another was dead cut every client of it off from FLUSH. A clean stop can
 * know better. Once the NBD front end has closed (every client connection is
 * gone, so no acknowledgement reaches a client any more), it runs a FLUSH of
 * every volume it knows. The record (impl/storage/loss-epoch.ts, written only
 * with a clean stop's record, and replaced by "not stopped cleanly" at the
 * next start before the node runs) says every write any run of this server
 * acknowledged is durable wherever it landed when: every FLUSH succeeded; the
 * node has `earlierRunsSynced` (a barrier over every member completed in this
 * run, or the previous run ended this way); and, checked last, right before
 * the runtime stops, no loss watch holds an unflushed write (a request still
 * in flight when its connection closed may have been acknowledged, to nobody,
 * after the FLUSHes began: the record then claims no more than was checked).
 * A FLUSH that fails, names a possible loss, or takes longer than
 * `timeoutMs` (a holder that is down: the barrier retries for about 10 s)
 * leaves the next run as careful as after a crash; so does a holder of an
 * unflushed write that the peer transport cannot reach, without the FLUSHes
 * (a stop waited its 3 s for one).
 *
 * Stopping together. When the whole group stops at once (Ctrl-C on `npm
 * start`), every server runs this barrier and needs the others' syncs; a
 * server that stopped its runtime as soon as its own barrier completed
 * answered nobody's after that, and the others waited out the time-out
 * without their record (a review measured 3 s per group stop, with one or
 * two servers losing the record). So a server lingers after its barrier,
 * still answering, until no peer has asked it for a sync for `lingerQuietMs`
 * (at most `timeoutMs` in all).
 */
export interface StopBarrierRuntime {
  readonly state: {
    readonly earlierRunsSynced: boolean;
    readonly volumes: Readonly<Record<string, unknown>>;
    readonly lossWatches: Readonly<Record<string, { readonly unflushed: ReadonlyArray<{ readonly server: string }> }>>;
  };
  /** When a peer last asked this server to sync for its FLUSH (performance.now() ms). */
  readonly lastFlushRequestAtMs: number;
  flush(connectionId: string, volume: string): Promise<RuntimeReply>;
}

/** How long a stop waits for its last FLUSHes (and lingers for its peers') before it stops without the record. */
export const stopBarrierTimeoutMs = 3_000;
/** A stopping server lingers until no peer has asked it for a sync for this long (see "Stopping together"). */
export const lingerQuietMs = 150;

/** The connection id the stop's FLUSHes are made under (no client connection is named so: theirs are `#N host:port`, impl/nbd/nbd-server.ts). */
const stopConnectionId = 'stop-barrier';

/**
 * Whether every write any run of this server acknowledged is now durable
 * wherever it landed (see the top of the file). Resolves once the linger is
 * over; the caller stops the runtime at once, so nothing is acknowledged
 * between the last check and the stop.
 */
export async function syncEveryAcknowledgedWrite(runtime: StopBarrierRuntime, timeoutMs = stopBarrierTimeoutMs, isReachable: (server: string) => boolean = () => true): Promise<boolean> {
  const startedMs = performance.now();
  const volumes = Object.keys(runtime.state.volumes);
  // A holder of an unflushed write that cannot be reached fails the FLUSH after its retries: not waited out.
  const holders = new Set(Object.values(runtime.state.lossWatches).flatMap((watch) => watch.unflushed.map((entry) => entry.server)));
  let synced = false;
  if ([...holders].every((server) => isReachable(server))) {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); });
    const flushed = Promise.all(volumes.map((volume) => runtime.flush(stopConnectionId, volume)))
      .then((replies) => replies.every((reply) => reply.outcome.status === 'ok'), () => false);
    try {
      synced = await Promise.race([flushed, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }
  for (;;) {
    const quietForMs = performance.now() - runtime.lastFlushRequestAtMs;
    const leftMs = timeoutMs - (performance.now() - startedMs);
    if (quietForMs >= lingerQuietMs || leftMs <= 0) break;
    await new Promise((resolve) => setTimeout(resolve, Math.min(lingerQuietMs - quietForMs, leftMs)));
  }
  return synced && runtime.state.earlierRunsSynced && Object.values(runtime.state.lossWatches).every((watch) => watch.unflushed.length === 0);
}
