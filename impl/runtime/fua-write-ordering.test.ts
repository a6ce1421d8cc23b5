import { afterEach, describe, expect, it } from 'vitest';
import type { PageKey } from '../../machines/identifiers.js';
import { pageKeyText } from '../../machines/identifiers.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { DurableRecords, MetadataWrite } from '../../machines/node/node-io.js';
import type { Metadata, PageData } from './server-runtime.js';
import { ServerRuntime } from './server-runtime.js';

/**
 * A FUA write takes its turn on its page for the write only: the sync that
 * makes it durable runs outside the page's queue, so later requests to the
 * page are not held behind an fdatasync, while the FUA write itself is
 * answered only after that sync. The page data is a fake whose syncs the
 * test releases by hand.
 */
class HeldSyncPages implements PageData {
  readonly log: string[] = [];
  readonly #blocks = new Map<string, Buffer>();
  readonly #heldSyncs: Array<() => void> = [];
  holdSyncs = false;
  failWrites = false;

  async read(pageKey: PageKey, offsetBlocks: number, lengthBlocks: number, blockSizeBytes: number): Promise<Buffer> {
    this.log.push(`read ${offsetBlocks}`);
    const data = Buffer.alloc(lengthBlocks * blockSizeBytes);
    for (let block = 0; block < lengthBlocks; block += 1) this.#blocks.get(`${pageKeyText(pageKey)}#${offsetBlocks + block}`)?.copy(data, block * blockSizeBytes);
    return data;
  }

  async write(pageKey: PageKey, offsetBlocks: number, data: Buffer, blockSizeBytes: number, durable: boolean): Promise<void> {
    this.log.push(`write ${offsetBlocks}${durable ? ' FUA' : ''}`);
    if (this.failWrites) throw new Error('disk says no');
    for (let block = 0; block * blockSizeBytes < data.length; block += 1) {
      this.#blocks.set(`${pageKeyText(pageKey)}#${offsetBlocks + block}`, Buffer.from(data.subarray(block * blockSizeBytes, (block + 1) * blockSizeBytes)));
    }
    // As the real page store: a FUA write syncs before it resolves.
    if (durable) await this.sync(pageKey);
  }

  async sync(pageKey: PageKey | null): Promise<void> {
    this.log.push(`sync ${pageKey === null ? 'all' : pageKeyText(pageKey)}`);
    if (this.holdSyncs) await new Promise<void>((resolve) => this.#heldSyncs.push(resolve));
  }

  async delete(): Promise<void> {}

  releaseSyncs(): void {
    this.holdSyncs = false;
    for (const release of this.#heldSyncs.splice(0)) release();
  }
}

const metadata: Metadata = {
  load: (): DurableRecords => ({ volumes: [], routes: [], replicas: [], moves: [] }),
  commit: async (_writes: readonly MetadataWrite[]) => {},
};

const runtimes: ServerRuntime[] = [];
afterEach(() => {
  for (const runtime of runtimes.splice(0)) runtime.stop();
});

async function startedRuntime(pages: PageData): Promise<ServerRuntime> {
  const runtime = new ServerRuntime({ config: defaultNodeConfig('s1', ['s1']), incarnation: 1, pages, metadata, peers: { send: () => undefined }, log: () => undefined });
  runtimes.push(runtime);
  runtime.start();
  const created = await runtime.createVolume({ name: 'v', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1'] });
  expect(created.ok).toBe(true);
  return runtime;
}

const pageKey = { volume: 'v', page: 0 };

async function pending(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(() => { settled = true; });
  for (let turn = 0; turn < 20; turn += 1) await new Promise((resolve) => setImmediate(resolve));
  return !settled;
}

describe('FUA writes in the runtime', () => {
  it('lets later requests to the page run while the FUA write waits for its sync, and answers the write only after it', async () => {
    const pages = new HeldSyncPages();
    const runtime = await startedRuntime(pages);
    pages.holdSyncs = true;
    const written = runtime.request({ kind: 'write', pageKey, offsetBlocks: 0, lengthBlocks: 1, fua: true }, Buffer.alloc(512, 0x5a), 'test');
    const read = runtime.request({ kind: 'read', pageKey, offsetBlocks: 0, lengthBlocks: 1, fua: false }, null, 'test');
    // The read is answered while the sync is still held (awaiting it outright would hang if it were queued behind the sync).
    expect(await pending(read)).toBe(false);
    const readReply = await read;
    expect(readReply.outcome.status).toBe('ok');
    expect(readReply.data).toEqual(Buffer.alloc(512, 0x5a));
    expect(await pending(written)).toBe(true);
    // The write went in first, its sync after it; the read did not wait for the sync.
    expect(pages.log).toEqual(['write 0', `sync ${pageKeyText(pageKey)}`, 'read 0']);
    pages.releaseSyncs();
    expect((await written).outcome.status).toBe('ok');
  });

  it('answers a FUA write whose write failed with an error, without a sync', async () => {
    const pages = new HeldSyncPages();
    const runtime = await startedRuntime(pages);
    pages.failWrites = true;
    const reply = await runtime.request({ kind: 'write', pageKey, offsetBlocks: 1, lengthBlocks: 1, fua: true }, Buffer.alloc(512, 1), 'test');
    expect(reply.outcome.status).toBe('error');
    expect(pages.log).toEqual(['write 1']);
  });
});
