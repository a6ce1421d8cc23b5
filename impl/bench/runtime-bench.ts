/**
 * `npm run bench:runtime`: the JavaScript cost of a 4 KiB request through a
 * whole server — NBD parsing and replies, the volume backend, the runtime and
 * its node steps, the peer wire codec — with no sockets and no disk, so the
 * figure is the request path's own CPU time, steady on a shared host where
 * `bench:nbd` swings with the load (the kernel's share, pwrite and socket
 * writes, is left out: it is what `bench:nbd` adds).
 *
 * Theory of operation. A client speaks NBD to a real `NbdConnection` over a
 * fake socket: after the handshake (structured replies, NBD_OPT_GO) it sends
 * `BENCH_BATCH` requests per "socket read" (one `data` event, 4 by default:
 * about what a server reads at once under fio QD16 on this host), and each
 * event-loop turn after that parses the replies written and sends as many
 * new requests as were answered, at most `queueDepth` in flight. Pages live
 * in memory and are written and read at once, as the page store does for an
 * open page file. Scenario "owner": the client talks to the page's owner.
 * Scenario "forwarded": it talks to a second server, whose peer messages go
 * through the real frame codec and reach the other runtime one turn later,
 * all frames of a turn in one chunk (as a socket read delivers them), inside
 * that runtime's `batch`, as `PeerTransport` hands them over. Every reply is
 * checked (magic, handle, no error), so a broken path cannot look fast. It
 * prints process CPU time per request (GC included), the best of
 * `BENCH_ROUNDS` rounds.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { PageKey, ServerId } from '../../machines/identifiers.js';
import { pageKeyText } from '../../machines/identifiers.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import { NbdConnection } from '../nbd/connection.js';
import {
  NBD_CMD_READ, NBD_CMD_WRITE, NBD_FLAG_C_FIXED_NEWSTYLE, NBD_FLAG_C_NO_ZEROES, NBD_OPTS_MAGIC, NBD_OPT_GO, NBD_OPT_STRUCTURED_REPLY,
  NBD_REQUEST_MAGIC, NBD_SIMPLE_REPLY_MAGIC, NBD_STRUCTURED_REPLY_MAGIC,
} from '../nbd/protocol-constants.js';
import { encodeGoData } from '../nbd/raw-client.js';
import { ReceiveQueue } from '../nbd/receive-queue.js';
import { encodePeerFrameParts, PeerFrameDecoder } from '../peer/peer-frame.js';
import type { PageData } from '../runtime/server-runtime.js';
import { ServerRuntime } from '../runtime/server-runtime.js';
import { VolumeBackend } from '../runtime/volume-backend.js';

const queueDepth = Number(process.env['BENCH_QD'] ?? 16);
const requestsPerRead = Number(process.env['BENCH_BATCH'] ?? 4);
const requestsMeasured = Number(process.env['BENCH_REQUESTS'] ?? 100_000);
const roundCount = Number(process.env['BENCH_ROUNDS'] ?? 3);
/** `BENCH_ONLY=owner` (or forwarded, randwrite, randread) narrows the run, e.g. to profile one path. */
const only = process.env['BENCH_ONLY'] ?? '';
const requestBytes = 4096;
const volumeName = 'local';
const pageCount = 16;
const pageSizeBlocks = 8192;
const blockSizeBytes = 512;
const volumeBytes = pageCount * pageSizeBlocks * blockSizeBytes;

/** Pages in memory, written and read at once (as the page store does for an open page file). */
function memoryPages(): PageData {
  const pages = new Map<string, Buffer>();
  const pageOf = (pageKey: PageKey): Buffer => {
    const key = pageKeyText(pageKey);
    let page = pages.get(key);
    if (page === undefined) pages.set(key, (page = Buffer.alloc(pageSizeBlocks * blockSizeBytes)));
    return page;
  };
  return {
    read: async (pageKey, offsetBlocks, lengthBlocks, blockBytes) => Buffer.from(pageOf(pageKey).subarray(offsetBlocks * blockBytes, (offsetBlocks + lengthBlocks) * blockBytes)),
    write: async (pageKey, offsetBlocks, data, blockBytes) => { data.copy(pageOf(pageKey), offsetBlocks * blockBytes); },
    readNow: (pageKey, offsetBlocks, lengthBlocks, blockBytes) => Buffer.from(pageOf(pageKey).subarray(offsetBlocks * blockBytes, (offsetBlocks + lengthBlocks) * blockBytes)),
    writeNow: (pageKey, offsetBlocks, data, blockBytes) => {
      data.copy(pageOf(pageKey), offsetBlocks * blockBytes);
      return true;
    },
    sync: async () => undefined,
    delete: async (pageKey) => { pages.delete(pageKeyText(pageKey)); },
  };
}

/**
 * The part of a `net.Socket` that `NbdConnection` uses. Writes between a cork
 * and its uncork are one "system call" (as Node's `writev`), and are counted.
 */
