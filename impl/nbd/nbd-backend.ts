/**
 * The contract between the NBD front end and whatever stores the blocks.
 *
 * The front end knows nothing of clusters, pages or migrations: it validates
 * every request against the export's size and block constraints, then calls
 * one of these methods with a range that is already known to be in bounds.
 * A backend may complete calls in any order; the front end replies to each
 * request as its own promise settles. A backend that wants to fail a request
 * with a particular NBD error rejects with `NbdError`; anything else becomes
 * EIO.
 */

export interface ExportInfo {
  name: string;
  sizeBytes: number;
  /** Free text shown by `nbdinfo --list`; at most 4096 bytes of UTF-8. */
  description?: string;
  /** A power of two no larger than 64 KiB; requests must be aligned to it. */
  minimumBlockBytes: number;
  /** A power of two at least `max(minimumBlockBytes, 512)`. */
  preferredBlockBytes: number;
  /** The largest READ or WRITE accepted; a multiple of `minimumBlockBytes`. */
  maximumPayloadBytes: number;
  /** True only when flush and FUA effects are visible across all connections. */
  canMultiConn: boolean;
}

/**
 * Names the connection a request came on (`#N address:port`, unique within a
 * server's lifetime), so a backend can tell clients apart, e.g. to measure
 * per-client load. Only a label: nothing about it is trusted.
 */
export type NbdClientId = string;

export interface NbdBackend {
  listExports(): ExportInfo[];
  findExport(name: string): ExportInfo | null;
  /** Resolves to exactly `lengthBytes` bytes. */
  read(exportName: string, offsetBytes: number, lengthBytes: number, clientId?: NbdClientId): Promise<Buffer>;
  /** With `fua`, resolves only once the data is durable. */
  write(exportName: string, offsetBytes: number, data: Buffer, fua: boolean, clientId?: NbdClientId): Promise<void>;
  /** Resolves once every write already acknowledged is durable; rejects (EIO) if one may have been lost. */
  flush(exportName: string, clientId?: NbdClientId): Promise<void>;
  /** A hint that the range is no longer needed; its contents become unspecified. */
  trim(exportName: string, offsetBytes: number, lengthBytes: number, fua: boolean): Promise<void>;
  /** After it resolves, the range reads as zeroes. */
  writeZeroes(exportName: string, offsetBytes: number, lengthBytes: number, fua: boolean, clientId?: NbdClientId): Promise<void>;
  /**
   * Optional: calls `body` once and returns its result. The front end issues
   * every request parsed from one socket read inside it, so a backend can
   * take them together (the server runtime steps its node once for all).
   */
  batch?<T>(body: () => T): T;
  /** Optional: the connection `clientId` closed; called once, after which no request of it is issued. */
  connectionClosed?(clientId: NbdClientId): void;
}
