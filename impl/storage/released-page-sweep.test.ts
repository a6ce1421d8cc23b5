import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DurableRecords } from '../../machines/node/node-io.js';
import { PageStore } from './page-store.js';
import { sweepReleasedPages } from './released-page-sweep.js';

/**
 * A source's copy released just before a kill: its move record's removal
 * durable, its file's unlink not done (the two are not ordered). The start
 * deletes exactly such files, and nothing a server may still need.
 */
const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

describe('the sweep of released pages at start', () => {
  it('deletes the file of a page recorded invalid with no move, and keeps every other', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'blockshift-sweep-'));
    directories.push(directory);
    const pages = new PageStore(directory);
    const page = (volume: string, number: number) => ({ volume, page: number });
    for (const pageKey of [page('v', 0), page('v', 1), page('v', 2), page('v', 3), page('w', 4)]) await pages.write(pageKey, 0, Buffer.alloc(512, 7), 512, true);
    const invalid = { status: 'invalid' as const, epoch: 2, owner: 's2', forwardTo: null };
    const durable = {
      volumes: [], routes: [], membership: null,
      replicas: [
        { pageKey: page('v', 0), record: invalid },
        { pageKey: page('v', 1), record: invalid },
        { pageKey: page('v', 2), record: { status: 'valid' as const, epoch: 1 } },
        { pageKey: page('v', 3), record: { status: 'receiving' as const, source: 's2', attempt: 1, epoch: 2 } },
      ],
      // v/1's move is still recorded: it resumes and releases the copy itself.
      moves: [{ pageKey: page('v', 1), input: {} as never, checkpoint: {} as never }],
    } as DurableRecords;
    expect(await sweepReleasedPages(pages, durable)).toEqual([page('v', 0)]);
    // w/4 has no durable record at all (its volume's definition may not have been durable yet): kept.
    expect(await pages.storedPages()).toEqual([page('v', 1), page('v', 2), page('v', 3), page('w', 4)]);
    await pages.close();
  });
});
