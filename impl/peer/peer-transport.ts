/**
 * TCP links between the servers of a group.
 *
 * Each server listens on its peer address and keeps one outbound connection
 * to every other server, opened lazily and reopened with exponential back-off
 * after a failure. A message to a peer is queued on that connection; the
 * queue is bounded in messages and bytes, and a message that does not fit is
 * dropped. Dropping is safe because the node treats the network as lossy:
 * every exchange that matters is retried by a timer (serve retries, forward
 * time-outs, move progress time-outs, flush retries). A connection opens with
 * a hello naming the sender and the group, so a stray client or a server of
 * another group is refused.
 *
 * Strangers. Anyone may connect to the peer port, so until a connection has
 * said a valid hello it is held to little: its first frame may be at most
 * `helloFrameBytesMax` (a hello is some 100 bytes; a peer frame may be 64 MiB),
 * it must say hello within `helloTimeoutMs`, and the name it gives must be a
 * current peer's own (a `Map` look-up: a plain object's `constructor` once
 * passed for a peer, and answering it crashed the server), never this
 * server's. The hello also names the server it is meant for, which must be
 * this one: with two peer addresses swapped in a config, each server took
 * the other's messages for its own. A connection says hello once; a second hello is refused. A
 * server that leaves the group (`setPeers`) loses its inbound connections as
 * well as its outbound link.
 *
 * Back-pressure. While a link is down its queue is bounded in messages and
 * bytes; once it is up, a message is dropped when the socket already holds
 * `queueBytesMax` unsent (a peer that stops reading, or one that lost power
 * while TCP still retransmits to it, would otherwise take the sender's memory
 * without bound). Drops are counted (`droppedMessages`).
 *
 * Dead hosts. Every connection has TCP keep-alive (`keepAliveMs`), so one to
 * a host that lost power is found dead and closed rather than kept for
 * ever, and a connection attempt that gets no answer is given up after
 * `connectTimeoutMs` (the system's SYN retries take some two minutes) and
 * retried at the back-off's pace.
 *
 * Back-off. The reconnect delay doubles on every connection that closes
 * before it has lasted `stableConnectionMs`, and starts over only after one
 * that did: a peer that accepts TCP but refuses the hello (another group or
 * version, a member it does not know yet) is retried at the back-off's pace,
 * not every `reconnectDelayMinMs`.
 *
 * Membership is dynamic: the runtime hands over the peer addresses of every
 * membership record the node adopts (`setPeers`), so a server learned at
 * runtime is connected to and its hello accepted, and a server that left is
 * disconnected and refused.
 *
 * Turns. The messages read from one connection are handed to the runtime at
 * most `framesPerTurnMax` at a time; past that the connection pauses and goes
 * on in the next turn, so the answers to the first ones leave (corked until the
 * next tick, see `writeFrame`) while the rest wait. An owner that took a
 * forwarder's whole batch at once answered it all at once, and the two
 * servers worked in lockstep, as the NBD front end's connections did (see
 * impl/nbd/connection.ts, "Pumps"). BENCH_QUICK=1 npm run bench:nbd, quiet
 * host, forwarded IOPS and p99 µs, two rounds each: unbounded 4k randwrite
 * 29,631 (3,555) and 29,270 (3,457), randread 29,962 (3,785) and 31,466
 * (3,457); four per turn 31,026 (3,064) and 29,422 (2,900), randread 32,242
 * (2,507) and 32,766 (2,343); two per turn lost a fifth of the IOPS.
 */
import net from 'node:net';
import type { ServerId } from '../../machines/identifiers.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import { encodePeerFrame, encodePeerFrameParts, PeerFrameDecoder } from './peer-frame.js';

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

