import type { PageKey } from '../identifiers.js';
import { pageKeyText } from '../identifiers.js';
import type { DurableRecords } from './node-io.js';

/**
 * The stored pages a server deletes at start, before it serves anything: those whose copy it has released. Both
 * runtimes apply it (impl/storage/released-page-sweep.ts, and the simulator's restart), so the rule is checked by
 * the explorer as it runs in the TCP server.
 *
 * A page's data is released in a step the node does not wait for (a source after its flip commits the removal of
 * its move record and deletes the data; a destination whose move was abandoned records its copy invalid, then
 * deletes the data), and a crash may come between: a durable `invalid` record with no move of the page recorded
 * (a move resumes and releases its copy itself) means the file is stale. So does data that reached a copy while the
 * record that would have made it `receiving` was not yet durable, when the durable record is still the older
 * `invalid` one. A page with no durable record at all is kept: its records may simply not be durable yet (a volume's
 * definition still being committed when the server stopped), and its data may be a write the group acknowledged.
 */
export function releasedPagesOf(durable: DurableRecords, storedPages: readonly PageKey[]): PageKey[] {
  const invalid = new Set(durable.replicas.filter(({ record }) => record.status === 'invalid').map(({ pageKey }) => pageKeyText(pageKey)));
  for (const { pageKey } of durable.moves) invalid.delete(pageKeyText(pageKey));
  return storedPages.filter((pageKey) => invalid.has(pageKeyText(pageKey)));
}
