/**
 * Checks that an export's advertised geometry obeys the constraints the NBD
 * specification puts on NBD_INFO_BLOCK_SIZE and on the export size.
 *
 * A backend that advertises impossible sizes is a programming error, not a
 * client fault, so the front end throws rather than advertise them: a client
 * that trusted them could corrupt data or be refused every request.
 */
import type { ExportInfo } from './nbd-backend.js';
import { NBD_STRING_BYTES_MAX } from './protocol-constants.js';

/** Reads are answered in one structured chunk, whose 32-bit length also counts an 8-byte offset. */
export const MAXIMUM_PAYLOAD_BYTES_LIMIT = 2 ** 31;
const MINIMUM_BLOCK_BYTES_LIMIT = 2 ** 16;

function isPowerOfTwo(value: number): boolean {
  return Number.isInteger(value) && value > 0 && (value & (value - 1)) === 0;
}

/** Returns a description of the first violated constraint, or null when the export is sound. */
export function exportInfoProblem(info: ExportInfo): string | null {
  if (Buffer.byteLength(info.name, 'utf8') > NBD_STRING_BYTES_MAX) return 'name longer than 4096 bytes';
  if (info.description !== undefined && Buffer.byteLength(info.description, 'utf8') > NBD_STRING_BYTES_MAX) {
    return 'description longer than 4096 bytes';
  }
  if (!Number.isSafeInteger(info.sizeBytes) || info.sizeBytes < 0) return 'sizeBytes is not a non-negative safe integer';
  if (!isPowerOfTwo(info.minimumBlockBytes) || info.minimumBlockBytes > MINIMUM_BLOCK_BYTES_LIMIT) {
    return 'minimumBlockBytes is not a power of two of at most 64 KiB';
  }
  if (!isPowerOfTwo(info.preferredBlockBytes) || info.preferredBlockBytes < Math.max(info.minimumBlockBytes, 512)) {
    return 'preferredBlockBytes is not a power of two of at least max(minimumBlockBytes, 512)';
  }
  if (
    !Number.isInteger(info.maximumPayloadBytes) ||
    info.maximumPayloadBytes <= 0 ||
    info.maximumPayloadBytes > MAXIMUM_PAYLOAD_BYTES_LIMIT ||
    info.maximumPayloadBytes % info.minimumBlockBytes !== 0
  ) {
    return 'maximumPayloadBytes is not a positive multiple of minimumBlockBytes of at most 2 GiB';
  }
  if (info.maximumPayloadBytes < Math.min(info.preferredBlockBytes, info.sizeBytes)) {
    return 'maximumPayloadBytes is smaller than min(preferredBlockBytes, sizeBytes)';
  }
  if (info.sizeBytes % info.minimumBlockBytes !== 0) return 'sizeBytes is not a multiple of minimumBlockBytes';
  return null;
}

export function assertExportInfo(info: ExportInfo): void {
  const problem = exportInfoProblem(info);
  if (problem !== null) throw new Error(`export ${JSON.stringify(info.name)}: ${problem}`);
}
