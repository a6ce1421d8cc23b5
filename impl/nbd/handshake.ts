/**
 * Fixed newstyle negotiation, as a state machine that turns received bytes
 * into actions.
 *
 * Theory of operation. The server opens with NBDMAGIC, IHAVEOPT and its
 * handshake flags (FIXED_NEWSTYLE and NO_ZEROES). The machine then moves
 * through these states:
 *
 * - `client-flags`: waits for the client's 32-bit flags. A bit the server
 *   did not offer means the client speaks something else, so the session is
 *   closed, as the specification requires.
 * - `option-header`: waits for IHAVEOPT, the option and its data length. A
 *   wrong magic closes the session. A length within `optionDataBytesMax`
 *   moves to `option-data`; a larger one that still fits the handshake byte
 *   budget moves to `option-discard` (the data is dropped as it arrives, so
 *   nothing unbounded is ever buffered, and the option is refused with
 *   NBD_REP_ERR_INVALID; NBD_OPT_ABORT is still acknowledged and an option
 *   the server does not implement still gets NBD_REP_ERR_UNSUP); anything larger closes the session as a denial of
 *   service, which the specification permits.
 * - `option-data`: waits for the whole option, then answers it. NBD_OPT_GO
 *   and NBD_OPT_EXPORT_NAME on a known export end negotiation with a
 *   `transmission.start` action; NBD_OPT_ABORT is acknowledged and ends
 *   with a `close`; everything else is answered and returns to
 *   `option-header`.
 * - `done`: negotiation is over; the machine consumes nothing more.
 *
 * A server that is stopping (`refuseForShutdown`) answers every option from
 * then on with NBD_REP_ERR_SHUTDOWN, as the specification provides, instead
 * of cutting the connection mid-negotiation (a client can then tell a server
 * going away from one that failed); NBD_OPT_ABORT is still acknowledged,
 * and NBD_OPT_EXPORT_NAME, which cannot be answered with an error, closes.
 *
 * The machine never touches a socket. `consume` returns actions as data
 * (`send`, `transmission.start`, `close`), and the connection performs them;
 * this keeps the negotiation testable byte for byte without a network.
 */
import { assertExportInfo } from './export-info-check.js';
import type { ExportInfo, NbdBackend } from './nbd-backend.js';
import {
  boundedNbdText,
  NBD_EXPORT_NAME_ZEROES_BYTES,
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_HAS_FLAGS,
  NBD_FLAG_NO_ZEROES,
  NBD_FLAG_SEND_DF,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_FUA,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
  NBD_INFO_BLOCK_SIZE,
  NBD_INFO_DESCRIPTION,
  NBD_INFO_EXPORT,
  NBD_INFO_NAME,
  NBD_INIT_MAGIC,
  NBD_OPTION_HEADER_BYTES,
  NBD_OPTION_REPLY_HEADER_BYTES,
  NBD_OPTS_MAGIC,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_INFO,
  NBD_OPT_LIST,
  NBD_OPT_STARTTLS,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_SHUTDOWN,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_ERR_UNSUP,
  NBD_REP_INFO,
  NBD_REP_MAGIC,
  NBD_REP_SERVER,
  NBD_STRING_BYTES_MAX,
} from './protocol-constants.js';
import type { ReceiveQueue } from './receive-queue.js';

/** The options `answerOption` implements; every other is answered NBD_REP_ERR_UNSUP, whatever its data. */
const implementedOptions: ReadonlySet<number> = new Set([NBD_OPT_EXPORT_NAME, NBD_OPT_ABORT, NBD_OPT_LIST, NBD_OPT_INFO, NBD_OPT_GO, NBD_OPT_STRUCTURED_REPLY]);

export interface HandshakeLimits {
  /** Option data up to this size is buffered and parsed; larger data is discarded unread. */
  optionDataBytesMax: number;
  /** All bytes a client may send before transmission, including discarded option data. */
  handshakeBytesMax: number;
  /** Options a client may send before transmission. */
  optionCountMax: number;
}

