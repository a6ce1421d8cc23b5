/**
 * Deletes, at start, the page files whose copy this server has released.
 *
 * A source releases its copy after the flip in one step: it commits the
 * removal of its move record and deletes the page's data. The runtime hands
 * the commit to the metadata store and the delete to the page's queue, and
 * the two finish in either order (neither is awaited by the node). A kill
 * after the commit is durable but before the unlink left a durable `invalid`
 * record, no move record, and the page file for good: stale data the
 * explorer's "no stale data left behind" says never stays (a review
 * reproduced it, and so a failed unlink, which nothing retried). The model
 * deletes at once; the runtime makes it so here, before anything is served:
 * the file of a page whose durable record is `invalid`, with no move of it
 * recorded (a move resumes and releases its copy itself), is deleted. A file
 * with no durable record at all is left alone: its records may simply not be
 * durable yet (a volume's definition still being committed when the server
 * stopped), and its data may be a write the group acknowledged.
 */
import type { PageKey } from '../../machines/identifiers.js';
import type { DurableRecords } from '../../machines/node/node-io.js';
import { releasedPagesOf } from '../../machines/node/released-pages.js';

export interface SweptPageStore {
  storedPages(): Promise<PageKey[]>;
  delete(pageKey: PageKey): Promise<void>;
}

/** Deletes the released pages' files (machines/node/released-pages.ts says which); returns the pages deleted. */
export async function sweepReleasedPages(pages: SweptPageStore, durable: DurableRecords): Promise<PageKey[]> {
  const released = releasedPagesOf(durable, await pages.storedPages());
  for (const pageKey of released) await pages.delete(pageKey);
  return released;
}
