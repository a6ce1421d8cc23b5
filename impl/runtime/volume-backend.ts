/**
 * The NBD front end's view of a server: every volume of the group is an
 * export of that name, on every server (FIG. 7: any server accepts any
 * request).
 *
 * A byte range is cut at page and piece boundaries into block operations,
 * each handed to the node on its own; the NBD request is acknowledged only
 * when every part is, and fails if any part fails. Routing errors never get
 * here: the node repairs a stale table inside the group and answers only
 * `ok` or an I/O error.
 *
 * Parts. A request's parts run at most `partsInFlightPerRequestMax` at a
 * time, and a failure is answered only once every part has settled. (A
 * review found both: a 32 MiB write of 33 parts, 64 of them in flight per
 * connection, let two busy connections reach the node's bound on requests in
 * flight and have parts refused half-way; and `Promise.all` answered the
 * first failure while other parts still ran, so the range changed after the
 * error reply.) WRITE_ZEROES writes from one shared buffer of zeros, never
 * changed, rather than a fresh one of up to 32 MiB per request.
 */
import { NbdError } from '../nbd/nbd-error.js';
import type { ExportInfo, NbdBackend, NbdClientId } from '../nbd/nbd-backend.js';
import type { PageKey } from '../../machines/identifiers.js';
import type { BlockOperation } from '../../machines/node/messages.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { pieceSizeBlocks } from '../../machines/node/volume.js';
import type { RuntimeReply, ServerRuntime } from './server-runtime.js';
import { ownValue } from '../../machines/identifiers.js';

/** The largest request accepted; the NBD spec recommends clients stay within 32 MiB. */
export const payloadBytesMax = 32 * 1024 * 1024;
/** Parts of one request handed to the node at once (a 1 MiB request within 1 MiB pieces has at most 2). */
export const partsInFlightPerRequestMax = 8;
const errnoIo = 5;
const errnoShutdown = 108;
/** The zeros every WRITE_ZEROES writes from (a token's bytes are never changed, so one buffer serves all). */
let sharedZeroes: Buffer | null = null;

/**
 * Runs `body` on every part, at most `partsInFlightPerRequestMax` at a time,
 * and settles once all have: with the first failure, if any.
 */
async function eachPart(parts: readonly Part[], body: (part: Part) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (next < parts.length) {
      const part = parts[next]!;
      next += 1;
      try {
        await body(part);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(partsInFlightPerRequestMax, parts.length) }, worker));
  if (failure !== null) throw (failure as { error: unknown }).error;
}

interface Part {
  readonly operation: BlockOperation;
  /** Where this part sits in the request's buffer. */
  readonly bufferOffsetBytes: number;
  readonly lengthBytes: number;
}

/**
 * The load monitor's input: `issued` once per request per page it touches,
 * in the order the client sent them (so a sequential stream is seen as one,
 * however its answers come back), and `answered` when that request is. Both
 * must be quick; an error they throw is logged and never reaches the client,
 * whose request was served all the same.
 */
export interface BlockObserver {
  issued(pageKey: PageKey, kind: 'read' | 'write', offsetBlocks: number, lengthBlocks: number, bytes: number, clientId?: string): void;
  answered(pageKey: PageKey, latencyMs: number): void;
  failed(error: unknown): void;
}

export class VolumeBackend implements NbdBackend {
  readonly #runtime: ServerRuntime;
  /** Null when nobody observes (no balancer): then no part is timed either. */
  readonly #observe: BlockObserver | null;
  /**
   * Connections with a WRITE_ZEROES under way, which issues its chunks one
   * after another: once the connection closes, the rest are not issued (the
   * node forgets a closed connection, and a later request would make it known
   * again, for good). An entry lives only while a loop runs.
   */
  readonly #zeroing = new Map<NbdClientId, { closed: boolean; loops: number }>();

  constructor(runtime: ServerRuntime, observe?: BlockObserver) {
    this.#runtime = runtime;
    this.#observe = observe ?? null;
  }

  batch<T>(body: () => T): T {
    return this.#runtime.batch(body);
  }