export const DEFAULT_HANDSHAKE_LIMITS: HandshakeLimits = {
  // NBD_OPT_GO carries a name of at most 4096 bytes and a short list of info requests.
  optionDataBytesMax: 8 * 1024,
  handshakeBytesMax: 1024 * 1024,
  optionCountMax: 256,
};

/** What negotiation settled for the transmission phase. */
export interface NegotiatedExport {
  exportInfo: ExportInfo;
  structuredReplies: boolean;
  transmissionFlags: number;
}

export type HandshakeAction =
  | { type: 'send'; bytes: Buffer }
  | { type: 'transmission.start'; negotiated: NegotiatedExport }
  | { type: 'close'; reason: string };

type HandshakeState =
  | { name: 'client-flags' }
  | { name: 'option-header' }
  | { name: 'option-data'; option: number; lengthBytes: number }
  | { name: 'option-discard'; option: number; remainingBytes: number }
  | { name: 'done' };

const CLIENT_FLAGS_BYTES = 4;
const SERVER_HANDSHAKE_FLAGS = NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES;
const KNOWN_CLIENT_FLAGS = NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES;

/** The transmission flags for an export: what this front end supports, plus what the backend vouches for. */
export function transmissionFlagsFor(info: ExportInfo, structuredReplies: boolean): number {
  let flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES;
  // Every read is answered with a single content chunk, so "don't fragment" costs nothing;
  // the flag may only be offered once structured replies are agreed.
  if (structuredReplies) flags |= NBD_FLAG_SEND_DF;
  if (info.canMultiConn) flags |= NBD_FLAG_CAN_MULTI_CONN;
  return flags;
}

export function encodeGreeting(): Buffer {
  const bytes = Buffer.alloc(18);
  bytes.writeBigUInt64BE(NBD_INIT_MAGIC, 0);
  bytes.writeBigUInt64BE(NBD_OPTS_MAGIC, 8);
  bytes.writeUInt16BE(SERVER_HANDSHAKE_FLAGS, 16);
  return bytes;
}

export function encodeOptionReply(option: number, replyType: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const bytes = Buffer.alloc(NBD_OPTION_REPLY_HEADER_BYTES + data.length);
  bytes.writeBigUInt64BE(NBD_REP_MAGIC, 0);
  bytes.writeUInt32BE(option, 8);
  bytes.writeUInt32BE(replyType, 12);
  bytes.writeUInt32BE(data.length, 16);
  data.copy(bytes, NBD_OPTION_REPLY_HEADER_BYTES);
  return bytes;
}

/** An error reply whose message for a human is cut to the spec's 4096 bytes (libnbd drops a connection over a longer one). */
function errorReply(option: number, replyType: number, message: string): Buffer {
  return encodeOptionReply(option, replyType, boundedNbdText(message));
}

function encodeServerEntry(info: ExportInfo): Buffer {
  const name = Buffer.from(info.name, 'utf8');
  const description = Buffer.from(info.description ?? '', 'utf8');
  const data = Buffer.alloc(4 + name.length + description.length);
  data.writeUInt32BE(name.length, 0);
  name.copy(data, 4);
  description.copy(data, 4 + name.length);
  return data;
}

function encodeInfo(infoType: number, payload: Buffer): Buffer {
  const data = Buffer.alloc(2 + payload.length);
  data.writeUInt16BE(infoType, 0);
  payload.copy(data, 2);
  return data;
}

function encodeExportInfoPayload(info: ExportInfo, transmissionFlags: number): Buffer {
  const payload = Buffer.alloc(10);
  payload.writeBigUInt64BE(BigInt(info.sizeBytes), 0);
  payload.writeUInt16BE(transmissionFlags, 8);
  return payload;
}

function encodeBlockSizePayload(info: ExportInfo): Buffer {
  const payload = Buffer.alloc(12);
  payload.writeUInt32BE(info.minimumBlockBytes, 0);
  payload.writeUInt32BE(info.preferredBlockBytes, 4);
  payload.writeUInt32BE(info.maximumPayloadBytes, 8);
  return payload;
}

