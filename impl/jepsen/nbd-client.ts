/**
 * A small NBD client for the fault harness: fixed newstyle handshake,
 * NBD_OPT_GO with no information requests, simple replies only (it never
 * asks for structured replies, so the server must not send them), and
 * READ/WRITE/FLUSH with request ids (handles) and pipelining.
 *
 * Every request has a time-out. A request that times out leaves the
 * connection in an unknown state (its reply may still come, or never), so the
 * client closes the connection and fails every request still in flight with
 * `NbdUnknownOutcome`: the harness records those as `info`. An error reply is
 * `NbdErrorReply`. Nothing here retries: the workload decides.
 */
import net from 'node:net';
import {
  NBD_CMD_FLAG_FUA, NBD_CMD_FLUSH, NBD_CMD_READ, NBD_CMD_WRITE, NBD_FLAG_C_FIXED_NEWSTYLE, NBD_FLAG_C_NO_ZEROES, NBD_FLAG_FIXED_NEWSTYLE,
  NBD_INFO_EXPORT, NBD_INIT_MAGIC, NBD_OPTS_MAGIC, NBD_OPT_GO, NBD_REP_ACK, NBD_REP_INFO, NBD_REP_MAGIC, NBD_REQUEST_MAGIC, NBD_SIMPLE_REPLY_MAGIC,
} from '../nbd/protocol-constants.js';

/** The outcome is unknown: timed out, or the connection went away before the reply. */
export class NbdUnknownOutcome extends Error {}
/** The server answered with an error: the request failed (for a write, its effect is still not promised either way). */
export class NbdErrorReply extends Error {
  constructor(readonly errno: number) {
    super(`NBD error ${errno}`);
  }
}

/** The bound on one reply's payload; the workload reads 4 KiB. */
const replyBytesMax = 1 << 20;

interface Pending {
  readonly lengthBytes: number;
  readonly resolve: (data: Buffer) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class NbdClient {
  readonly #socket: net.Socket;
  readonly #pending = new Map<bigint, Pending>();
  #chunks: Buffer[] = [];
  #bufferedBytes = 0;
  #waiter: { lengthBytes: number; resolve: (data: Buffer) => void; reject: (error: Error) => void } | null = null;
  #nextHandle = 1n;
  #closed = false;
  sizeBytes = 0n;
  transmissionFlags = 0;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.#chunks.push(chunk);
      this.#bufferedBytes += chunk.length;
      this.#satisfy();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.#fail(new NbdUnknownOutcome('connection closed')));
  }

