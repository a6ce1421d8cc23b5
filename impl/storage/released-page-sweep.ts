/**
 * Deletes, at start and before anything is served, the page files whose copy
 * this server has released: which ones is machines/node/released-pages.ts's
 * rule (shared with the simulator's restart, so the explorer checks it).
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