/** The request carried by NBD_OPT_INFO and NBD_OPT_GO, or null when its lengths disagree. */
function parseInfoRequest(data: Buffer): { name: string; infoTypes: number[] } | null {
  if (data.length < 6) return null;
  const nameBytes = data.readUInt32BE(0);
  if (nameBytes > data.length - 6 || nameBytes > NBD_STRING_BYTES_MAX) return null;
  const name = data.toString('utf8', 4, 4 + nameBytes);
  const infoCount = data.readUInt16BE(4 + nameBytes);
  if (data.length !== 4 + nameBytes + 2 + 2 * infoCount) return null;
  const infoTypes: number[] = [];
  for (let index = 0; index < infoCount; index += 1) infoTypes.push(data.readUInt16BE(4 + nameBytes + 2 + 2 * index));
  return { name, infoTypes };
}

export class Handshake {
  private state: HandshakeState = { name: 'client-flags' };
  private noZeroes = false;
  private structuredReplies = false;
  private consumedBytes = 0;
  private optionCount = 0;
  private shuttingDown = false;

  constructor(
    private readonly backend: Pick<NbdBackend, 'listExports' | 'findExport'>,
    private readonly limits: HandshakeLimits = DEFAULT_HANDSHAKE_LIMITS,
  ) {}

  get isDone(): boolean {
    return this.state.name === 'done';
  }

  /** Whether the client has sent its flags and negotiation is in its options (so an option reply is something it reads). */
  get isInOptions(): boolean {
    return this.state.name === 'option-header' || this.state.name === 'option-data' || this.state.name === 'option-discard';
  }

  /** The server is stopping: every option from now on is answered NBD_REP_ERR_SHUTDOWN (see the top of the file). */
  refuseForShutdown(): void {
    this.shuttingDown = true;
  }

  /**
   * Consumes as many complete messages from `queue` as there are and returns
   * the actions they call for. After a `transmission.start` or `close` action
   * the machine is done and leaves any further bytes in the queue, because
   * they belong to the transmission phase (or to no one).
   */
  consume(queue: ReceiveQueue): HandshakeAction[] {
    const actions: HandshakeAction[] = [];
    for (;;) {
      const progressed = this.step(queue, actions);
      if (!progressed || this.state.name === 'done') return actions;
    }
  }

  /**
   * Advances by one message (the client's flags, or one option) and returns
   * what to do about it, or null when more bytes are needed: a connection
   * that sends each option's replies before it reads the next can hold
   * options back while its client does not read (connection.ts, `parseAll`).
   */
  consumeOne(queue: ReceiveQueue): HandshakeAction[] | null {
    const actions: HandshakeAction[] = [];
    return this.step(queue, actions) ? actions : null;
  }

  private finish(actions: HandshakeAction[], action: HandshakeAction): true {
    actions.push(action);
    this.state = { name: 'done' };
    return true;
  }

  private take(queue: ReceiveQueue, lengthBytes: number): Buffer | null {
    const bytes = queue.take(lengthBytes);
    if (bytes !== null) this.consumedBytes += lengthBytes;
    return bytes;
  }