  /** Connects and negotiates `exportName`; the whole handshake must finish within `timeoutMs`. */
  static async connect(host: string, port: number, exportName: string, timeoutMs: number): Promise<NbdClient> {
    const socket = net.connect({ host, port });
    const client = new NbdClient(socket);
    const timer = setTimeout(() => client.close(), timeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('close', () => reject(new NbdUnknownOutcome(`could not connect to ${host}:${port}`)));
      });
      await client.#handshake(exportName);
      return client;
    } catch (error) {
      client.close();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  read(offsetBytes: number, lengthBytes: number, timeoutMs: number): Promise<Buffer> {
    return this.#request(NBD_CMD_READ, 0, offsetBytes, lengthBytes, null, timeoutMs);
  }

  async write(offsetBytes: number, data: Buffer, fua: boolean, timeoutMs: number): Promise<void> {
    await this.#request(NBD_CMD_WRITE, fua ? NBD_CMD_FLAG_FUA : 0, offsetBytes, data.length, data, timeoutMs);
  }

  async flush(timeoutMs: number): Promise<void> {
    await this.#request(NBD_CMD_FLUSH, 0, 0, 0, null, timeoutMs);
  }

  close(): void {
    this.#socket.destroy();
    this.#fail(new NbdUnknownOutcome('connection closed'));
  }

  async #handshake(exportName: string): Promise<void> {
    const greeting = await this.#readExactly(18);
    if (greeting.readBigUInt64BE(0) !== NBD_INIT_MAGIC || greeting.readBigUInt64BE(8) !== NBD_OPTS_MAGIC) throw new Error('not an NBD newstyle server');
    if ((greeting.readUInt16BE(16) & NBD_FLAG_FIXED_NEWSTYLE) === 0) throw new Error('server does not speak fixed newstyle');
    const clientFlags = Buffer.alloc(4);
    clientFlags.writeUInt32BE(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES, 0);
    const name = Buffer.from(exportName, 'utf8');
    const option = Buffer.alloc(16 + 4 + name.length + 2);
    option.writeBigUInt64BE(NBD_OPTS_MAGIC, 0);
    option.writeUInt32BE(NBD_OPT_GO, 8);
    option.writeUInt32BE(4 + name.length + 2, 12);
    option.writeUInt32BE(name.length, 16);
    name.copy(option, 20);
    option.writeUInt16BE(0, 20 + name.length);
    this.#socket.write(Buffer.concat([clientFlags, option]));
    for (;;) {
      const header = await this.#readExactly(20);
      if (header.readBigUInt64BE(0) !== NBD_REP_MAGIC) throw new Error('bad option reply magic');
      const replyType = header.readUInt32BE(12);
      const lengthBytes = header.readUInt32BE(16);
      if (lengthBytes > 64 * 1024) throw new Error(`option reply of ${lengthBytes} bytes`);
      const data = await this.#readExactly(lengthBytes);
      if (replyType === NBD_REP_ACK) break;
      if (replyType !== NBD_REP_INFO) throw new Error(`NBD_OPT_GO refused: 0x${replyType.toString(16)} ${data.toString('utf8')}`);
      if (data.length >= 12 && data.readUInt16BE(0) === NBD_INFO_EXPORT) {
        this.sizeBytes = data.readBigUInt64BE(2);
        this.transmissionFlags = data.readUInt16BE(10);
      }
    }
    void this.#replyLoop();
  }

  async #replyLoop(): Promise<void> {
    try {
      for (;;) {
        const header = await this.#readExactly(16);
        if (header.readUInt32BE(0) !== NBD_SIMPLE_REPLY_MAGIC) throw new Error(`unexpected reply magic 0x${header.readUInt32BE(0).toString(16)}`);
        const errno = header.readUInt32BE(4);
        const handle = header.readBigUInt64BE(8);
        const pending = this.#pending.get(handle);
        if (!pending) throw new Error(`reply for unknown handle ${handle}`);
        const data = errno === 0 && pending.lengthBytes > 0 ? await this.#readExactly(pending.lengthBytes) : Buffer.alloc(0);
        this.#pending.delete(handle);
        clearTimeout(pending.timer);
        if (errno !== 0) pending.reject(new NbdErrorReply(errno));
        else pending.resolve(data);
      }
    } catch (error) {
      this.#socket.destroy();
      this.#fail(error instanceof NbdUnknownOutcome ? error : new NbdUnknownOutcome((error as Error).message));
    }
  }

  #request(type: number, flags: number, offsetBytes: number, lengthBytes: number, payload: Buffer | null, timeoutMs: number): Promise<Buffer> {
    if (this.#closed) return Promise.reject(new NbdUnknownOutcome('connection closed'));
    if (lengthBytes > replyBytesMax) return Promise.reject(new Error(`request of ${lengthBytes} bytes exceeds the bound`));
    const handle = this.#nextHandle++;
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        // The reply may still come, so nothing on this connection can be trusted any more.
        this.close();
      }, timeoutMs);
      this.#pending.set(handle, { lengthBytes: type === NBD_CMD_READ ? lengthBytes : 0, resolve, reject, timer });
      const header = Buffer.alloc(28);
      header.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
      header.writeUInt16BE(flags, 4);
      header.writeUInt16BE(type, 6);
      header.writeBigUInt64BE(handle, 8);
      header.writeBigUInt64BE(BigInt(offsetBytes), 16);
      header.writeUInt32BE(lengthBytes, 24);
      this.#socket.write(payload ? Buffer.concat([header, payload]) : header);
    });
  }

  #readExactly(lengthBytes: number): Promise<Buffer> {
    if (this.#closed) return Promise.reject(new NbdUnknownOutcome('connection closed'));
    return new Promise((resolve, reject) => {
      this.#waiter = { lengthBytes, resolve, reject };
      this.#satisfy();
    });
  }

  #satisfy(): void {
    const waiter = this.#waiter;
    if (!waiter || this.#bufferedBytes < waiter.lengthBytes) return;
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    const taken = all.subarray(0, waiter.lengthBytes);
    const rest = all.subarray(waiter.lengthBytes);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#bufferedBytes = rest.length;
    this.#waiter = null;
    waiter.resolve(Buffer.from(taken));
  }

  #fail(error: Error): void {
    this.#closed = true;
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.reject(error);
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    this.#pending.clear();
  }
}
