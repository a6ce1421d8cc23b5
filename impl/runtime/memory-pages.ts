import type { PageKey } from '../../machines/identifiers.js';
import { pageKeyText } from '../../machines/identifiers.js';
import type { PageData } from './server-runtime.js';

/**
 * Page data in memory for runtime tests, written at once (as the page store
 * does for a page whose file is open); `writesDoneNow` counts those writes.
 */
export function memoryPages(): PageData & { writesDoneNow: number } {
  const pages = new Map<string, Buffer>();
  const pageOf = (pageKey: PageKey) => {
    let page = pages.get(pageKeyText(pageKey));
    if (!page) pages.set(pageKeyText(pageKey), (page = Buffer.alloc(8 * 512)));
    return page;
  };
  const store = {
    writesDoneNow: 0,
    read: async (pageKey: PageKey, offsetBlocks: number, lengthBlocks: number, blockSizeBytes: number) =>
      Buffer.from(pageOf(pageKey).subarray(offsetBlocks * blockSizeBytes, (offsetBlocks + lengthBlocks) * blockSizeBytes)),
    write: async (pageKey: PageKey, offsetBlocks: number, data: Buffer, blockSizeBytes: number) => {
      data.copy(pageOf(pageKey), offsetBlocks * blockSizeBytes);
    },
    writeNow: (pageKey: PageKey, offsetBlocks: number, data: Buffer, blockSizeBytes: number) => {
      data.copy(pageOf(pageKey), offsetBlocks * blockSizeBytes);
      store.writesDoneNow += 1;
      return true;
    },
    sync: async () => undefined,
    delete: async (pageKey: PageKey) => {
      pages.delete(pageKeyText(pageKey));
    },
  };
  return store;
}

