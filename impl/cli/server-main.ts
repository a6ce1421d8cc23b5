/**
 * One server process: `tsx impl/cli/server-main.ts CONFIG.json SERVER_ID`.
 *
 * Opens the server's metadata (lmdb) and page files, recovers the node from
 * them (resuming any move at its table's restart stage), then listens for
 * peers, NBD clients and the administrator. SIGTERM or SIGINT stop it
 * cleanly; SIGKILL is what the crash tests use, and recovery handles it.
 */
import { createWriteStream } from 'node:fs';
import { join, resolve } from 'node:path';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import { startNbdServer } from '../nbd/nbd-server.js';
import { PeerTransport } from '../peer/peer-transport.js';
import { startAdminServer } from '../runtime/admin-server.js';
import { ServerRuntime } from '../runtime/server-runtime.js';
import { syncEveryAcknowledgedWrite } from '../runtime/stop-barrier.js';
import type { BlockObserver } from '../runtime/volume-backend.js';
import { VolumeBackend } from '../runtime/volume-backend.js';
import { checkDirectoryIdentity, claimDataDirectory } from '../storage/data-directory.js';
import { sweepReleasedPages } from '../storage/released-page-sweep.js';
import { MetadataStore } from '../storage/metadata-store.js';
import { defaultHandlesMax, PageStore } from '../storage/page-store.js';
import { EmulatedDiskPageStore } from '../storage/emulated-disk.js';
import { nextIncarnation } from '../storage/incarnation-counter.js';
import { recordCleanStop, recordWritebackFailure, startLossEpoch } from '../storage/loss-epoch.js';
import { startBalancing } from '../balance/balance-wiring.js';
import type { RunningBalancer } from '../balance/balance-wiring.js';
import { DrainDriver } from '../runtime/drain-driver.js';
import { bootstrapMembership } from '../../machines/membership/membership.js';
import type { Membership } from '../../machines/membership/membership.js';
import { moveRateUnderLoadMBpsOf, nbdConnectionBoundsOf, readGroupConfig } from './group-config.js';
import { defaultClientQuietMs } from '../runtime/copy-pacer.js';
import { openFilesProblem, readOpenFilesSoftLimit } from './open-files-budget.js';

