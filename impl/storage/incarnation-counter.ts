/**
 * A server's incarnation: how many times it has started on this data
 * directory. The node numbers its write sequences above every earlier
 * incarnation's (write sequences themselves are volatile), so the counter
 * must grow across crashes: it is bumped, written to a temporary file,
 * fsynced and renamed into place before the server does anything else.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { incarnationsMax } from '../../machines/node/node-state.js';
import { replaceFileDurablySync } from './directory-sync.js';

/**
 * The node's write-sequence space holds `incarnationsMax` incarnations (machines/node/node-state.ts). This bound was
 * a copy of it, 2^20 while the node's was 2^16: a server past the node's would have stopped on the node's assertion at
 * start instead of on this clear error.
 */
export { incarnationsMax };

/** A server's first start on its data directory: no earlier incarnation of it ever ran (machines/node/incarnation-fence.ts). */
export const firstIncarnation = 1;

export function nextIncarnation(dataDirectory: string): number {
  const path = join(dataDirectory, 'incarnation');
  let previous = firstIncarnation - 1;
  try {
    previous = Number(readFileSync(path, 'utf8').trim());
  } catch (error) {
    // Only a first start has no counter. Any other failure to read it (EIO, EACCES) must stop the start: counting from
    // 0 again would reuse request ids and write sequences of earlier incarnations (a review helper noticed).
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    previous = firstIncarnation - 1;
  }
  if (!Number.isSafeInteger(previous) || previous < 0) throw new Error(`${path} holds no incarnation number`);
  const next = previous + 1;
  if (next >= incarnationsMax) throw new Error(`${path}: more than ${incarnationsMax} restarts on one data directory`);
  replaceFileDurablySync(path, `${next}\n`);
  return next;
}
