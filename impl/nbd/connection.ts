/**
 * One client connection: the runtime that feeds socket bytes to the
 * handshake machine and the transmission parser, runs backend calls, and
 * writes their replies.
 *
 * Theory of operation. A connection moves through four phases:
 *
 * - `handshake`: bytes go to `Handshake.consume`, whose actions are
 *   performed in order. A handshake that stalls is cut off by a timer.
 * - `transmission`: the parser reads one request at a time. Each accepted
 *   request becomes a backend call whose promise replies when it settles, so
 *   replies leave in completion order, not request order, exactly as the
 *   protocol allows. Nothing orders writes against each other here: that is
 *   the backend's business.
 * - `draining`: after NBD_CMD_DISC no more bytes are read; the connection
 *   ends once every in-flight request has replied. A client that closes its
 *   sending side (libnbd shuts down its write half right after NBD_CMD_DISC)
 *   drains the same way once the requests it sent before are parsed: the
 *   server socket is half-open (`allowHalfOpen`, impl/nbd/nbd-server.ts), so
 *   the replies still reach it. Node's default ended the socket at the
 *   client's FIN, and the replies to requests in flight were lost (the spec:
 *   the server "MUST handle all outstanding requests"; a review found it).
 * - `closed`: the socket is gone; late backend completions are dropped.
 *
 * Bounds. Reading stops (the socket is paused) while the connection has
 * `inFlightRequestsMax` requests or `inFlightBytesMax` bytes of read and
 * write payload in flight (a read's bytes count until its reply has left the
 * process; a WRITE_ZEROES, written a maximum payload at a time, counts as one), while the server's payload budget for all connections is spent
 * (payload-budget.ts), or while the socket's send buffer is full because
 * the client does not read its replies; it resumes when the cause clears. A
 * client that reads none of its replies for `replyStallTimeoutMs` is
 * disconnected, which frees what they held (a review's client that sent 64
 * reads of 24 MiB and read nothing made a server hold 264 MiB per connection,
 * with nothing bounding the sum).
 * With the socket paused, the receive queue holds at most what was already
 * delivered, and a WRITE payload is buffered only up to the export's
 * maximum payload. Every parse and every action runs inside one try/catch,
 * so no byte sequence from a client can throw out of this class: the worst
 * a client can do is have its own connection closed.
 *
 * Pumps. A pump (after a socket read, a reply, or a drain) acts on at most
 * `requestsPerPumpMax` requests; if more bytes are queued, the connection
 * pauses its socket and pumps again in the next turn. The replies and the
 * forwards to other servers that those requests caused leave in between
 * (each socket is corked until the next tick, see `send`), so the next
 * server in line starts on them while this one parses the rest. Acting on a
 * client's whole queue depth at once made a forwarding server and the owner
 * work in lockstep, each idle while the other handled the batch: 4k random
 * writes at QD16 forwarded ran at 0.44-0.53 of the owner's rate, and 0.64-0.69
 * with four requests per pump (README, "Limits"). The bound is per pump, not
 * per turn: a reply settled in a turn pumps again and may take four more.
 * Counting per turn instead (BENCH_QUICK=1 npm run bench:nbd, two rounds
 * each) cut the owner's 4k random writes to 39,550 and 40,223 IOPS with 4 per
 * turn, 44,684 and 46,367 with 8, against 47,901-53,803 per pump, and
 * forwarded ones gained nothing.
 */
import type { Socket } from 'node:net';
import { Handshake, encodeGreeting, type HandshakeAction, type HandshakeLimits, type NegotiatedExport, DEFAULT_HANDSHAKE_LIMITS } from './handshake.js';
import type { NbdBackend } from './nbd-backend.js';
import { NbdError } from './nbd-error.js';
import {
  NBD_CMD_DISC,
  NBD_CMD_FLUSH,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_EINVAL,
  NBD_EIO,
  NBD_ESHUTDOWN,
  NBD_REQUEST_HEADER_BYTES,
} from './protocol-constants.js';
import { assert } from '../../machines/identifiers.js';
import { PayloadBudget } from './payload-budget.js';
import { ReceiveQueue } from './receive-queue.js';
import {
  checkRequest,
  encodeReply,
  parseRequestHeader,
  payloadDisposition,
  type AcceptedRequest,
  type RequestHeader,
  type RequestOutcome,
} from './transmission.js';