  /** Advances by at most one message; returns false when more bytes are needed. */
  private step(queue: ReceiveQueue, actions: HandshakeAction[]): boolean {
    const state = this.state;
    switch (state.name) {
      case 'client-flags': {
        const bytes = this.take(queue, CLIENT_FLAGS_BYTES);
        if (bytes === null) return false;
        const clientFlags = bytes.readUInt32BE(0);
        if ((clientFlags & ~KNOWN_CLIENT_FLAGS) !== 0) {
          return this.finish(actions, { type: 'close', reason: `unknown client flags 0x${clientFlags.toString(16)}` });
        }
        this.noZeroes = (clientFlags & NBD_FLAG_C_NO_ZEROES) !== 0;
        this.state = { name: 'option-header' };
        return true;
      }
      case 'option-header': {
        const bytes = this.take(queue, NBD_OPTION_HEADER_BYTES);
        if (bytes === null) return false;
        if (bytes.readBigUInt64BE(0) !== NBD_OPTS_MAGIC) {
          return this.finish(actions, { type: 'close', reason: 'bad option magic' });
        }
        const option = bytes.readUInt32BE(8);
        const lengthBytes = bytes.readUInt32BE(12);
        this.optionCount += 1;
        if (this.optionCount > this.limits.optionCountMax) {
          return this.finish(actions, { type: 'close', reason: `more than ${this.limits.optionCountMax} options` });
        }
        if (this.consumedBytes + lengthBytes > this.limits.handshakeBytesMax) {
          return this.finish(actions, {
            type: 'close',
            reason: `option ${option} data of ${lengthBytes} bytes exceeds the handshake budget`,
          });
        }
        if (lengthBytes > this.limits.optionDataBytesMax) {
          this.state = { name: 'option-discard', option, remainingBytes: lengthBytes };
        } else {
          this.state = { name: 'option-data', option, lengthBytes };
        }
        return true;
      }
      case 'option-discard': {
        const skippedBytes = queue.skip(state.remainingBytes);
        this.consumedBytes += skippedBytes;
        const remainingBytes = state.remainingBytes - skippedBytes;
        if (remainingBytes > 0) {
          this.state = { ...state, remainingBytes };
          return false;
        }
        if (state.option === NBD_OPT_EXPORT_NAME) {
          // NBD_OPT_EXPORT_NAME cannot be answered with an error, so the only refusal is to close.
          return this.finish(actions, { type: 'close', reason: 'NBD_OPT_EXPORT_NAME with an oversized name' });
        }
        this.state = { name: 'option-header' };
        // Answered as the option would be with short data wherever the data does not matter: NBD_OPT_ABORT "MUST" be
        // acknowledged (its data SHOULD be ignored), and an option this server does not implement is ERR_UNSUP whatever
        // its data (ERR_INVALID says the option is known; a review found both answered "option data too long").
        if (state.option === NBD_OPT_ABORT || !implementedOptions.has(state.option) || this.shuttingDown) {
          this.answerOption(state.option, Buffer.alloc(0), actions);
          return true;
        }
        actions.push({ type: 'send', bytes: errorReply(state.option, NBD_REP_ERR_INVALID, 'option data too long') });
        return true;
      }
      case 'option-data': {
        const data = this.take(queue, state.lengthBytes);
        if (data === null) return false;
        this.state = { name: 'option-header' };
        this.answerOption(state.option, data, actions);
        return true;
      }
      case 'done':
        return false;
    }
  }

