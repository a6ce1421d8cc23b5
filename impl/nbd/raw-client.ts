/**
 * A deliberately minimal NBD client for tests that must send bytes no real
 * client would: wrong magic, garbage flags, huge option lengths, pipelined
 * requests. It exposes the stream as "write these bytes" and "wait for
 * exactly n bytes", plus a few encoders for well-formed messages, so each
 * test spells out the exchange it checks.
 */
import net from 'node:net';
import {
  NBD_CMD_DISC,
  NBD_OPTS_MAGIC,
  NBD_OPTION_REPLY_HEADER_BYTES,
  NBD_OPT_GO,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_REP_ACK,
  NBD_REP_INFO,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_HEADER_BYTES,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_HEADER_BYTES,
  NBD_STRUCTURED_REPLY_MAGIC,
} from './protocol-constants.js';
import { ReceiveQueue } from './receive-queue.js';

export interface OptionReply {
  option: number;
  replyType: number;
  data: Buffer;
}

export interface SimpleReply {
  errno: number;
  handle: bigint;
}

export interface StructuredChunk {
  flags: number;
  type: number;
  handle: bigint;
  payload: Buffer;
}

export class RawClient {
  private readonly queue = new ReceiveQueue();
  private waiter: (() => void) | null = null;
  private closed = false;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.queue.push(chunk);
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => {
      // A reset by the server is an expected outcome in these tests; 'close' follows.
    });
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  write(bytes: Buffer): void {
    if (!this.closed) this.socket.write(bytes);
  }

  /** Resolves with exactly `lengthBytes` bytes, or rejects if the server closes or time runs out first. */
  async read(lengthBytes: number, timeoutMs = 3_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const bytes = this.queue.take(lengthBytes);
      if (bytes !== null) return Buffer.from(bytes);
      if (this.closed) throw new Error(`connection closed with ${this.queue.lengthBytes} of ${lengthBytes} bytes`);
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) throw new Error(`timed out waiting for ${lengthBytes} bytes`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remainingMs);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
  }

  /** Resolves true once the server has closed the connection, false if it is still open after the timeout. */
  async waitForClose(timeoutMs = 3_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Stops reading from the socket, as a client that never reads its replies: the server's sends then back up. A close is still seen. */
  stopReading(): void {
    this.socket.pause();
  }

  /** The socket itself, for a test that reads it at its own pace (paused mode); the client's own reads stop working. */
  rawSocket(): net.Socket {
    return this.socket;
  }

  /** Reads again after `stopReading`, as a client that was only slow. */
  resumeReading(): void {
    this.socket.resume();
  }

  /** Shuts down the sending side (a FIN), as libnbd does right after NBD_CMD_DISC; replies can still be read. */
  endWriting(): void {
    this.socket.end();
  }

  /** Reads the 18-byte greeting and answers with `clientFlags`. */
  async greet(clientFlags: number): Promise<{ handshakeFlags: number }> {
    const greeting = await this.read(18);
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(clientFlags, 0);
    this.write(flags);
    return { handshakeFlags: greeting.readUInt16BE(16) };
  }

  sendOption(option: number, data: Buffer = Buffer.alloc(0), declaredLengthBytes = data.length): void {
    const header = Buffer.alloc(16);
    header.writeBigUInt64BE(NBD_OPTS_MAGIC, 0);
    header.writeUInt32BE(option, 8);
    header.writeUInt32BE(declaredLengthBytes, 12);
    this.write(Buffer.concat([header, data]));
  }

  async readOptionReply(): Promise<OptionReply> {
    const header = await this.read(NBD_OPTION_REPLY_HEADER_BYTES);
    const lengthBytes = header.readUInt32BE(16);
    return { option: header.readUInt32BE(8), replyType: header.readUInt32BE(12), data: await this.read(lengthBytes) };
  }

  /** Negotiates (optionally structured replies and) NBD_OPT_GO for `exportName`; returns the export's size and flags. */
  async negotiate(exportName: string, structuredReplies: boolean): Promise<{ sizeBytes: bigint; transmissionFlags: number }> {
    await this.greet(3);
    if (structuredReplies) {
      this.sendOption(NBD_OPT_STRUCTURED_REPLY);
      const reply = await this.readOptionReply();
      if (reply.replyType !== NBD_REP_ACK) throw new Error(`structured replies refused: ${reply.replyType}`);
    }
    this.sendOption(NBD_OPT_GO, encodeGoData(exportName, []));
    let export_: { sizeBytes: bigint; transmissionFlags: number } | null = null;
    for (;;) {
      const reply = await this.readOptionReply();
      if (reply.replyType === NBD_REP_INFO && reply.data.readUInt16BE(0) === 0) {
        export_ = { sizeBytes: reply.data.readBigUInt64BE(2), transmissionFlags: reply.data.readUInt16BE(10) };
      } else if (reply.replyType === NBD_REP_ACK) {
        if (export_ === null) throw new Error('NBD_OPT_GO acknowledged without NBD_INFO_EXPORT');
        return export_;
      } else if (reply.replyType !== NBD_REP_INFO) {
        throw new Error(`NBD_OPT_GO refused: 0x${reply.replyType.toString(16)} ${reply.data.toString()}`);
      }
    }
  }

  sendRequest(request: { type: number; flags?: number; handle: bigint; offset: bigint | number; lengthBytes: number; payload?: Buffer; magic?: number }): void {
    const header = Buffer.alloc(28);
    header.writeUInt32BE(request.magic ?? NBD_REQUEST_MAGIC, 0);
    header.writeUInt16BE(request.flags ?? 0, 4);
    header.writeUInt16BE(request.type, 6);
    header.writeBigUInt64BE(request.handle, 8);
    header.writeBigUInt64BE(BigInt(request.offset), 16);
    header.writeUInt32BE(request.lengthBytes, 24);
    this.write(request.payload === undefined ? header : Buffer.concat([header, request.payload]));
  }

  sendDisconnect(): void {
    this.sendRequest({ type: NBD_CMD_DISC, handle: 0n, offset: 0, lengthBytes: 0 });
  }

  async readSimpleReply(): Promise<SimpleReply> {
    const header = await this.read(NBD_SIMPLE_REPLY_HEADER_BYTES);
    if (header.readUInt32BE(0) !== NBD_SIMPLE_REPLY_MAGIC) throw new Error(`bad simple reply magic 0x${header.readUInt32BE(0).toString(16)}`);
    return { errno: header.readUInt32BE(4), handle: header.readBigUInt64BE(8) };
  }

  async readStructuredChunk(): Promise<StructuredChunk> {
    const header = await this.read(NBD_STRUCTURED_REPLY_HEADER_BYTES);
    if (header.readUInt32BE(0) !== NBD_STRUCTURED_REPLY_MAGIC) throw new Error(`bad structured reply magic 0x${header.readUInt32BE(0).toString(16)}`);
    return {
      flags: header.readUInt16BE(4),
      type: header.readUInt16BE(6),
      handle: header.readBigUInt64BE(8),
      payload: await this.read(header.readUInt32BE(16)),
    };
  }
}

export function encodeGoData(exportName: string, infoTypes: number[]): Buffer {
  const name = Buffer.from(exportName, 'utf8');
  const data = Buffer.alloc(4 + name.length + 2 + 2 * infoTypes.length);
  data.writeUInt32BE(name.length, 0);
  name.copy(data, 4);
  data.writeUInt16BE(infoTypes.length, 4 + name.length);
  infoTypes.forEach((infoType, index) => data.writeUInt16BE(infoType, 4 + name.length + 2 + 2 * index));
  return data;
}