export interface PeerTransportOptions {
  readonly self: ServerId;
  readonly groupName: string;
  readonly listen: PeerAddress;
  readonly peers: Readonly<Record<ServerId, PeerAddress>>;
  readonly onMessage: (from: ServerId, message: PeerMessage, data: Buffer | null) => void;
  /**
   * Optional: calls `body` once and returns its result. The messages decoded
   * from one socket read are handed to `onMessage` inside it, so the runtime
   * can step its node once for all of them (ServerRuntime.batch).
   */
  readonly batch?: <T>(body: () => T) => T;
  readonly log: (line: string) => void;
  readonly queueMessagesMax?: number;
  readonly queueBytesMax?: number;
  readonly reconnectDelayMinMs?: number;
  readonly reconnectDelayMaxMs?: number;
  /** Messages of one connection handed to the runtime in one event-loop turn (see "Turns"). */
  readonly framesPerTurnMax?: number;
  /** An inbound connection that has not said hello within this long is closed (see "Strangers"). */
  readonly helloTimeoutMs?: number;
  /** A connection that lasted this long counts as good: the reconnect delay starts over (see "Back-off"). */
  readonly stableConnectionMs?: number;
  /** A connection attempt unanswered this long is given up (see "Dead hosts"). */
  readonly connectTimeoutMs?: number;
  /** Idle time before TCP keep-alive probes start (see "Dead hosts"). */
  readonly keepAliveMs?: number;
}

/** The largest first frame of an inbound connection, which must be its hello (see "Strangers"). */
export const helloFrameBytesMax = 4 * 1024;

/** The default of `framesPerTurnMax`. */
export const peerFramesPerTurnMaxDefault = 4;

/** What `consume` is given to go on with the frames already read. */
const noBytes = Buffer.alloc(0);

interface QueuedFrame {
  readonly parts: Buffer[];
  readonly message: PeerMessage;
  readonly bytes: number;
}

interface OutboundLink {
  socket: net.Socket | null;
  connected: boolean;
  /** Frames waiting for the connection, each as its parts (header, then data uncopied), with the message it carries. */
  queue: QueuedFrame[];
  queuedBytes: number;
  reconnectDelayMs: number;
  reconnectTimer: NodeJS.Timeout | null;
  /** When the current connection opened (performance.now()), or null while there is none. */
  connectedAtMs: number | null;
}

export class PeerTransport {
  readonly #options: Required<PeerTransportOptions>;
  /** A Map, not a record: names come off the wire, and `constructor` is no peer (see "Strangers"). */
  #peers: ReadonlyMap<ServerId, PeerAddress>;
  readonly #links = new Map<ServerId, OutboundLink>();
  /** Inbound connections, each with the peer its hello named (null until then). */
  readonly #inbound = new Map<net.Socket, ServerId | null>();
  #server: net.Server | null = null;
  #closed = false;
  droppedMessages = 0;
  /** Messages withdrawn from a down link's queue (`withdrawQueued`). */
  withdrawnMessages = 0;
  /** How often each reason for closing an inbound connection has come up (bounded; see `#logClosed`). */
  readonly #closeReasonsSeen = new Map<string, number>();