async function main(): Promise<void> {
  const [configPath, serverId] = process.argv.slice(2);
  if (!configPath || !serverId) throw new Error('usage: server-main.ts CONFIG.json SERVER_ID');
  const group = readGroupConfig(configPath);
  const self = group.servers.find((server) => server.id === serverId);
  if (!self) throw new Error(`server ${serverId} is not in ${configPath}`);
  const log = (line: string) => process.stdout.write(`[${self.id}] ${line}\n`);
  const openFiles = openFilesProblem({ nbdConnectionsMax: nbdConnectionBoundsOf(group).connectionsMax, pageHandlesMax: defaultHandlesMax, peerCount: group.servers.length - 1 }, readOpenFilesSoftLimit());
  if (openFiles !== null) throw new Error(openFiles);

  // Claimed before anything in it is opened: two servers on one directory each took every page for their own.
  await claimDataDirectory(self.dataDirectory);
  const metadata = MetadataStore.open(self.dataDirectory);
  await checkDirectoryIdentity(self.dataDirectory, { serverId: self.id, groupName: group.groupName }, metadata.storedIdentity());
  const unsyncedWritesVolatile = process.env.BLOCKSHIFT_POWER_LOSS === '1';
  const { lossEpoch, raised, killedOnThisBoot, earlierRunsSynced } = startLossEpoch(self.dataDirectory, { unsyncedWritesVolatile });
  if (raised) log(`loss epoch ${lossEpoch}: the previous run did not stop cleanly and unsynced writes may be lost; FLUSHes covering them fail`);
  const pageStoreOptions = {
    unsyncedWritesVolatile,
    // A failed fdatasync may have dropped writes without a power cut: the next start must raise the loss epoch.
    onFailure: (error: Error) => {
      log(`page store failed: ${error.message}; the next start raises the loss epoch`);
      try {
        recordWritebackFailure(self.dataDirectory, lossEpoch);
      } catch (recordError) {
        // Unrecorded, the next start on this boot would take the failure for a kill and keep the epoch: stop here.
        log(`could not record the failure: ${(recordError as Error).message}; stopping`);
        process.exit(70);
      }
    },
  };
  // Benchmarks of a whole group on one host give each server a disk of its own speed (impl/storage/emulated-disk.ts).
  const diskOperationsPerSecondMax = Number(process.env.BLOCKSHIFT_DISK_IOPS_MAX ?? 0);
  if (!(diskOperationsPerSecondMax >= 0)) throw new Error(`BLOCKSHIFT_DISK_IOPS_MAX must be a number >= 0, not ${process.env.BLOCKSHIFT_DISK_IOPS_MAX}`);
  const pages = diskOperationsPerSecondMax > 0
    ? new EmulatedDiskPageStore(join(self.dataDirectory, 'pages'), pageStoreOptions, diskOperationsPerSecondMax)
    : new PageStore(join(self.dataDirectory, 'pages'), pageStoreOptions);
  if (diskOperationsPerSecondMax > 0) log(`emulated disk: ${diskOperationsPerSecondMax} operations per second`);
  // A process killed on this boot left its unsynced writes in the kernel's cache, outside this store's dirty set.
  if (killedOnThisBoot) log(`synced ${await pages.syncEveryFile()} page files the previous run left unsynced`);
  // A copy released just before a crash may have lost its file's unlink but not its record's removal.
  // Loaded once: the sweep reads the records, then the runtime starts from them (at 262,144 pages a load is not free).
  const durable = metadata.load();
  const swept = await sweepReleasedPages(pages, durable);
  if (swept.length > 0) log(`deleted the files of ${swept.length} released page${swept.length === 1 ? '' : 's'} a stop came between: ${swept.map((pageKey) => `${pageKey.volume}/${pageKey.page}`).join(', ')}`);
  const traceStream = group.traceTransitions ? createWriteStream(join(self.dataDirectory, 'trace.jsonl'), { flags: 'a' }) : null;
  // Each process starts its machines' chains afresh from its durable records; the trace says so.
  traceStream?.write(`${JSON.stringify({ server: self.id, type: 'start' })}\n`);
  const peers = Object.fromEntries(group.servers.filter((server) => server.id !== self.id).map((server) => [server.id, server.peer]));
  let runtime: ServerRuntime | null = null;
  const transport = new PeerTransport({
    self: self.id, groupName: group.groupName, listen: self.peer, peers, log,
    onMessage: (from, message, data) => runtime?.receive(from, message, data),
    batch: (body) => (runtime ? runtime.batch(body) : body()),
  });
  let balancing: RunningBalancer | null = null;
  // The configured group is the membership until the store holds a newer record (machines/membership/membership.ts).
  const bootstrap = bootstrapMembership(group.servers.map((server) => ({ id: server.id, peer: server.peer, admin: server.admin, capacityWeight: server.capacityWeight, draining: false })));
  const onMembership = (membership: Membership) => {
    transport.setPeers(Object.fromEntries(membership.members.filter((member) => member.id !== self.id).flatMap((member) => {
      const address = member.peer ?? peers[member.id];
      return address ? [[member.id, address]] : [];
    })));
    balancing?.followMembership(membership);
  };
  runtime = new ServerRuntime({
    bootstrapMembership: bootstrap, onMembership,
    config: { ...defaultNodeConfig(self.id, group.servers.map((server) => server.id)), forwardingPointer: group.forwardingPointer, traceTransitions: group.traceTransitions, moveProgressTimeoutMs: group.moveProgressTimeoutMs },
    incarnation: nextIncarnation(self.dataDirectory), lossEpoch, earlierRunsSynced, pages, metadata, peers: transport, log, copyPacing: {
      maxBytesPerSecond: group.moveThrottleMBps * 2 ** 20,
      underLoadBytesPerSecond: moveRateUnderLoadMBpsOf(group) * 2 ** 20,
      clientQuietMs: defaultClientQuietMs,
    },
    trace: traceStream ? (event) => traceStream.write(`${JSON.stringify({ server: self.id, ...event })}\n`) : undefined,
    onCommitOutcomeUnknown: (error) => {
      log(`${error.message}; stopping: a restart recovers from what is durable`);
      process.exit(70);
    },
  });
  await transport.listen();
  runtime.start(durable);
  // Off unless BLOCKSHIFT_BALANCE=1: the load monitor, ring exchange and allocation process (impl/balance/).
  balancing = await startBalancing(group, self.id, runtime, log);
  onMembership(runtime.state.membership);
  // Membership is lazy like routes: announcing it now and then lets a server that missed a change catch up.
  runtime.announceMembership();
  const announcer = setInterval(() => runtime?.announceMembership(), 3_000);
  announcer.unref();
  const drain = new DrainDriver({ runtime, log, movesInFlightMax: 2, intervalMs: 200, isReachable: (id) => transport.isReachable(id) });
  let observerFailures = 0;
  const balancer = balancing?.balancer;
  const observe: BlockObserver | undefined = balancer ? {
    issued: (pageKey, kind, offsetBlocks, lengthBlocks, bytes, clientId) => balancer.observe({ pageKey, kind, offsetBlocks, lengthBlocks, bytes, clientId }),
    answered: (pageKey, latencyMs) => balancer.answered(pageKey, latencyMs),
    // Logged at 1, 10, 100, ... failures: a monitor that fails on every request must not flood the log.
    failed: (error) => { observerFailures += 1; if (Number.isInteger(Math.log10(observerFailures))) log(`load monitor failed (${observerFailures} times): ${(error as Error).message}`); },
  } : undefined;
  const nbd = await startNbdServer({ host: self.nbd.host, port: self.nbd.port, backend: new VolumeBackend(runtime, observe), log, ...nbdConnectionBoundsOf(group) });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log('stopping');
    clearInterval(announcer);
    drain.stop();
    await nbd.close();
    await balancing?.close();
    // No client connection is left (a request still in the runtime is acknowledged to nobody): FLUSH every volume, so
    // the next run knows whether every write this one acknowledged is durable (stop-barrier.ts). The admin API answers
    // meanwhile: a server lingering for its peers is not down (`server forget` asks).
    const acknowledgedWritesSynced = runtime !== null && await syncEveryAcknowledgedWrite(runtime, undefined, (id) => id === self.id || transport.isReachable(id));
    if (!acknowledgedWritesSynced) log('stopping without every acknowledged write known durable in the group: the next start waits for every member before excusing one from a FLUSH');
    await admin.close();
    runtime?.stop();
    await transport.close();
    const synced = await pages.sync(null).then(() => true, () => false);
    await pages.close();
    await metadata.close();
    // Only a stop that synced every page may tell the next start that nothing was lost.
    if (synced) recordCleanStop(self.dataDirectory, lossEpoch, acknowledgedWritesSynced);
    traceStream?.end();
    process.exit(0);
  };
  const admin = await startAdminServer({ host: self.admin.host, port: self.admin.port, runtime, dataDirectory: resolve(self.dataDirectory), onShutdown: () => void stop(), log });
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  log(`ready: nbd://${self.nbd.host}:${self.nbd.port}/ peer ${self.peer.host}:${self.peer.port} admin http://${self.admin.host}:${self.admin.port}/status`);
}

main().catch((error: unknown) => {
  process.stderr.write(`blockshift server: ${(error as Error).message}\n`);
  process.exit(1);
});