export interface ConnectionLimits {
  handshake: HandshakeLimits;
  /**
   * A client that has not finished negotiating this long after it connected
   * is disconnected, however many bytes it trickles in meanwhile (an idle
   * time-out, reset by every byte, let a client that sent one byte every 20 s
   * keep its slot for ever; a review held all 256 slots of a server that way).
   */
  handshakeTimeoutMs: number;
  /**
   * Idle time before TCP keep-alive probes start: a client whose host vanished
   * without a FIN or a reset is found dead and its slot (and any replies
   * queued for it) freed, instead of kept for ever. Only the idle time can be
   * set from Node: the probes then follow the system's interval and count
   * (Linux: 75 s, 9 probes), so such a client is found after some 12 minutes;
   * one whose replies back up meanwhile is closed sooner by the reply stall.
   */
  keepAliveMs: number;
  inFlightRequestsMax: number;
  /**
   * Sum of the read lengths and write payloads of this connection's requests
   * from their acceptance until their replies have left the process (a read's
   * data counts until the socket has handed it to the kernel, so a client that
   * stops reading its replies holds at most this much and one more request).
   */
  inFlightBytesMax: number;
  /**
   * A client that reads none of its replies for this long while some wait to
   * be sent is disconnected, and the memory they hold (in this connection's
   * share and in the server's payload budget) is freed (see `armReplyStall`
   * for what counts as reading).
   */
  replyStallTimeoutMs: number;
  /**
   * A WRITE whose payload stops arriving for this long is given up and the
   * connection closed: its payload's bytes are taken from the server's budget
   * as soon as its header is read (a review's clients sent 32 MiB headers and
   * all but one byte of each, and the server held 256 MiB for eight of them,
   * uncounted and with no end).
   */
  payloadStallTimeoutMs: number;
  /**
   * A closing connection's last replies (to the requests sent before NBD_CMD_DISC, or before the client closed its
   * side) must be read by `replyStallTimeoutMs` plus their size at this rate, or the client is cut off.
   */
  lastRepliesBytesPerSecondMin: number;
  /** After the server half-closes, a client that keeps its half open is cut off after this long. */
  lingerMs: number;
  /** Requests one pump acts on before the connection yields to the next turn (see "Pumps"). */
  requestsPerPumpMax: number;
}

/**
 * The slowest a WRITE's payload may arrive on average: a payload must be in
 * within the stall time-out plus its length at this rate (a 32 MiB payload:
 * 30 s + 128 s), so a client trickling bytes cannot hold its share of the
 * budget for ever.
 */
export const payloadBytesPerSecondMin = 256 * 1024;

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  handshake: DEFAULT_HANDSHAKE_LIMITS,
  handshakeTimeoutMs: 30_000,
  keepAliveMs: 30_000,
  inFlightRequestsMax: 64,
  inFlightBytesMax: 64 * 1024 * 1024,
  replyStallTimeoutMs: 120_000,
  payloadStallTimeoutMs: 30_000,
  lastRepliesBytesPerSecondMin: payloadBytesPerSecondMin,
  lingerMs: 5_000,
  requestsPerPumpMax: 4,
};

type Phase = 'handshake' | 'transmission' | 'draining' | 'closed';

type ParserState =
  | { name: 'header' }
  /** `reservedBytes`: the payload's bytes, taken from this connection's share and the budget when the header was read. */
  | { name: 'payload'; header: RequestHeader; reservedBytes: number }
  | { name: 'discard'; header: RequestHeader; remainingBytes: number };

export class NbdConnection {
  private phase: Phase = 'handshake';
  private readonly queue = new ReceiveQueue();
  private readonly handshake: Handshake;
  private negotiated: NegotiatedExport | null = null;
  private parser: ParserState = { name: 'header' };
  private inFlightRequests = 0;
  private inFlightBytes = 0;
  private pumping = false;
  /** Requests acted on in the current pump; at `requestsPerPumpMax` the pump yields to the next turn. */
  private requestsThisPump = 0;
  /** Whether a pump is scheduled for the next turn (the socket is paused until it runs). */
  private pumpScheduled = false;
  /** Whether the socket is corked until the next tick (see `send`). */
  private corked = false;
  /** Whether the client has closed its sending side: nothing more will be read beyond what is queued. */
  private peerEnded = false;
  /** Whether the server is stopping (`shutdown`): the connection closes once its replies are written. */
  private stopping = false;
  /** Set by `shutdown` while it answers the requests already received with NBD_ESHUTDOWN. */
  private refusingForShutdown = false;
  /** Ends a handshake not finished in time (see `handshakeTimeoutMs`); cleared once transmission starts or the socket closes. */
  private handshakeDeadline: NodeJS.Timeout | null = null;
  /** Runs while replies wait for a client that may not read them (see `replyStallTimeoutMs`); cleared by 'drain'. */
  private replyStall: NodeJS.Timeout | null = null;
  /** Read replies written out so far: the reply stall check's measure of progress. */
  private readRepliesWrittenOut = 0;
  /** Runs while a WRITE's payload is awaited (see `payloadStallTimeoutMs`). */
  private payloadStall: NodeJS.Timeout | null = null;
  /** The costs of read replies sent but not yet written out, oldest first from `readRepliesUnwrittenHead`. */
  private readonly readRepliesUnwritten: number[] = [];
  private readRepliesUnwrittenHead = 0;
  /** Pumps again once the server's payload budget has room; registered only while waiting for it. */
  private readonly wakeForRoom = (): void => this.pump();

