import { writeSync } from 'node:fs';
import * as nodePath from 'node:path';
import { pathToFileURL } from 'node:url';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { volumePagesMax } from '../../machines/node/volume.js';
import { MetadataStore } from './metadata-store.js';
import { PageStore } from './page-store.js';

/**
 * The child process of the storage crash test: `node --import tsx
 * impl/storage/crash-writer.ts DIRECTORY`. It commits metadata and writes
 * pages as fast as it can and prints `ack N` once round N is durable (its
 * commit resolved, its FUA write resolved, and a plain write followed by
 * `sync(null)` resolved). The parent SIGKILLs it at an arbitrary moment and
 * checks that every acknowledged round survived.
 */
// As many pages as a volume may have: the writer takes a new page each round until it is killed.
export const crashVolume: VolumeDefinition = { name: 'crash', pageCount: volumePagesMax, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1'] };

/** The bytes round `round` writes to block `block` of its page, recognisable and different per round. */
export function crashPattern(round: number, block: number): Buffer {
  return Buffer.alloc(crashVolume.blockSizeBytes, (round * 7 + block * 13 + 1) % 251);
}

async function main(): Promise<void> {
  const directory = process.argv[2];
  if (directory === undefined) throw new Error('usage: crash-writer.ts DIRECTORY');
  const metadata = MetadataStore.open(directory);
  const pages = new PageStore(nodePath.join(directory, 'pages'), { handlesMax: 4 });
  await metadata.commit([{ kind: 'volume', volume: crashVolume }]);
  writeSync(1, 'ready\n');
  for (let round = 0; ; round += 1) {
    const pageKey = { volume: crashVolume.name, page: round };
    await metadata.commit([
      { kind: 'route', pageKey, route: { owner: 's1', epoch: round + 1 } },
      { kind: 'replica', pageKey, record: { status: 'valid', epoch: round + 1 } },
    ]);
    await pages.write(pageKey, 0, crashPattern(round, 0), crashVolume, true);
    await pages.write(pageKey, 5, crashPattern(round, 5), crashVolume, false);
    await pages.sync(null);
    writeSync(1, `ack ${round}\n`);
  }
}

// The test imports the volume and pattern from here; only running the file as a script starts the writer.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`crash-writer: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  });
}