  constructor(options: PeerTransportOptions) {
    this.#options = {
      queueMessagesMax: 10_000, queueBytesMax: 256 * 1024 * 1024, reconnectDelayMinMs: 50, reconnectDelayMaxMs: 2_000, batch: (body) => body(),
      framesPerTurnMax: peerFramesPerTurnMaxDefault, helloTimeoutMs: 5_000, stableConnectionMs: 2_000, connectTimeoutMs: 5_000, keepAliveMs: 10_000, ...options,
    };
    this.#peers = peerMap(options.peers);
    // Zero would pause every inbound connection for good, turn after turn.
    if (!(Number.isInteger(this.#options.framesPerTurnMax) && this.#options.framesPerTurnMax >= 1)) throw new Error(`framesPerTurnMax must be a whole number >= 1, not ${this.#options.framesPerTurnMax}`);
  }

  /**
   * Replaces the known peers: links to servers that left or moved are closed
   * (and reopened on the next send to a moved one), and so are the inbound
   * connections of servers that left.
   */
  setPeers(peers: Readonly<Record<ServerId, PeerAddress>>): void {
    const next = peerMap(peers);
    for (const [id, link] of this.#links) {
      const before = this.#peers.get(id);
      const after = next.get(id);
      if (after && before && after.host === before.host && after.port === before.port) continue;
      if (link.reconnectTimer) clearTimeout(link.reconnectTimer);
      this.#links.delete(id);
      link.socket?.destroy();
    }
    this.#peers = next;
    for (const [socket, from] of this.#inbound) if (from !== null && !next.has(from)) socket.destroy();
  }

  /**
   * Whether `to` can be reached now, as far as this transport knows: its link
   * is up, or none has been tried yet (nothing says otherwise). A link that
   * is down, reconnecting with back-off, says no.
   */
  isReachable(to: ServerId): boolean {
    const link = this.#links.get(to);
    return link === undefined || link.connected;
  }

  /** The port the listener is bound to (the configured one, or the one the system chose for port 0); null before `listen`. */
  get listeningPort(): number | null {
    const address = this.#server?.address();
    return typeof address === 'object' && address !== null ? address.port : null;
  }

  async listen(): Promise<void> {
    const server = net.createServer((socket) => this.#accept(socket));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#options.listen.port, this.#options.listen.host, () => resolve());
    });
    server.on('error', (error) => this.#options.log(`peer listener: ${error.message}`));
  }

  send(to: ServerId, message: PeerMessage, data: Buffer | null): void {
    if (this.#closed) return;
    const link = this.#link(to);
    if (!link) {
      this.#options.log(`peer ${to} is not in the group; dropped ${message.type}`);
      return;
    }
    const frame = encodePeerFrameParts({ kind: 'message', message }, data);
    const frameBytes = frame.reduce((sum, part) => sum + part.length, 0);
    if (link.connected && link.socket && link.queue.length === 0) {
      // Up: bounded by what the socket still holds unsent (see "Back-pressure").
      if (link.socket.writableLength + frameBytes > this.#options.queueBytesMax) {
        this.droppedMessages += 1;
        return;
      }
      writeFrame(link.socket, frame);
      return;
    }
    if (link.queue.length >= this.#options.queueMessagesMax || link.queuedBytes + frameBytes > this.#options.queueBytesMax) {
      this.droppedMessages += 1;
      return;
    }
    link.queue.push({ parts: frame, message, bytes: frameBytes });
    link.queuedBytes += frameBytes;
  }

  /**
   * Drops the messages still queued for links that are down which
   * `isWithdrawn` picks, and returns how many. The runtime withdraws a
   * forwarded request once it has answered it: kept, the forward would
   * reach the owner when its link came back, seconds after the client was
   * told EIO, and land over a write acknowledged since (a review's write,
   * failed while the owner was down, overwrote a later acknowledged one
   * after the owner's restart). Dropping is always allowed: the node treats
   * the network as lossy.
   */
  withdrawQueued(isWithdrawn: (message: PeerMessage, to: ServerId) => boolean): number {
    let withdrawn = 0;
    for (const [to, link] of this.#links) {
      if (link.queue.length === 0) continue;
      const kept = link.queue.filter((queued) => !isWithdrawn(queued.message, to));
      withdrawn += link.queue.length - kept.length;
      link.queue = kept;
      link.queuedBytes = kept.reduce((sum, queued) => sum + queued.bytes, 0);
    }
    this.withdrawnMessages += withdrawn;
    return withdrawn;
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const link of this.#links.values()) {
      if (link.reconnectTimer) clearTimeout(link.reconnectTimer);
      link.socket?.destroy();
    }
    for (const socket of this.#inbound.keys()) socket.destroy();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }

  #link(to: ServerId): OutboundLink | null {
    let link = this.#links.get(to);
    if (link) return link;
    if (!this.#peers.has(to)) return null;
    link = { socket: null, connected: false, queue: [], queuedBytes: 0, reconnectDelayMs: this.#options.reconnectDelayMinMs, reconnectTimer: null, connectedAtMs: null };
    this.#links.set(to, link);
    this.#connect(to, link);
    return link;
  }

  #connect(to: ServerId, link: OutboundLink): void {
    const address = this.#peers.get(to);
    if (this.#closed || !address || this.#links.get(to) !== link) return;
    const socket = net.connect({ host: address.host, port: address.port });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, this.#options.keepAliveMs);
    socket.setTimeout(this.#options.connectTimeoutMs, () => socket.destroy());
    link.socket = socket;
    socket.on('connect', () => {
      socket.setTimeout(0);
      link.connected = true;
      link.connectedAtMs = performance.now();
      socket.write(encodePeerFrame({ kind: 'hello', from: this.#options.self, to, group: this.#options.groupName }, null));
      for (const queued of link.queue) writeFrame(socket, queued.parts);
      link.queue = [];
      link.queuedBytes = 0;
    });
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      // Only a connection that lasted counts as good; one refused at its hello keeps the back-off growing.
      if (link.connectedAtMs !== null && performance.now() - link.connectedAtMs >= this.#options.stableConnectionMs) link.reconnectDelayMs = this.#options.reconnectDelayMinMs;
      link.connected = false;
      link.connectedAtMs = null;
      link.socket = null;
      // A link replaced or dropped by `setPeers` (or the transport closed) is not reopened.
      if (this.#closed || this.#links.get(to) !== link) return;
      link.reconnectTimer = setTimeout(() => {
        link.reconnectTimer = null;
        this.#connect(to, link);
      }, link.reconnectDelayMs);
      link.reconnectDelayMs = Math.min(link.reconnectDelayMs * 2, this.#options.reconnectDelayMaxMs);
    });
  }

  /**
   * Logs why an inbound connection was closed, at its 1st, 10th, 100th, ...
   * time: a server that keeps dialling with a hello that is refused (one the
   * group forgot, restarted) reconnects every couple of seconds, and logged
   * each time it flooded its peers' logs.
   */
  #logClosed(reason: string): void {
    if (this.#closeReasonsSeen.size >= closeReasonsCountedMax && !this.#closeReasonsSeen.has(reason)) this.#closeReasonsSeen.clear();
    const seen = (this.#closeReasonsSeen.get(reason) ?? 0) + 1;
    this.#closeReasonsSeen.set(reason, seen);
    if (Number.isInteger(Math.log10(seen))) this.#options.log(`peer connection closed: ${reason}${seen > 1 ? ` (${seen} times)` : ''}`);
  }

  #accept(socket: net.Socket): void {
    this.#inbound.set(socket, null);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, this.#options.keepAliveMs);
    const decoder = new PeerFrameDecoder(helloFrameBytesMax);
    let from: ServerId | null = null;
    const framesMax = this.#options.framesPerTurnMax;
    const helloTimer = setTimeout(() => {
      if (from !== null || socket.destroyed) return;
      this.#options.log(`peer connection closed: no hello within ${this.#options.helloTimeoutMs} ms`);
      socket.destroy();
    }, this.#options.helloTimeoutMs);
    // Hands over at most `framesMax` of the messages read so far; the rest wait, with the socket paused, for the next turn.
    const consume = (chunk: Buffer): void => {
      try {
        let count = 0;
        this.#options.batch(() => {
          for (const frame of decoder.push(chunk, framesMax)) {
            count += 1;
            if (frame.envelope.kind === 'hello') {
              const { from: named, to, group } = frame.envelope;
              if (from !== null) throw new Error(`a second hello on ${from}'s connection (naming ${named}) refused`);
              if (group !== this.#options.groupName || named === this.#options.self || !this.#peers.has(named)) throw new Error(`hello from ${named} of group ${group} refused`);
              // Its messages are meant for `to`: acting on them here (a swapped or stale address) would answer for another server.
              if (to !== this.#options.self) throw new Error(`hello from ${named} meant for ${to} refused: this is ${this.#options.self} (is ${to}'s peer address in ${named}'s config this server's?)`);
              from = named;
              this.#inbound.set(socket, named);
              clearTimeout(helloTimer);
              continue;
            }
            if (from === null) throw new Error('a peer spoke before saying hello');
            this.#options.onMessage(from, frame.envelope.message, frame.data);
          }
        });
        if (count >= framesMax) {
          socket.pause();
          setImmediate(() => {
            if (!socket.destroyed && !this.#closed) consume(noBytes);
          });
        } else socket.resume();
      } catch (error) {
        this.#logClosed((error as Error).message);
        socket.destroy();
      }
    };
    socket.on('data', consume);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(helloTimer);
      this.#inbound.delete(socket);
    });
  }
}

/** At most this many distinct reasons are counted; past it the counts start over. */
const closeReasonsCountedMax = 256;

function peerMap(peers: Readonly<Record<ServerId, PeerAddress>>): Map<ServerId, PeerAddress> {
  return new Map(Object.entries(peers));
}

/**
 * Writes a frame's parts (header, then data as it is, never joined to it).
 * Frames written to one socket in the same event-loop turn leave in one
 * `writev` instead of one system call each: the socket is corked at the
 * first write of a turn and uncorked on the next tick (the pattern Node's
 * documentation gives for `cork`). A turn that handles a batch of client
 * requests then forwards them together.
 */
const corkedSockets = new WeakSet<net.Socket>();
function writeFrame(socket: net.Socket, parts: readonly Buffer[]): void {
  if (!corkedSockets.has(socket)) {
    corkedSockets.add(socket);
    socket.cork();
    process.nextTick(() => {
      corkedSockets.delete(socket);
      socket.uncork();
    });
  }
  for (const part of parts) socket.write(part);
}
