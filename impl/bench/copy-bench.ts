/**
 * `npm run bench:copy`: where the time of one page move goes, and the idle
 * copy rate.
 *
 * Profile (in one process). Two servers, each with its real lmdb metadata,
 * page files and TCP peer transport, run in this process with every storage
 * and network call wrapped in a timer: page read, page write, page sync,
 * metadata commit, peer send (frame encoding and socket write). Pages of
 * 4 MiB filled with random data move from s1 to s2 one at a time; for each
 * kind of call the bench prints how many calls a move makes and the time
 * they take per move (calls of one page run one after another, so per-page
 * sums are wall time on the move's critical path, give or take overlap
 * with the metadata queue). Both servers share one event loop here, so the
 * end-to-end figure is a lower bound of what two processes reach.
 *
 * Rate (separate processes). A local group of two server processes, the
 * same moves, timed end to end from the admin request until the source has
 * finished the move (commit, flip and release included).
 *
 * `BENCH_COPY_CHUNK_BYTES=n` sets the nodes' copyChunkBytesMax in the
 * profile; the profile prints the CPU time per move of its one process.
 *
 * Uses fixed ports (39809-41810): run under the ports lock. A benchmark:
 * it prints figures and never fails on them.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { MoveKind } from '../../machines/migration/checkpoint.js';
import { localGroupConfig } from '../cli/group-config.js';
import { LocalGroup } from '../cli/local-group.js';
import { PeerTransport } from '../peer/peer-transport.js';
import type { Metadata, PageData, Peers } from '../runtime/server-runtime.js';
import { ServerRuntime } from '../runtime/server-runtime.js';
import { MetadataStore } from '../storage/metadata-store.js';
import { PageStore } from '../storage/page-store.js';

const pageCount = Number(process.env['BENCH_PAGES'] ?? 8);
const pageSizeBlocks = 8192;
const blockSizeBytes = 512;
const pageBytes = pageSizeBlocks * blockSizeBytes;
const piecesPerPage = 16;
/** BENCH_COPY_CHUNK_BYTES: the node's copyChunkBytesMax in the in-process profile (absent: the default). */
const copyChunkBytesMax = Number(process.env['BENCH_COPY_CHUNK_BYTES'] ?? 0);

interface Sample { readonly name: string; readonly server: string; readonly startMs: number; readonly ms: number }

class Profile {
  samples: Sample[] = [];
  async time<T>(server: string, name: string, body: () => Promise<T>): Promise<T> {
    const startedMs = performance.now();
    try {
      return await body();
    } finally {
      this.samples.push({ name, server, startMs: startedMs, ms: performance.now() - startedMs });
    }
  }
  timeSync<T>(server: string, name: string, body: () => T): T {
    const startedMs = performance.now();
    try {
      return body();
    } finally {
      this.samples.push({ name, server, startMs: startedMs, ms: performance.now() - startedMs });
    }
  }
}

function timedPages(profile: Profile, server: string, pages: PageStore): PageData {
  return {
    read: (pageKey, offsetBlocks, lengthBlocks, blockSize) => profile.time(server, 'page read', () => pages.read(pageKey, offsetBlocks, lengthBlocks, blockSize)),
    write: (pageKey, offsetBlocks, data, blockSize, durable) => profile.time(server, durable ? 'page write (FUA)' : 'page write', () => pages.write(pageKey, offsetBlocks, data, blockSize, durable)),
    sync: (pageKey) => profile.time(server, 'page sync', () => pages.sync(pageKey)),
    delete: (pageKey) => profile.time(server, 'page delete', () => pages.delete(pageKey)),
  };
}

function timedMetadata(profile: Profile, server: string, metadata: MetadataStore): Metadata {
  return { load: () => metadata.load(), commit: (writes) => profile.time(server, 'metadata commit', () => metadata.commit(writes)) };
}

function timedPeers(profile: Profile, server: string, transport: () => PeerTransport): Peers {
  return {
    send: (to: string, message: PeerMessage, data: Buffer | null) =>
      profile.timeSync(server, `peer send ${message.type}`, () => transport().send(to, message, data)),
  };
}