  /** Answers a whole option; `implementedOptions` lists those it does not answer ERR_UNSUP. */
  private answerOption(option: number, data: Buffer, actions: HandshakeAction[]): void {
    if (this.shuttingDown && option !== NBD_OPT_ABORT) {
      if (option === NBD_OPT_EXPORT_NAME) {
        this.finish(actions, { type: 'close', reason: 'NBD_OPT_EXPORT_NAME while the server is stopping' });
        return;
      }
      actions.push({ type: 'send', bytes: errorReply(option, NBD_REP_ERR_SHUTDOWN, 'server shutting down') });
      return;
    }
    switch (option) {
      case NBD_OPT_EXPORT_NAME: {
        const info = this.backend.findExport(data.toString('utf8'));
        if (info === null) {
          this.finish(actions, { type: 'close', reason: `NBD_OPT_EXPORT_NAME for unknown export ${JSON.stringify(data.toString('utf8'))}` });
          return;
        }
        assertExportInfo(info);
        const transmissionFlags = transmissionFlagsFor(info, this.structuredReplies);
        const reply = Buffer.alloc(10 + (this.noZeroes ? 0 : NBD_EXPORT_NAME_ZEROES_BYTES));
        reply.writeBigUInt64BE(BigInt(info.sizeBytes), 0);
        reply.writeUInt16BE(transmissionFlags, 8);
        actions.push({ type: 'send', bytes: reply });
        this.finish(actions, {
          type: 'transmission.start',
          negotiated: { exportInfo: info, structuredReplies: this.structuredReplies, transmissionFlags },
        });
        return;
      }
      case NBD_OPT_ABORT:
        actions.push({ type: 'send', bytes: encodeOptionReply(option, NBD_REP_ACK) });
        this.finish(actions, { type: 'close', reason: 'client sent NBD_OPT_ABORT' });
        return;
      case NBD_OPT_LIST: {
        if (data.length !== 0) {
          actions.push({ type: 'send', bytes: errorReply(option, NBD_REP_ERR_INVALID, 'NBD_OPT_LIST takes no data') });
          return;
        }
        for (const info of this.backend.listExports()) {
          // Checked as NBD_OPT_GO checks it: a description past the spec's 4096 bytes was listed as it was.
          assertExportInfo(info);
          actions.push({ type: 'send', bytes: encodeOptionReply(option, NBD_REP_SERVER, encodeServerEntry(info)) });
        }
        actions.push({ type: 'send', bytes: encodeOptionReply(option, NBD_REP_ACK) });
        return;
      }
      case NBD_OPT_STARTTLS:
        actions.push({ type: 'send', bytes: errorReply(option, NBD_REP_ERR_UNSUP, 'TLS is not supported') });
        return;
      case NBD_OPT_INFO:
      case NBD_OPT_GO:
        this.answerInfoOrGo(option, data, actions);
        return;
      case NBD_OPT_STRUCTURED_REPLY:
        if (data.length !== 0) {
          actions.push({ type: 'send', bytes: errorReply(option, NBD_REP_ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data') });
          return;
        }
        this.structuredReplies = true;
        actions.push({ type: 'send', bytes: encodeOptionReply(option, NBD_REP_ACK) });
        return;
      default:
        actions.push({ type: 'send', bytes: errorReply(option, NBD_REP_ERR_UNSUP, `option ${option} is not supported`) });
        return;
    }
  }

  private answerInfoOrGo(option: number, data: Buffer, actions: HandshakeAction[]): void {
    const request = parseInfoRequest(data);
    if (request === null) {
      actions.push({ type: 'send', bytes: errorReply(option, NBD_REP_ERR_INVALID, 'malformed NBD_OPT_INFO or NBD_OPT_GO') });
      return;
    }
    const info = this.backend.findExport(request.name);
    if (info === null) {
      actions.push({
        type: 'send',
        bytes: errorReply(option, NBD_REP_ERR_UNKNOWN, `unknown export ${JSON.stringify(request.name)}`),
      });
      return;
    }
    assertExportInfo(info);
    const transmissionFlags = transmissionFlagsFor(info, this.structuredReplies);
    actions.push({
      type: 'send',
      bytes: encodeOptionReply(option, NBD_REP_INFO, encodeInfo(NBD_INFO_EXPORT, encodeExportInfoPayload(info, transmissionFlags))),
    });
    // Block sizes are sent unasked too: the maximum payload is tighter than the
    // default "unlimited", and a client that ignores the item loses nothing.
    actions.push({
      type: 'send',
      bytes: encodeOptionReply(option, NBD_REP_INFO, encodeInfo(NBD_INFO_BLOCK_SIZE, encodeBlockSizePayload(info))),
    });
    if (request.infoTypes.includes(NBD_INFO_NAME)) {
      actions.push({
        type: 'send',
        bytes: encodeOptionReply(option, NBD_REP_INFO, encodeInfo(NBD_INFO_NAME, Buffer.from(info.name, 'utf8'))),
      });
    }
    if (request.infoTypes.includes(NBD_INFO_DESCRIPTION) && info.description !== undefined) {
      actions.push({
        type: 'send',
        bytes: encodeOptionReply(option, NBD_REP_INFO, encodeInfo(NBD_INFO_DESCRIPTION, Buffer.from(info.description, 'utf8'))),
      });
    }
    actions.push({ type: 'send', bytes: encodeOptionReply(option, NBD_REP_ACK) });
    if (option === NBD_OPT_GO) {
      this.finish(actions, {
        type: 'transmission.start',
        negotiated: { exportInfo: info, structuredReplies: this.structuredReplies, transmissionFlags },
      });
    }
  }
}