class FakeSocket extends EventEmitter {
  readonly written: Buffer[] = [];
  writeCalls = 0;
  #corked = 0;
  destroyed = false;
  writableNeedDrain = false;
  /** Callbacks of writes made while corked: a real socket calls them once the corked bytes are written out. */
  #written: Array<() => void> = [];
  setNoDelay(): this { return this; }
  setKeepAlive(): this { return this; }
  setTimeout(): this { return this; }
  pause(): this { return this; }
  resume(): this { return this; }
  cork(): void { this.#corked += 1; }
  uncork(): void {
    this.#corked -= 1;
    if (this.#corked !== 0) return;
    this.writeCalls += 1;
    const written = this.#written;
    this.#written = [];
    for (const callback of written) callback();
  }
  write(bytes: Buffer, callback?: () => void): boolean {
    this.written.push(bytes);
    if (this.#corked === 0) this.writeCalls += 1;
    if (callback && this.#corked > 0) this.#written.push(callback);
    else if (callback) process.nextTick(callback);
    return true;
  }
  end(): void { this.destroyed = true; }
  destroy(): void { this.destroyed = true; }
}

/** Runtimes that deliver each other's peer messages through the frame codec, one turn later, a turn's frames in one chunk. */
class LoopbackPeers {
  readonly #runtimes = new Map<ServerId, ServerRuntime>();
  readonly #pending = new Map<string, Buffer[]>();
  #scheduled = false;
  readonly #decoders = new Map<string, PeerFrameDecoder>();

  add(runtime: ServerRuntime): void {
    this.#runtimes.set(runtime.self, runtime);
  }

  sender(from: ServerId): { send(to: ServerId, message: PeerMessage, data: Buffer | null): void } {
    return {
      send: (to, message, data) => {
        const link = `${from}>${to}`;
        let frames = this.#pending.get(link);
        if (frames === undefined) this.#pending.set(link, (frames = []));
        frames.push(...encodePeerFrameParts({ kind: 'message', message }, data));
        if (!this.#scheduled) {
          this.#scheduled = true;
          setImmediate(() => this.#deliver());
        }
      },
    };
  }

  #deliver(): void {
    this.#scheduled = false;
    const pending = [...this.#pending];
    this.#pending.clear();
    for (const [link, parts] of pending) {
      const [from, to] = link.split('>') as [ServerId, ServerId];
      const runtime = this.#runtimes.get(to)!;
      let decoder = this.#decoders.get(link);
      if (decoder === undefined) this.#decoders.set(link, (decoder = new PeerFrameDecoder()));
      const chunk = Buffer.concat(parts);
      runtime.batch(() => {
        for (const frame of decoder.push(chunk)) {
          if (frame.envelope.kind !== 'message') throw new Error('unexpected hello');
          runtime.receive(from, frame.envelope.message, frame.data);
        }
      });
    }
  }
}

function newRuntime(self: ServerId, peers: LoopbackPeers): ServerRuntime {
  const runtime = new ServerRuntime({
    config: { ...defaultNodeConfig(self, ['s1', 's2']), traceTransitions: false },
    incarnation: 1,
    pages: memoryPages(),
    metadata: { load: () => ({ volumes: [], routes: [], replicas: [], moves: [] }), commit: async () => undefined },
    peers: peers.sender(self),
    log: () => undefined,
  });
  peers.add(runtime);
  runtime.start();
  return runtime;
}

function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function optionBytes(option: number, data: Buffer): Buffer {
  const bytes = Buffer.alloc(16 + data.length);
  bytes.writeBigUInt64BE(NBD_OPTS_MAGIC, 0);
  bytes.writeUInt32BE(option, 8);
  bytes.writeUInt32BE(data.length, 12);
  data.copy(bytes, 16);
  return bytes;
}

/** A client of one connection: sends requests, parses the replies written to its socket, checks each. */
class BenchClient {
  readonly #socket = new FakeSocket();
  readonly #replies = new ReceiveQueue();
  readonly #inFlight = new Map<bigint, number>();
  #nextHandle = 1n;
  #random = 1;
  readonly payload = Buffer.alloc(requestBytes, 0x5a);

  constructor(backend: VolumeBackend) {
    new NbdConnection(this.#socket as unknown as Socket, backend, () => undefined, 'bench').start();
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    this.#socket.emit('data', Buffer.concat([flags, optionBytes(NBD_OPT_STRUCTURED_REPLY, Buffer.alloc(0)), optionBytes(NBD_OPT_GO, encodeGoData(volumeName, []))]));
    this.#socket.written.length = 0;
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  get writeCalls(): number {
    return this.#socket.writeCalls;
  }

  /** Sends `count` requests in one socket read. */
  send(count: number, command: number): void {
    const parts: Buffer[] = [];
    for (let index = 0; index < count; index += 1) {
      const header = Buffer.alloc(28);
      header.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
      header.writeUInt16BE(command, 6);
      const handle = this.#nextHandle++;
      header.writeBigUInt64BE(handle, 8);
      // A deterministic pseudo-random 4 KiB-aligned offset.
      this.#random = (this.#random * 1_103_515_245 + 12_345) % 2 ** 31;
      header.writeBigUInt64BE(BigInt((this.#random % (volumeBytes / requestBytes)) * requestBytes), 16);
      header.writeUInt32BE(requestBytes, 24);
      parts.push(header);
      if (command === NBD_CMD_WRITE) parts.push(this.payload);
      this.#inFlight.set(handle, command);
    }
    this.#socket.emit('data', Buffer.concat(parts));
  }

  /** Parses the replies written so far; returns how many requests they answered. */
  collect(): number {
    for (const bytes of this.#socket.written) this.#replies.push(bytes);
    this.#socket.written.length = 0;
    let answered = 0;
    for (;;) {
      const magic = this.#replies.peek(4);
      if (magic === null) return answered;
      if (magic.readUInt32BE(0) === NBD_SIMPLE_REPLY_MAGIC) {
        const reply = this.#replies.take(16);
        if (reply === null) return answered;
        if (reply.readUInt32BE(4) !== 0) throw new Error(`request failed with errno ${reply.readUInt32BE(4)}`);
        this.#settle(reply.readBigUInt64BE(8), NBD_CMD_WRITE);
      } else if (magic.readUInt32BE(0) === NBD_STRUCTURED_REPLY_MAGIC) {
        const header = this.#replies.peek(20);
        if (header === null) return answered;
        const payloadBytes = header.readUInt32BE(16);
        const chunk = this.#replies.take(20 + payloadBytes);
        if (chunk === null) return answered;
        // One data chunk with the done flag: offset (8 bytes) then the 4 KiB read.
        if (chunk.readUInt16BE(4) !== 1 || payloadBytes !== 8 + requestBytes) throw new Error('unexpected structured reply');
        this.#settle(chunk.readBigUInt64BE(8), NBD_CMD_READ);
      } else {
        throw new Error('bad reply magic');
      }
      answered += 1;
    }
  }

  #settle(handle: bigint, command: number): void {
    if (this.#inFlight.get(handle) !== command) throw new Error(`reply to unknown handle ${handle}`);
    this.#inFlight.delete(handle);
  }
}

/** Runs `count` requests closed-loop; returns CPU µs per request and socket writes per request. */
async function run(client: BenchClient, command: number, count: number): Promise<{ cpuUs: number; writesPerRequest: number }> {
  const writesBefore = client.writeCalls;
  const before = process.cpuUsage();
  let sent = 0;
  let answered = 0;
  while (answered < count) {
    const room = Math.min(queueDepth - client.inFlight, count - sent);
    for (let left = room; left > 0; left -= requestsPerRead) client.send(Math.min(left, requestsPerRead), command);
    sent += Math.max(room, 0);
    await turn();
    answered += client.collect();
  }
  const spent = process.cpuUsage(before);
  return { cpuUs: (spent.user + spent.system) / count, writesPerRequest: (client.writeCalls - writesBefore) / count };
}

async function main(): Promise<void> {
  const peers = new LoopbackPeers();
  const owner = newRuntime('s1', peers);
  const forwarder = newRuntime('s2', peers);
  const created = await owner.createVolume({ name: volumeName, pageCount, pageSizeBlocks, blockSizeBytes, piecesPerPage: 4, servers: ['s1'] });
  if (!created.ok) throw new Error(created.message);
  // Until the forwarder knows the volume (pushed to it by the owner), its export does not exist.
  while (!forwarder.state.volumes[volumeName]) await turn();
  console.log(`runtime per 4 KiB request, no sockets or disk: QD${queueDepth}, ${requestsPerRead} requests per socket read, ${requestsMeasured} requests, best of ${roundCount} rounds, CPU µs per request (GC included)`);
  for (const [name, runtime] of [['owner', owner], ['forwarded', forwarder]] as const) {
    if (only !== '' && !only.includes(name) && ['owner', 'forwarded'].some((scenario) => only.includes(scenario))) continue;
    const client = new BenchClient(new VolumeBackend(runtime));
    for (const [label, command] of [['randwrite', NBD_CMD_WRITE], ['randread', NBD_CMD_READ]] as const) {
      if (only !== '' && !only.includes(label) && ['randwrite', 'randread'].some((job) => only.includes(job))) continue;
      await run(client, command, Math.min(20_000, requestsMeasured));
      const rounds: Array<{ cpuUs: number; writesPerRequest: number }> = [];
      for (let round = 0; round < roundCount; round += 1) rounds.push(await run(client, command, requestsMeasured));
      const best = rounds.reduce((a, b) => (b.cpuUs < a.cpuUs ? b : a));
      console.log(`${`${name} ${label}`.padEnd(20)} ${best.cpuUs.toFixed(1)} µs per request (rounds: ${rounds.map((r) => r.cpuUs.toFixed(1)).join(', ')}), ${best.writesPerRequest.toFixed(2)} client socket writes per request`);
    }
  }
  owner.stop();
  forwarder.stop();
}

await main();