  constructor(
    private readonly socket: Socket,
    private readonly backend: NbdBackend,
    private readonly log: (line: string) => void,
    private readonly label: string,
    private readonly limits: ConnectionLimits = DEFAULT_CONNECTION_LIMITS,
    /** Shared by every connection of the server (payload-budget.ts); by default this connection's own, bounded by its limit alone. */
    private readonly budget: PayloadBudget = new PayloadBudget(Number.POSITIVE_INFINITY),
  ) {
    this.handshake = new Handshake(backend, limits.handshake);
  }

  start(): void {
    const socket = this.socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, this.limits.keepAliveMs);
    this.handshakeDeadline = setTimeout(() => {
      this.handshakeDeadline = null;
      if (this.phase === 'handshake') this.hardClose(`handshake not finished within ${this.limits.handshakeTimeoutMs} ms`);
    }, this.limits.handshakeTimeoutMs);
    this.handshakeDeadline.unref();
    socket.on('data', (chunk: Buffer) => {
      if (this.phase !== 'handshake' && this.phase !== 'transmission') return;
      this.queue.push(chunk);
      this.pump();
    });
    socket.on('drain', () => {
      this.clearReplyStall();
      this.pump();
    });
    socket.on('end', () => {
      this.peerEnded = true;
      this.pump();
    });
    socket.on('error', (error: Error) => this.log(`nbd ${this.label}: socket error: ${error.message}`));
    socket.on('close', () => {
      this.clearHandshakeDeadline();
      this.clearReplyStall();
      this.dropPartialPayload();
      this.budget.stopWaiting(this.wakeForRoom);
      if (this.phase !== 'closed') this.log(`nbd ${this.label}: closed by peer`);
      this.phase = 'closed';
      this.queue.clear();
      // Once the socket is gone for good, whichever side closed it; requests still in the backend may yet complete.
      // An error thrown here would escape to the process (no caller catches an event listener's): it is logged.
      try {
        this.backend.connectionClosed?.(this.label);
      } catch (error) {
        this.log(`nbd ${this.label}: backend failed to forget the connection: ${error instanceof Error ? error.message : String(error)}`);
      }
    });
    socket.write(encodeGreeting());
  }

  private clearReplyStall(): void {
    if (this.replyStall !== null) clearTimeout(this.replyStall);
    this.replyStall = null;
  }

  /**
   * Checks every `replyStallTimeoutMs`, while replies wait to be written, that
   * some have been written out since the last check: a client that reads
   * slowly but steadily keeps its connection (a review's client reading
   * 3 MiB/s was cut off when only an empty send buffer counted as progress).
   * Progress is seen a write at a time, and the replies of one turn, or those
   * queued behind a write under way, leave as one: so a client is cut off if
   * a whole window of replies (this connection's share, 64 MiB) takes it
   * longer than the time-out to read, i.e. below about 0.5 MiB/s with a full
   * window. The kernel's progress inside a write is not visible from Node
   * (libuv's write queue size is updated only when a write ends).
   */
  private armReplyStall(): void {
    const writtenAtArming = this.readRepliesWrittenOut;
    this.replyStall = setTimeout(() => {
      this.replyStall = null;
      if (this.phase === 'closed' || this.socket.writableLength === 0) return;
      if (this.readRepliesWrittenOut !== writtenAtArming) return this.armReplyStall();
      this.hardClose(`the client read none of its replies for ${this.limits.replyStallTimeoutMs} ms (${this.socket.writableLength} bytes waiting)`);
    }, this.limits.replyStallTimeoutMs);
    this.replyStall.unref();
  }

  /**
   * Closes the connection if a WRITE's payload gets no byte further for
   * `payloadStallTimeoutMs`, or is not all in by `deadlineMs`. The verdict
   * waits for the I/O of the turn the timer fires in (`setImmediate` runs
   * after the poll phase): an event loop held up (a long pause, a loaded
   * host) runs its due timers before it reads what arrived meanwhile, and
   * closed connections whose bytes were waiting in the socket as stalled
   * (a CI run: 25 bytes, then "no further for 1000 ms" although the client
   * had written on).
   */
  private armPayloadStall(deadlineMs: number): void {
    const queuedAtArming = this.queue.lengthBytes;
    const parserAtArming = this.parser;
    this.payloadStall = setTimeout(() => {
      this.payloadStall = null;
      setImmediate(() => {
        // The payload armed for is gone (read, dropped, or the connection closed): nothing to judge.
        if (this.phase === 'closed' || this.parser !== parserAtArming || this.parser.name !== 'payload' || this.payloadStall !== null) return;
        const late = performance.now() >= deadlineMs;
        if (!late && this.queue.lengthBytes !== queuedAtArming) return this.armPayloadStall(deadlineMs);
        this.hardClose(late
          ? `a WRITE's payload took longer than its deadline (${this.queue.lengthBytes} of ${this.parser.header.lengthBytes} bytes; ${payloadBytesPerSecondMin / 1024} KiB/s at the least)`
          : `a WRITE's payload got no further for ${this.limits.payloadStallTimeoutMs} ms (${this.queue.lengthBytes} of ${this.parser.header.lengthBytes} bytes)`);
      });
    }, Math.max(1, Math.min(this.limits.payloadStallTimeoutMs, deadlineMs - performance.now())));
    this.payloadStall.unref();
  }

  /** A WRITE whose payload will not be read (the connection closes or drains): its reserved bytes go back. */
  private dropPartialPayload(): void {
    if (this.payloadStall !== null) clearTimeout(this.payloadStall);
    this.payloadStall = null;
    if (this.parser.name !== 'payload') return;
    const { reservedBytes } = this.parser;
    this.parser = { name: 'header' };
    this.givePayloadBack(reservedBytes);
  }

  private clearHandshakeDeadline(): void {
    if (this.handshakeDeadline !== null) clearTimeout(this.handshakeDeadline);
    this.handshakeDeadline = null;
  }

  /** Closes the connection at once. */
  destroy(): void {
    this.hardClose('server closing');
  }

  /**
   * Server shutdown: no more requests are read, the ones in flight are
   * answered (for at most `graceMs`, then the connection is cut), and the
   * connection closes as soon as their replies are written. A handshake that
   * has reached its options answers every option from now on with
   * NBD_REP_ERR_SHUTDOWN (handshake.ts) until the client leaves or `graceMs`
   * runs out; one that has not (no client flags yet) is cut at once.
   */
  shutdown(graceMs: number): void {
    if (this.phase === 'closed') return;
    if (this.phase === 'handshake') {
      if (!this.handshake.isInOptions) return this.hardClose('server stopping');
      this.stopping = true;
      this.handshake.refuseForShutdown();
      this.log(`nbd ${this.label}: server stopping during the handshake; answering options with NBD_REP_ERR_SHUTDOWN for up to ${graceMs} ms`);
      setTimeout(() => this.hardClose('server stopping during the handshake'), graceMs).unref();
      // Options already received are answered now; later ones as they come.
      try {
        this.parseAll();
      } catch (error) {
        this.hardClose(`internal error: ${error instanceof Error ? error.message : String(error)}`);
      }
      return;
    }
    this.stopping = true;
    if (this.phase === 'transmission') {
      // Requests already received but not yet acted on are answered NBD_ESHUTDOWN (the spec's SHOULD for requests
      // after the server began to terminate the transmission phase) instead of left without a reply: a review's client
      // with 300 reads pipelined got 20 answers and then a bare close. Bounded by what has been received; nothing more is read.
      this.refusingForShutdown = true;
      try {
        // What Node has read from the socket but not handed over (a paused socket keeps it) joins the queue first: each
        // read() emits it to the 'data' listener (a review found 1,184 requests left there without a reply).
        while (this.phase === 'transmission' && this.socket.read() !== null) { /* queued by the 'data' listener */ }
        while (this.phase === 'transmission' && this.parseOne()) { /* each parsed request is answered ESHUTDOWN in dispatch */ }
      } catch (error) {
        return this.hardClose(`internal error: ${error instanceof Error ? error.message : String(error)}`);
      }
      // A bad request magic among them closed the connection (the parser's narrowing cannot see that).
      if ((this.phase as Phase) === 'closed') return;
      this.phase = 'draining';
      this.queue.clear();
      this.socket.pause();
    }
    if (this.inFlightRequests === 0) return this.softClose('server stopping');
    this.log(`nbd ${this.label}: server stopping; answering the ${this.inFlightRequests} requests in flight`);
    setTimeout(() => this.hardClose(`server stopping with ${this.inFlightRequests} requests still in flight after ${graceMs} ms`), graceMs).unref();
  }

  private hardClose(reason: string): void {
    if (this.phase === 'closed') return;
    this.log(`nbd ${this.label}: disconnecting: ${reason}`);
    this.phase = 'closed';
    this.queue.clear();
    this.socket.destroy();
  }

  /**
   * Ends after the queued replies are flushed; a client that never closes its
   * half is cut off `lingerMs` after they are (after the FIN left), one that
   * has not read them by a deadline (`replyStallTimeoutMs`, plus the time they
   * take at `lastRepliesBytesPerSecondMin`) is cut off then, and a stopping server
   * does not wait for the client at all once the replies are written, nor
   * longer than `lingerMs` for them to be. (The linger used to start at once:
   * a review's client that read the replies to eight 4 MiB reads sent before
   * its NBD_CMD_DISC a second late got none of them, destroyed in the send
   * buffer. A deadline rather than a check for progress: the replies of one
   * turn leave in one `writev`, whose progress Node shows only once it is all
   * written, so a client reading steadily looked stalled.)
   */
  private softClose(reason: string): void {
    if (this.phase === 'closed') return;
    this.log(`nbd ${this.label}: closing: ${reason}`);
    this.phase = 'closed';
    this.queue.clear();
    const linger = (): void => { setTimeout(() => this.socket.destroy(), this.limits.lingerMs).unref(); };
    if (this.stopping) {
      this.socket.end(() => this.socket.destroy());
      linger();
      return;
    }
    this.socket.end(linger);
    const waitingBytes = this.socket.writableLength;
    const flushDeadlineMs = this.limits.replyStallTimeoutMs + (waitingBytes / this.limits.lastRepliesBytesPerSecondMin) * 1000;
    setTimeout(() => {
      if (this.socket.destroyed || this.socket.writableLength === 0) return;
      this.log(`nbd ${this.label}: the client did not read its last replies within ${Math.round(flushDeadlineMs)} ms (${this.socket.writableLength} of ${waitingBytes} bytes still waiting); cutting it off`);
      this.socket.destroy();
    }, flushDeadlineMs).unref();
  }

  /**
   * Replies written in the same event-loop turn leave in one `writev`: the
   * socket is corked at the first write of a turn and uncorked on the next
   * tick, so a batch of requests completed together costs one system call.
   */
  private send(buffers: Buffer[], onWritten?: () => void): void {
    if (this.phase === 'closed' || this.socket.destroyed) {
      onWritten?.();
      return;
    }
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    // The callback runs once the bytes are handed to the kernel, or with an error once the socket is gone: either way once.
    const last = buffers.length - 1;
    for (let index = 0; index < last; index += 1) this.socket.write(buffers[index]!);
    if (last >= 0) this.socket.write(buffers[last]!, onWritten);
    if (this.socket.writableNeedDrain && this.replyStall === null && this.phase !== 'handshake') this.armReplyStall();
  }

  /**
   * Whether the parser may go on: always within a request already begun (a
   * WRITE's payload, whose bytes were taken when its header was read, or one
   * being discarded), else only while the flow bounds allow a new request.
   */
  private mayParse(): boolean {
    return this.parser.name !== 'header' || this.newRequestHold() === 'none';
  }

  /** What holds a new request back: nothing, this connection's own bounds, or the server's budget (see below). */
  private newRequestHold(): 'none' | 'ownBounds' | 'budget' {
    if (this.inFlightRequests >= this.limits.inFlightRequestsMax || this.inFlightBytes >= this.limits.inFlightBytesMax || this.socket.writableNeedDrain) return 'ownBounds';
    if (this.budget.admits(this.wakeForRoom)) return 'none';
    // Queued, to be woken at its turn with room left (payload-budget.ts, "Fairness"), only with a request to take: one
    // without would pass its turn and queue again at once, and two such connections woke each other for ever in
    // microtasks, with the event loop held (found by this change's own test).
    if (this.queue.lengthBytes >= NBD_REQUEST_HEADER_BYTES) this.budget.wait(this.wakeForRoom);
    return 'budget';
  }

  /**
   * Parses and acts on as many queued bytes as the flow bounds allow, then
   * pauses or resumes the socket. The requests parsed in one pass go to the
   * backend inside one `batch`, so a backend can take them together.
   */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      if (this.backend.batch) this.backend.batch(this.parseAll);
      else this.parseAll();
    } catch (error) {
      this.hardClose(`internal error: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      this.pumping = false;
    }
    // Admitted by the budget but took nothing (no whole request queued, or held by its own bounds): the next one's turn.
    this.budget.passTurn(this.wakeForRoom);
    if (this.phase === 'closed' || this.socket.destroyed) return;
    if (this.phase === 'transmission' && this.requestsThisPump >= this.limits.requestsPerPumpMax && this.queue.lengthBytes > 0) {
      // The rest of the queue waits for the next turn, and reading waits with it, so a client sending faster than this
      // connection acts cannot grow the queue.
      this.socket.pause();
      if (!this.pumpScheduled) {
        this.pumpScheduled = true;
        setImmediate(() => {
          this.pumpScheduled = false;
          this.pump();
        });
      }
      return;
    }
    if (this.peerEnded) return this.afterPeerEnded();
    // Held by the budget alone, a connection reads on until a whole request header is queued: woken at its turn, it
    // must find its request there (paused with the header still in the socket, it passed its turn at every wake-up and
    // never read it). At most one socket read (64 KiB) more.
    const hold = this.phase === 'transmission' && this.parser.name === 'header' ? this.newRequestHold() : 'none';
    if (hold === 'ownBounds' || (hold === 'budget' && this.queue.lengthBytes >= NBD_REQUEST_HEADER_BYTES)) this.socket.pause();
    else if (this.phase === 'handshake' && this.socket.writableNeedDrain) this.socket.pause();
    else if (this.phase === 'handshake' || this.phase === 'transmission') this.socket.resume();
  }

  /**
   * The client sends nothing more. Once every complete request it sent is
   * parsed (the flow bounds may hold some back until replies free them), the
   * connection drains: what is left in the queue is a request cut short.
   */
  private afterPeerEnded(): void {
    if (this.phase === 'handshake') return this.softClose('client closed its side during the handshake');
    if (this.phase !== 'transmission') return;
    // Requests still to parse wait for the flow bounds to let them through; with no whole request left (nothing, or a
    // header cut short) there is nothing to wait for, whatever the budget says (a review's client that sent a FIN while
    // others held the budget was never closed: it waited for a turn that only a whole request would give it).
    const requestQueued = this.parser.name !== 'header' || this.queue.lengthBytes >= NBD_REQUEST_HEADER_BYTES;
    if (requestQueued && !this.mayParse()) return;
    if (this.inFlightRequests > 0 || this.queue.lengthBytes > 0) this.log(`nbd ${this.label}: client closed its side; answering the ${this.inFlightRequests} requests in flight`);
    this.phase = 'draining';
    // A WRITE cut short by the close is never dispatched.
    this.dropPartialPayload();
    this.queue.clear();
    if (this.inFlightRequests === 0) this.softClose('client closed its side');
  }

  private readonly parseAll = (): void => {
    this.requestsThisPump = 0;
    for (;;) {
      if (this.phase === 'handshake') {
        // An option's replies the client has not read hold its next option back: a review's client pipelined 255
        // NBD_OPT_LISTs and read nothing, and the server generated every list into its send buffer (107 MB for 4 KiB).
        if (this.socket.writableNeedDrain) break;
        const actions = this.handshake.consumeOne(this.queue);
        if (actions === null) break;
        this.performHandshakeActions(actions);
        continue;
      }
      if (this.phase !== 'transmission' || !this.mayParse() || this.requestsThisPump >= this.limits.requestsPerPumpMax) break;
      if (!this.parseOne()) break;
    }
  };

  private performHandshakeActions(actions: HandshakeAction[]): void {
    for (const action of actions) {
      switch (action.type) {
        case 'send':
          this.send([action.bytes]);
          break;
        case 'transmission.start':
          this.negotiated = action.negotiated;
          this.phase = 'transmission';
          this.clearHandshakeDeadline();
          this.log(
            `nbd ${this.label}: export ${JSON.stringify(action.negotiated.exportInfo.name)} ` +
              `(${action.negotiated.structuredReplies ? 'structured' : 'simple'} replies)`,
          );
          break;
        case 'close':
          this.softClose(action.reason);
          break;
        default:
          assertNever(action);
      }
    }
  }

  /** Advances the request parser by one step; returns false when more bytes are needed. */
  private parseOne(): boolean {
    const negotiated = this.negotiated;
    if (negotiated === null) throw new Error('transmission without a negotiated export');
    const parser = this.parser;
    switch (parser.name) {
      case 'header': {
        const bytes = this.queue.take(NBD_REQUEST_HEADER_BYTES);
        if (bytes === null) return false;
        const header = parseRequestHeader(bytes);
        if (header === null) {
          this.hardClose('bad request magic');
          return false;
        }
        if (header.type === NBD_CMD_DISC) {
          this.beginDraining();
          return false;
        }
        switch (payloadDisposition(header, negotiated)) {
          case 'none':
            this.dispatch(header, undefined);
            return true;
          case 'buffer':
            // The payload's bytes are taken now, before they are buffered as they arrive (payload-budget.ts).
            this.inFlightBytes += header.lengthBytes;
            this.budget.take(this.wakeForRoom, header.lengthBytes);
            this.parser = { name: 'payload', header, reservedBytes: header.lengthBytes };
            // Progress alone is not enough: a byte every so often would hold the payload's bytes for ever (a review).
            this.armPayloadStall(performance.now() + this.limits.payloadStallTimeoutMs + (header.lengthBytes / payloadBytesPerSecondMin) * 1000);
            return true;
          case 'discard':
            this.parser = { name: 'discard', header, remainingBytes: header.lengthBytes };
            return true;
          case 'disconnect':
            this.hardClose(`write of ${header.lengthBytes} bytes is far beyond the maximum payload`);
            return false;
        }
        return false;
      }
      case 'payload': {
        const payload = this.queue.take(parser.header.lengthBytes);
        if (payload === null) return false;
        this.parser = { name: 'header' };
        if (this.payloadStall !== null) clearTimeout(this.payloadStall);
        this.payloadStall = null;
        this.dispatch(parser.header, payload, parser.reservedBytes);
        return true;
      }
      case 'discard': {
        const remainingBytes = parser.remainingBytes - this.queue.skip(parser.remainingBytes);
        if (remainingBytes > 0) {
          this.parser = { ...parser, remainingBytes };
          return false;
        }
        this.parser = { name: 'header' };
        this.dispatch(parser.header, undefined);
        return true;
      }
    }
  }

  private beginDraining(): void {
    this.phase = 'draining';
    this.dropPartialPayload();
    this.queue.clear();
    this.socket.pause();
    if (this.inFlightRequests === 0) this.softClose('client sent NBD_CMD_DISC');
  }

  /** `reservedBytes`: what was taken for a WRITE's payload when its header was read (given back if the request is refused). */
  private dispatch(header: RequestHeader, payload: Buffer | undefined, reservedBytes = 0): void {
    this.requestsThisPump += 1;
    const negotiated = this.negotiated;
    if (negotiated === null) throw new Error('dispatch without a negotiated export');
    if (this.refusingForShutdown) {
      this.send(encodeReply(header, negotiated, { ok: false, errno: NBD_ESHUTDOWN, message: 'server stopping' }));
      this.givePayloadBack(reservedBytes);
      return;
    }
    const check = checkRequest(header, negotiated);
    if (!check.ok) {
      this.send(encodeReply(header, negotiated, { ok: false, errno: check.errno, message: check.message }));
      this.givePayloadBack(reservedBytes);
      return;
    }
    const request = check.request;
    // A WRITE's payload was taken when its header was read; a READ's bytes are taken now. A WRITE_ZEROES carries no
    // payload but the backend writes it a maximum payload at a time, each chunk as heavy downstream as a WRITE of
    // that size (forwarded to a peer, written to both sides of a move): it holds one chunk's bytes. (A review saw one
    // connection hand the node 2 GiB of zero writes at once, none of it counted.)
    let costBytes = reservedBytes;
    const heldBytes = request.type === NBD_CMD_READ ? request.lengthBytes
      : request.type === NBD_CMD_WRITE_ZEROES ? Math.min(request.lengthBytes, negotiated.exportInfo.maximumPayloadBytes) : 0;
    if (heldBytes > 0) {
      costBytes = heldBytes;
      this.inFlightBytes += costBytes;
      this.budget.take(this.wakeForRoom, costBytes);
    }
    this.inFlightRequests += 1;
    // One promise reaction per request, whichever way it settles.
    this.execute(negotiated.exportInfo.name, request, payload).then(
      // Only a read's reply carries data, whatever another command's promise resolves to.
      (data) => this.reply(header, negotiated, costBytes, { ok: true, offsetBytes: request.offsetBytes, data: request.type === NBD_CMD_READ ? data : undefined }),
      (error: unknown) => this.reply(header, negotiated, costBytes, this.outcomeOfFailure(request, error)),
    );
  }

  /** Answers a request that was in flight and reads on, or ends a draining connection once nothing is left in flight. */
  private reply(header: RequestHeader, negotiated: NegotiatedExport, costBytes: number, outcome: RequestOutcome): void {
    try {
      this.inFlightRequests -= 1;
      if (header.type === NBD_CMD_READ && costBytes > 0) {
        // A read's bytes are given back once its reply, which carries them, has left the process (replies are written
        // in order, so one bound callback and a queue of costs do, with no closure per request).
        this.readRepliesUnwritten.push(costBytes);
        this.send(encodeReply(header, negotiated, outcome), this.readReplyWritten);
      } else {
        // A write's payload is used up once it is answered: given back after the reply is sent (giving back wakes the
        // budget's next waiter, in a microtask; a review lost a reply when this connection was pumped, and closed, first).
        this.send(encodeReply(header, negotiated, outcome));
        this.givePayloadBack(costBytes);
      }
      if (this.phase === 'draining' && this.inFlightRequests === 0) this.softClose(this.stopping ? 'server stopping' : this.peerEnded ? 'client closed its side' : 'client sent NBD_CMD_DISC');
      else this.pump();
    } catch (error) {
      this.hardClose(`reply failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** A request's bytes go back to this connection's share and the server's budget. */
  private givePayloadBack(costBytes: number): void {
    if (costBytes === 0) return;
    this.inFlightBytes -= costBytes;
    this.budget.give(costBytes);
  }

  /** The oldest read reply not yet written out is (see `reply`); a paused connection may go on. */
  private readonly readReplyWritten = (): void => {
    const costBytes = this.readRepliesUnwritten[this.readRepliesUnwrittenHead];
    if (costBytes === undefined) return assert(false, 'a read reply written was queued');
    this.readRepliesUnwrittenHead += 1;
    if (this.readRepliesUnwrittenHead === this.readRepliesUnwritten.length) {
      this.readRepliesUnwritten.length = 0;
      this.readRepliesUnwrittenHead = 0;
    }
    this.readRepliesWrittenOut += 1;
    const heldByItsBytes = this.inFlightBytes >= this.limits.inFlightBytesMax;
    this.givePayloadBack(costBytes);
    // Only a connection its own bytes held back needs pumping here (the budget wakes its waiters itself; 'drain' the
    // rest), or one whose client has closed its side and which may now drain.
    if ((heldByItsBytes || this.peerEnded) && this.phase === 'transmission') this.pump();
  };

  private outcomeOfFailure(request: AcceptedRequest, error: unknown): RequestOutcome {
    if (error instanceof NbdError) return { ok: false, errno: error.errno, message: error.message };
    const text = error instanceof Error ? error.message : String(error);
    this.log(`nbd ${this.label}: backend failed command ${request.type} at ${request.offsetBytes}+${request.lengthBytes}: ${text}`);
    return { ok: false, errno: NBD_EIO, message: 'backend I/O error' };
  }

  /** The backend call of a request; never throws (a synchronous failure becomes a rejection, as from an async function). */
  private execute(exportName: string, request: AcceptedRequest, payload: Buffer | undefined): Promise<Buffer | undefined> {
    try {
      // A write is the common case: its backend promise is the request's, with no async wrapper around it.
      if (request.type === NBD_CMD_WRITE && request.lengthBytes > 0 && payload !== undefined) {
        return this.backend.write(exportName, request.offsetBytes, payload, request.fua, this.label) as Promise<undefined>;
      }
      return this.executeOther(exportName, request, payload);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private async executeOther(exportName: string, request: AcceptedRequest, payload: Buffer | undefined): Promise<Buffer | undefined> {
    const { offsetBytes, lengthBytes, fua } = request;
    switch (request.type) {
      case NBD_CMD_READ: {
        if (lengthBytes === 0) return Buffer.alloc(0);
        const data = await this.backend.read(exportName, offsetBytes, lengthBytes, this.label);
        if (data.length !== lengthBytes) throw new Error(`backend read returned ${data.length} bytes, expected ${lengthBytes}`);
        return data;
      }
      case NBD_CMD_WRITE:
        if (payload === undefined) throw new Error('write without payload');
        if (lengthBytes > 0) await this.backend.write(exportName, offsetBytes, payload, fua, this.label);
        return undefined;
      case NBD_CMD_FLUSH:
        await this.backend.flush(exportName, this.label);
        return undefined;
      case NBD_CMD_TRIM:
        if (lengthBytes > 0) await this.backend.trim(exportName, offsetBytes, lengthBytes, fua);
        return undefined;
      case NBD_CMD_WRITE_ZEROES:
        if (lengthBytes > 0) await this.backend.writeZeroes(exportName, offsetBytes, lengthBytes, fua, this.label);
        return undefined;
      default:
        throw new NbdError(NBD_EINVAL, `unsupported command ${request.type}`);
    }
  }
}

function assertNever(value: never): never {
  throw new Error(`unexpected value ${JSON.stringify(value)}`);
}
