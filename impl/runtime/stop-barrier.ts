import type { RuntimeReply } from './server-runtime.js';

/**
 * The last FLUSH of a server that stops cleanly, which lets its next run serve
 * FLUSHes at once while a member is down.
 *
 * Theory of operation. A server's FLUSH barrier may excuse a silent member
 * only once it knows that member holds none of the writes the server's
 * earlier runs acknowledged (machines/node/flush-barrier.ts,
 * `earlierRunsSynced`): the loss watch that names the holders is volatile. A
 * server restarted while a member was down therefore failed every FLUSH until
 * that member came back, on every volume, even one the member held no page
 * of: an administrator restarting a healthy server for an upgrade while
 * another was dead cut every client of it off from FLUSH. A clean stop can
 * know better. Once the NBD front end has closed (every client request
 * answered or abandoned with its connection, so the server acknowledges no
 * more writes), it runs a FLUSH of every volume it knows. If every one
 * succeeds, and the node has `earlierRunsSynced` (a barrier over every member
 * has completed in this run, or the previous run ended the same way), every
 * write any run of this server acknowledged is durable wherever it landed:
 * the stop records that (impl/storage/loss-epoch.ts, written only with a
 * clean stop's record, and replaced by "not stopped cleanly" at the next
 * start before the node runs), and the next run starts with
 * `earlierRunsSynced`. A FLUSH that fails, names a possible loss, or takes
 * longer than `timeoutMs` (a holder that is down: the barrier retries for
 * about 10 s) leaves the next run as careful as after a crash.
 */
export interface StopBarrierRuntime {
  readonly state: { readonly earlierRunsSynced: boolean; readonly volumes: Readonly<Record<string, unknown>> };
  flush(connectionId: string, volume: string): Promise<RuntimeReply>;
}

/** How long a stop waits for its last FLUSHes before it stops without the record. */
export const stopBarrierTimeoutMs = 3_000;

/** The connection id the stop's FLUSHes are made under (no client connection is named so: theirs are `#N host:port`, impl/nbd/nbd-server.ts). */
const stopConnectionId = 'stop-barrier';

/** Whether every write any run of this server acknowledged is now durable wherever it landed (see the top of the file). */
export async function syncEveryAcknowledgedWrite(runtime: StopBarrierRuntime, timeoutMs = stopBarrierTimeoutMs): Promise<boolean> {
  const volumes = Object.keys(runtime.state.volumes);
  // Volumes are never deleted: a server that knows none has never acknowledged a write, in this run or any before.
  if (volumes.length === 0) return true;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); });
  const flushed = Promise.all(volumes.map((volume) => runtime.flush(stopConnectionId, volume)))
    .then((replies) => replies.every((reply) => reply.outcome.status === 'ok'), () => false);
  try {
    return (await Promise.race([flushed, timedOut])) && runtime.state.earlierRunsSynced;
  } finally {
    clearTimeout(timer);
  }
}