async function profileMoves(kind: MoveKind, movePieces: number | undefined): Promise<void> {
  const directory = mkdtempSync(join(tmpdir(), 'blockshift-copy-bench-'));
  const profile = new Profile();
  const ids = ['s1', 's2'];
  const peerPorts: Record<string, number> = { s1: 39_809, s2: 39_810 };
  const runtimes = new Map<string, ServerRuntime>();
  const closers: Array<() => Promise<void>> = [];
  try {
    for (const id of ids) {
      const metadata = MetadataStore.open(join(directory, id));
      const pages = new PageStore(join(directory, id, 'pages'));
      let transport: PeerTransport | null = null;
      const log = () => undefined;
      const runtime = new ServerRuntime({
        config: { ...defaultNodeConfig(id, ids), ...(copyChunkBytesMax ? { copyChunkBytesMax } : {}) }, incarnation: 1, pages: timedPages(profile, id, pages), metadata: timedMetadata(profile, id, metadata),
        peers: timedPeers(profile, id, () => transport!), log,
      });
      transport = new PeerTransport({
        self: id, groupName: 'copy-bench', listen: { host: '127.0.0.1', port: peerPorts[id]! },
        peers: Object.fromEntries(ids.filter((other) => other !== id).map((other) => [other, { host: '127.0.0.1', port: peerPorts[other]! }])),
        onMessage: (from, message, data) => runtime.receive(from, message, data), log: () => undefined,
      });
      await transport.listen();
      runtime.start();
      runtimes.set(id, runtime);
      const own = transport;
      closers.push(async () => { runtime.stop(); await own.close(); await pages.close(); await metadata.close(); });
    }
    const s1 = runtimes.get('s1')!;
    const created = await s1.createVolume({ name: 'bench', pageCount, pageSizeBlocks, blockSizeBytes, piecesPerPage, servers: ['s1'] });
    if (!created.ok) throw new Error(created.message);
    for (let attempt = 0; !runtimes.get('s2')!.state.volumes['bench'] && attempt < 200; attempt += 1) await new Promise((resolve) => setTimeout(resolve, 10));
    const granuleBlocks = pageSizeBlocks / piecesPerPage;
    for (let page = 0; page < pageCount; page += 1) {
      for (let granule = 0; granule < piecesPerPage; granule += 1) {
        const reply = await s1.request({ kind: 'write', pageKey: { volume: 'bench', page }, offsetBlocks: granule * granuleBlocks, lengthBlocks: granuleBlocks, fua: false }, randomBytes(granuleBlocks * blockSizeBytes), 'bench');
        if (reply.outcome.status !== 'ok') throw new Error(`fill write failed: ${JSON.stringify(reply.outcome)}`);
      }
    }
    await s1.flush('bench', 'bench');
    profile.samples = [];
    const startedMs = performance.now();
    const cpuBefore = process.cpuUsage();
    let lastMoveStartedMs = startedMs;
    for (let page = 0; page < pageCount; page += 1) {
      lastMoveStartedMs = performance.now();
      const result = await s1.move({ volume: 'bench', page }, 's2', kind, movePieces);
      if (!result.ok) throw new Error(result.message);
      // Once s1 holds no move of the page: the flip durable and its copy released (its lazy cleanup commit may follow).
      await s1.moveFinished({ volume: 'bench', page });
    }
    const seconds = (performance.now() - startedMs) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    if (process.env['BENCH_TIMELINE']) {
      // The last move's calls in the order they started: the gaps between them are time spent outside storage and network calls.
      console.log(`\ntimeline of the last ${kind} move (ms from its admin request: start +duration):`);
      for (const sample of profile.samples.filter((candidate) => candidate.startMs >= lastMoveStartedMs)) {
        console.log(`  ${(sample.startMs - lastMoveStartedMs).toFixed(2).padStart(7)} +${sample.ms.toFixed(2).padStart(6)}  ${sample.server} ${sample.name}`);
      }
    }
    console.log(`\nin-process profile, ${kind} moves${movePieces ? ` of ${movePieces} pieces` : ''}: ${pageCount} pages of 4 MiB in ${seconds.toFixed(2)} s = ${((pageCount * pageBytes) / 2 ** 20 / seconds).toFixed(1)} MiB/s (${(seconds * 1000 / pageCount).toFixed(1)} ms per move, ${((cpu.user + cpu.system) / 1000 / pageCount).toFixed(1)} CPU ms per move on both servers (user ${(cpu.user / 1000 / pageCount).toFixed(1)})${copyChunkBytesMax ? `, copy chunks of ${copyChunkBytesMax} bytes` : ''})`);
    const groups = new Map<string, { count: number; ms: number; maxMs: number }>();
    for (const sample of profile.samples) {
      const key = `${sample.server} ${sample.name}`;
      const group = groups.get(key) ?? { count: 0, ms: 0, maxMs: 0 };
      groups.set(key, { count: group.count + 1, ms: group.ms + sample.ms, maxMs: Math.max(group.maxMs, sample.ms) });
    }
    console.log(`  ${'call'.padEnd(34)} ${'calls/move'.padStart(10)} ${'ms/move'.padStart(9)} ${'max ms'.padStart(8)}`);
    for (const [key, group] of [...groups].sort((a, b) => b[1].ms - a[1].ms)) {
      console.log(`  ${key.padEnd(34)} ${(group.count / pageCount).toFixed(1).padStart(10)} ${(group.ms / pageCount).toFixed(2).padStart(9)} ${group.maxMs.toFixed(2).padStart(8)}`);
    }
  } finally {
    for (const close of closers) await close().catch(() => undefined);
    rmSync(directory, { recursive: true, force: true });
  }
}

