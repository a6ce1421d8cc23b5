/**
 * An in-memory NbdBackend: the reference for what a backend must do, and
 * the store the front end's tests run against.
 *
 * Each export is a sparse array of fixed-size chunks allocated on first
 * write, so a 64 MiB export costs nothing until written. A missing chunk
 * reads as zeroes; trim and write-zeroes free the chunks they cover whole
 * and zero the parts of the ones they cover partly. Memory is shared by all
 * connections and has no cache, so flush is a no-op and `canMultiConn` is
 * true. Operations complete in call order unless `delayMs` asks otherwise,
 * which the tests use to make replies overtake each other.
 */
import type { ExportInfo, NbdBackend } from './nbd-backend.js';
import { NbdError } from './nbd-error.js';
import { NBD_EINVAL, NBD_ENOSPC } from './protocol-constants.js';

export interface MemoryExportSpec {
  name: string;
  sizeBytes: number;
  description?: string;
}

export type MemoryOperation = 'read' | 'write' | 'flush' | 'trim' | 'writeZeroes';

export interface MemoryBackendOptions {
  /** Defaults to 32 MiB, the largest payload every client is expected to cope with. */
  maximumPayloadBytes?: number;
  minimumBlockBytes?: number;
  preferredBlockBytes?: number;
  /** Milliseconds to hold an operation before applying it; zero or absent applies it at once. */
  delayMs?: (operation: MemoryOperation, offsetBytes: number, lengthBytes: number) => number;
}

const CHUNK_BYTES = 64 * 1024;

interface MemoryExport {
  info: ExportInfo;
  chunks: Map<number, Buffer>;
}

export class MemoryBackend implements NbdBackend {
  private readonly exports = new Map<string, MemoryExport>();

  constructor(
    specs: MemoryExportSpec[],
    private readonly options: MemoryBackendOptions = {},
  ) {
    for (const spec of specs) {
      const info: ExportInfo = {
        name: spec.name,
        sizeBytes: spec.sizeBytes,
        minimumBlockBytes: options.minimumBlockBytes ?? 1,
        preferredBlockBytes: options.preferredBlockBytes ?? 4096,
        maximumPayloadBytes: options.maximumPayloadBytes ?? 32 * 1024 * 1024,
        canMultiConn: true,
      };
      if (spec.description !== undefined) info.description = spec.description;
      this.exports.set(spec.name, { info, chunks: new Map() });
    }
  }

  listExports(): ExportInfo[] {
    return [...this.exports.values()].map((entry) => ({ ...entry.info }));
  }

  findExport(name: string): ExportInfo | null {
    const entry = this.exports.get(name);
    return entry === undefined ? null : { ...entry.info };
  }

  /** Bytes currently allocated to chunks of one export, to show sparseness in tests. */
  allocatedBytes(exportName: string): number {
    return (this.exports.get(exportName)?.chunks.size ?? 0) * CHUNK_BYTES;
  }

  async read(exportName: string, offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    const entry = this.rangeOf(exportName, offsetBytes, lengthBytes, NBD_EINVAL);
    await this.delay('read', offsetBytes, lengthBytes);
    const data = Buffer.alloc(lengthBytes);
    this.forEachChunkPiece(offsetBytes, lengthBytes, (chunkIndex, chunkOffsetBytes, pieceBytes, dataOffsetBytes) => {
      const chunk = entry.chunks.get(chunkIndex);
      if (chunk !== undefined) chunk.copy(data, dataOffsetBytes, chunkOffsetBytes, chunkOffsetBytes + pieceBytes);
    });
    return data;
  }

  async write(exportName: string, offsetBytes: number, data: Buffer, _fua: boolean): Promise<void> {
    const entry = this.rangeOf(exportName, offsetBytes, data.length, NBD_ENOSPC);
    await this.delay('write', offsetBytes, data.length);
    this.forEachChunkPiece(offsetBytes, data.length, (chunkIndex, chunkOffsetBytes, pieceBytes, dataOffsetBytes) => {
      let chunk = entry.chunks.get(chunkIndex);
      if (chunk === undefined) {
        chunk = Buffer.alloc(CHUNK_BYTES);
        entry.chunks.set(chunkIndex, chunk);
      }
      data.copy(chunk, chunkOffsetBytes, dataOffsetBytes, dataOffsetBytes + pieceBytes);
    });
  }

  async flush(exportName: string): Promise<void> {
    this.entryOf(exportName);
    await this.delay('flush', 0, 0);
  }

  async trim(exportName: string, offsetBytes: number, lengthBytes: number, _fua: boolean): Promise<void> {
    this.rangeOf(exportName, offsetBytes, lengthBytes, NBD_EINVAL);
    await this.delay('trim', offsetBytes, lengthBytes);
    this.zeroRange(exportName, offsetBytes, lengthBytes);
  }

  async writeZeroes(exportName: string, offsetBytes: number, lengthBytes: number, _fua: boolean): Promise<void> {
    this.rangeOf(exportName, offsetBytes, lengthBytes, NBD_ENOSPC);
    await this.delay('writeZeroes', offsetBytes, lengthBytes);
    this.zeroRange(exportName, offsetBytes, lengthBytes);
  }

  private zeroRange(exportName: string, offsetBytes: number, lengthBytes: number): void {
    const entry = this.entryOf(exportName);
    this.forEachChunkPiece(offsetBytes, lengthBytes, (chunkIndex, chunkOffsetBytes, pieceBytes) => {
      if (pieceBytes === CHUNK_BYTES) entry.chunks.delete(chunkIndex);
      else entry.chunks.get(chunkIndex)?.fill(0, chunkOffsetBytes, chunkOffsetBytes + pieceBytes);
    });
  }

  private async delay(operation: MemoryOperation, offsetBytes: number, lengthBytes: number): Promise<void> {
    const delayMs = this.options.delayMs?.(operation, offsetBytes, lengthBytes) ?? 0;
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
  }

  private entryOf(exportName: string): MemoryExport {
    const entry = this.exports.get(exportName);
    if (entry === undefined) throw new NbdError(NBD_EINVAL, `no export ${JSON.stringify(exportName)}`);
    return entry;
  }

  /** The front end checks ranges already; a backend checks again because it is also called directly. */
  private rangeOf(exportName: string, offsetBytes: number, lengthBytes: number, errno: typeof NBD_EINVAL | typeof NBD_ENOSPC): MemoryExport {
    const entry = this.entryOf(exportName);
    if (!Number.isSafeInteger(offsetBytes) || !Number.isSafeInteger(lengthBytes) || offsetBytes < 0 || lengthBytes < 0) {
      throw new NbdError(NBD_EINVAL, 'offset and length must be non-negative integers');
    }
    if (offsetBytes + lengthBytes > entry.info.sizeBytes) throw new NbdError(errno, 'range beyond the end of the export');
    return entry;
  }

  private forEachChunkPiece(
    offsetBytes: number,
    lengthBytes: number,
    visit: (chunkIndex: number, chunkOffsetBytes: number, pieceBytes: number, dataOffsetBytes: number) => void,
  ): void {
    let doneBytes = 0;
    while (doneBytes < lengthBytes) {
      const positionBytes = offsetBytes + doneBytes;
      const chunkIndex = Math.floor(positionBytes / CHUNK_BYTES);
      const chunkOffsetBytes = positionBytes % CHUNK_BYTES;
      const pieceBytes = Math.min(CHUNK_BYTES - chunkOffsetBytes, lengthBytes - doneBytes);
      visit(chunkIndex, chunkOffsetBytes, pieceBytes, doneBytes);
      doneBytes += pieceBytes;
    }
  }
}