  listExports(): ExportInfo[] {
    return Object.values(this.#runtime.state.volumes).sort((a, b) => a.name.localeCompare(b.name)).map((volume) => exportInfoOf(volume));
  }

  findExport(name: string): ExportInfo | null {
    const volume = ownValue(this.#runtime.state.volumes, name);
    return volume ? exportInfoOf(volume) : null;
  }

  read(exportName: string, offsetBytes: number, lengthBytes: number, clientId?: NbdClientId): Promise<Buffer> {
    let parts: Part[];
    try {
      parts = this.#parts(exportName, 'read', offsetBytes, lengthBytes, false);
    } catch (error) {
      return Promise.reject(error);
    }
    // One part (a request within one piece, as 4 KiB reads nearly always are): its bytes are the answer as they
    // are, with no buffer to zero and copy into. Bytes behind a token are never changed, so they may be sent as is.
    // When nobody observes, the reply is checked in one reaction to the runtime's promise, with no async function.
    if (parts.length === 1 && this.#observe === null) return this.#runtime.request(parts[0]!.operation, null, connectionOf(clientId)).then((reply) => checkedRead(reply, lengthBytes));
    const answered = this.#issued(parts, clientId);
    const read = parts.length === 1 ? this.#readPart(parts[0]!, clientId) : this.#readParts(parts, lengthBytes, clientId);
    return answered ? read.finally(answered) : read;
  }

  async #readParts(parts: readonly Part[], lengthBytes: number, clientId: NbdClientId | undefined): Promise<Buffer> {
    const result = Buffer.alloc(lengthBytes);
    await eachPart(parts, async (part) => {
      (await this.#readPart(part, clientId)).copy(result, part.bufferOffsetBytes);
    });
    return result;
  }

  async #readPart(part: Part, clientId: NbdClientId | undefined): Promise<Buffer> {
    return checkedRead(await this.#runtime.request(part.operation, null, connectionOf(clientId)), part.lengthBytes);
  }

  write(exportName: string, offsetBytes: number, data: Buffer, fua: boolean, clientId?: NbdClientId): Promise<void> {
    let parts: Part[];
    try {
      parts = this.#parts(exportName, 'write', offsetBytes, data.length, fua);
    } catch (error) {
      return Promise.reject(error);
    }
    // One part (a request within one piece, as 4 KiB writes nearly always are) needs no Promise.all around it, and
    // when nobody observes, no async function either: the reply is checked in one reaction to the runtime's promise.
    if (parts.length === 1 && this.#observe === null) return this.#runtime.request(parts[0]!.operation, data, connectionOf(clientId)).then(checkedWrite);
    const answered = this.#issued(parts, clientId);
    const written = parts.length === 1 ? this.#writePart(parts[0]!, data, clientId) : eachPart(parts, (part) => this.#writePart(part, data, clientId));
    return answered ? written.finally(answered) : written;
  }

  async #writePart(part: Part, data: Buffer, clientId: NbdClientId | undefined): Promise<void> {
    // A view, not a copy: the NBD front end hands over a payload it never changes (a slice of the bytes received,
    // which Node does not reuse), so the bytes a token holds cannot change under the node.
    const payload = part.lengthBytes === data.length ? data : data.subarray(part.bufferOffsetBytes, part.bufferOffsetBytes + part.lengthBytes);
    checked(await this.#runtime.request(part.operation, payload, connectionOf(clientId)));
  }

  /**
   * Tells the observer of a request as it is issued, once per page it touches
   * (a request split into pieces is still one operation on its page), and
   * returns what tells it the request was answered; null when nobody observes.
   */
  #issued(parts: readonly Part[], clientId: NbdClientId | undefined): (() => void) | null {
    const observe = this.#observe;
    if (observe === null) return null;
    const startedMs = performance.now();
    const pages: Array<{ pageKey: PageKey; kind: 'read' | 'write'; offsetBlocks: number; endBlocks: number; bytes: number }> = [];
    for (const { operation, lengthBytes } of parts) {
      const last = pages.at(-1);
      if (last && last.pageKey.volume === operation.pageKey.volume && last.pageKey.page === operation.pageKey.page) {
        last.endBlocks = operation.offsetBlocks + operation.lengthBlocks;
        last.bytes += lengthBytes;
      } else {
        pages.push({ pageKey: operation.pageKey, kind: operation.kind === 'read' ? 'read' : 'write', offsetBlocks: operation.offsetBlocks, endBlocks: operation.offsetBlocks + operation.lengthBlocks, bytes: lengthBytes });
      }
    }
    try {
      for (const page of pages) observe.issued(page.pageKey, page.kind, page.offsetBlocks, page.endBlocks - page.offsetBlocks, page.bytes, clientId);
    } catch (error) {
      observe.failed(error);
    }
    return () => {
      try {
        const latencyMs = performance.now() - startedMs;
        for (const page of pages) observe.answered(page.pageKey, latencyMs);
      } catch (error) {
        observe.failed(error);
      }
    };
  }

  async flush(exportName: string, clientId?: NbdClientId): Promise<void> {
    checked(await this.#runtime.flush(connectionOf(clientId), exportName));
  }

  connectionClosed(clientId: NbdClientId): void {
    const zeroing = this.#zeroing.get(connectionOf(clientId));
    if (zeroing) zeroing.closed = true;
    this.#runtime.connectionClosed(connectionOf(clientId));
  }

  /**
   * TRIM is a hint; the group keeps the data, which the NBD spec allows. With
   * FUA too it changes nothing that would need to be made durable, so it is
   * not a FLUSH: one would use up the connection's report of a lost write
   * (machines/node/loss-watch.ts) on a command whose failure a block layer
   * does not treat as a writeback error.
   */
  async trim(exportName: string, offsetBytes: number, lengthBytes: number, fua: boolean): Promise<void> {
    this.#parts(exportName, 'write', offsetBytes, lengthBytes, fua);
  }

  async writeZeroes(exportName: string, offsetBytes: number, lengthBytes: number, fua: boolean, clientId?: NbdClientId): Promise<void> {
    sharedZeroes ??= Buffer.alloc(payloadBytesMax);
    const zeroes = sharedZeroes;
    const connection = connectionOf(clientId);
    const zeroing = this.#zeroing.get(connection) ?? { closed: false, loops: 0 };
    this.#zeroing.set(connection, zeroing);
    zeroing.loops += 1;
    try {
      for (let doneBytes = 0; doneBytes < lengthBytes; doneBytes += zeroes.length) {
        if (zeroing.closed) throw new NbdError(errnoShutdown as never, 'connection closed during WRITE_ZEROES');
        const chunkBytes = Math.min(zeroes.length, lengthBytes - doneBytes);
        await this.write(exportName, offsetBytes + doneBytes, zeroes.subarray(0, chunkBytes), fua, clientId);
      }
    } finally {
      zeroing.loops -= 1;
      if (zeroing.loops === 0) this.#zeroing.delete(connection);
    }
  }

  #parts(exportName: string, kind: 'read' | 'write', offsetBytes: number, lengthBytes: number, fua: boolean): Part[] {
    const volume = ownValue(this.#runtime.state.volumes, exportName);
    if (!volume) throw new NbdError(22 as never, `no volume ${exportName}`);
    const blockBytes = volume.blockSizeBytes;
    if (offsetBytes % blockBytes !== 0 || lengthBytes % blockBytes !== 0) throw new NbdError(22 as never, 'request not aligned to the block size');
    const pieceBlocks = pieceSizeBlocks(volume);
    const parts: Part[] = [];
    let block = offsetBytes / blockBytes;
    const endBlock = block + lengthBytes / blockBytes;
    while (block < endBlock) {
      const page = Math.floor(block / volume.pageSizeBlocks);
      const offsetBlocks = block - page * volume.pageSizeBlocks;
      const pieceEndBlocks = (Math.floor(offsetBlocks / pieceBlocks) + 1) * pieceBlocks;
      const lengthBlocks = Math.min(pieceEndBlocks - offsetBlocks, endBlock - block);
      parts.push({
        operation: { kind, pageKey: { volume: volume.name, page }, offsetBlocks, lengthBlocks, fua },
        bufferOffsetBytes: (block * blockBytes) - offsetBytes, lengthBytes: lengthBlocks * blockBytes,
      });
      block += lengthBlocks;
    }
    return parts;
  }
}

/** The node's name for a client connection; a caller that names none shares one connection with every other such caller. */
function connectionOf(clientId: NbdClientId | undefined): string {
  return clientId ?? 'unnamed';
}

function checkedRead(reply: RuntimeReply, lengthBytes: number): Buffer {
  const data = checked(reply);
  if (!data || data.length !== lengthBytes) throw new NbdError(errnoIo as never, 'read returned no data');
  return data;
}

function checkedWrite(reply: RuntimeReply): undefined {
  checked(reply);
  return undefined;
}

function checked(reply: RuntimeReply): Buffer | null {
  if (reply.outcome.status === 'ok') return reply.data;
  if (reply.outcome.status === 'error') throw new NbdError(reply.outcome.errno as never, reply.outcome.reason);
  throw new NbdError(errnoIo as never, 'routing did not converge');
}

/** An export's description names at most this many of its volume's servers (the spec's strings are at most 4096 bytes). */
export const describedServersMax = 8;

/**
 * The servers a description names: a volume may span up to 256 servers with
 * ids of up to 32 characters, and listing them all made a description past
 * 4096 bytes, which the front end refused to send (a review: every
 * NBD_OPT_GO on such a volume closed the connection).
 */
function serversText(servers: readonly string[]): string {
  if (servers.length <= describedServersMax) return servers.join(', ');
  return `${servers.slice(0, describedServersMax).join(', ')} and ${servers.length - describedServersMax} more`;
}

export function exportInfoOf(volume: VolumeDefinition): ExportInfo {
  return {
    name: volume.name,
    sizeBytes: volume.pageCount * volume.pageSizeBlocks * volume.blockSizeBytes,
    description: `blockshift volume over ${serversText(volume.servers)}: ${volume.pageCount} pages of ${volume.pageSizeBlocks} blocks, ${volume.piecesPerPage} pieces each`,
    minimumBlockBytes: volume.blockSizeBytes,
    preferredBlockBytes: Math.max(4096, volume.blockSizeBytes),
    maximumPayloadBytes: payloadBytesMax,
    // A FLUSH is a group barrier that waits for every server holding a write this server acknowledged on any connection
    // to the volume (flush-barrier.ts), so its effect is visible across connections.
    canMultiConn: true,
  };
}