async function processRate(kind: MoveKind, movePieces: number | undefined): Promise<void> {
  const directory = mkdtempSync(join(tmpdir(), 'blockshift-copy-rate-'));
  // Every port of the group (base, +1000 peers, +2000 admin, +2100 balance) lies below 32768, outside Linux's range
  // for outgoing connections: at 40809 and 30809 an outgoing connection now and then held an admin port and a server
  // exited while starting (see impl/cluster-tests/cluster-fixture.ts for the tests' port plan).
  const group = new LocalGroup({ ...localGroupConfig(join(directory, 'data'), 2, 30_209), traceTransitions: false }, directory, { output: () => undefined });
  try {
    await group.startAll();
    await group.admin('s1', '/volumes', { name: 'bench', pageCount, servers: ['s1'], piecesPerPage });
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Filled through NBD would need a client here; a move of never-written pages still reads, sends, writes and syncs
    // 4 MiB (of zeros), so the copy path is the same.
    const startedMs = performance.now();
    for (let page = 0; page < pageCount; page += 1) {
      await group.admin('s1', '/moves', { volume: 'bench', page, to: 's2', kind, ...(movePieces ? { pieces: movePieces } : {}) });
      // Answered once s1 holds no move of the page (as bench:nbd waits): polling /status every 2 ms cost the servers a
      // status report per poll.
      await group.admin('s1', '/moves/wait', { volume: 'bench', page, waitMs: 4_000 });
    }
    const seconds = (performance.now() - startedMs) / 1000;
    console.log(`two server processes, ${kind} moves${movePieces ? ` of ${movePieces} pieces` : ''}, idle: ${pageCount} pages of 4 MiB in ${seconds.toFixed(2)} s = ${((pageCount * pageBytes) / 2 ** 20 / seconds).toFixed(1)} MiB/s`);
  } finally {
    await group.stopAll();
    rmSync(directory, { recursive: true, force: true });
  }
}

const mode = process.argv[2] ?? 'all';
if (mode === 'profile' || mode === 'all') {
  await profileMoves('unit', undefined);
  await profileMoves('piecewise', 4);
}
if (mode === 'rate' || mode === 'all') {
  await processRate('unit', undefined);
  await processRate('piecewise', 4);
  await processRate('piecewise', 16);
}
process.exit(0);
