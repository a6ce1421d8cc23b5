import { afterEach, describe, expect, it } from 'vitest';
import type { PageKey, ServerId } from '../../machines/identifiers.js';
import { pageKeyText } from '../../machines/identifiers.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { DurableRecords, MetadataWrite } from '../../machines/node/node-io.js';
import type { Metadata, PageData } from './server-runtime.js';
import { ServerRuntime } from './server-runtime.js';

/**
 * The bytes a peer message brings are held under its token just before that
 * message's effects are carried out, and let go once the writes that read
 * them are issued. Two messages of one batch may carry the same token (a
 * dual write the network or a retry repeats): each finds its bytes, because
 * the second one's are held after the first one's release, as the simulator
 * delivers them one at a time.
 * Here s1 moves a page to s2 while a client writes it; s2's syncs are held,
 * so the move stays in its copy stage (Table 1: writes go to both), and every
 * dual write s1 sends is delivered to s2 twice in one batch.
 */
class MemoryPages implements PageData {
  readonly #pages = new Map<string, Buffer>();
  readonly #heldSyncs: Array<() => void> = [];
  holdSyncs = false;

  #page(pageKey: PageKey): Buffer {
    let page = this.#pages.get(pageKeyText(pageKey));
    if (!page) this.#pages.set(pageKeyText(pageKey), (page = Buffer.alloc(8 * 512)));
    return page;
  }

  async read(pageKey: PageKey, offsetBlocks: number, lengthBlocks: number, blockSizeBytes: number): Promise<Buffer> {
    return Buffer.from(this.#page(pageKey).subarray(offsetBlocks * blockSizeBytes, (offsetBlocks + lengthBlocks) * blockSizeBytes));
  }

  async write(pageKey: PageKey, offsetBlocks: number, data: Buffer, blockSizeBytes: number): Promise<void> {
    data.copy(this.#page(pageKey), offsetBlocks * blockSizeBytes);
  }

  async sync(): Promise<void> {
    if (this.holdSyncs) await new Promise<void>((resolve) => this.#heldSyncs.push(resolve));
  }

  async delete(pageKey: PageKey): Promise<void> {
    this.#pages.delete(pageKeyText(pageKey));
  }

  blockAt(pageKey: PageKey, block: number): number {
    return this.#page(pageKey)[block * 512] ?? -1;
  }

  releaseSyncs(): void {
    this.holdSyncs = false;
    for (const release of this.#heldSyncs.splice(0)) release();
  }
}

const metadata = (): Metadata => ({
  load: (): DurableRecords => ({ volumes: [], routes: [], replicas: [], moves: [] }),
  commit: async (_writes: readonly MetadataWrite[]) => {},
});

const runtimes: ServerRuntime[] = [];
afterEach(() => {
  for (const runtime of runtimes.splice(0)) runtime.stop();
});

async function until(condition: () => boolean, what: string, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

describe('bytes a peer message brings', () => {
  it('are there for every message of a batch that carries them, and let go once written', async () => {
    const group: ServerId[] = ['s1', 's2'];
    const pages = { s1: new MemoryPages(), s2: new MemoryPages() };
    const byId = new Map<ServerId, ServerRuntime>();
    const written: Array<Extract<PeerMessage, { type: 'block.written' }>> = [];
    let dualWritesDoubled = 0;
    const peersOf = (self: ServerId) => ({
      send: (to: ServerId, message: PeerMessage, data: Buffer | null) => {
        if (message.type === 'block.written') written.push(message);
        setImmediate(() => {
          const receiver = byId.get(to);
          if (!receiver) return;
          if (message.type !== 'block.write') return receiver.receive(self, message, data);
          dualWritesDoubled += 1;
          receiver.batch(() => {
            receiver.receive(self, message, data && Buffer.from(data));
            receiver.receive(self, message, data && Buffer.from(data));
          });
        });
      },
    });
    for (const id of group) {
      const runtime = new ServerRuntime({ config: defaultNodeConfig(id, group), incarnation: 1, pages: pages[id as 's1' | 's2'], metadata: metadata(), peers: peersOf(id), log: () => undefined });
      byId.set(id, runtime);
      runtimes.push(runtime);
      runtime.start();
    }
    const s1 = byId.get('s1')!;
    const s2 = byId.get('s2')!;
    const pageKey = { volume: 'v', page: 0 };
    expect((await s1.createVolume({ name: 'v', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1'] })).ok).toBe(true);
    await until(() => s2.state.volumes['v'] !== undefined, 's2 to learn the volume');

    pages.s2.holdSyncs = true;
    const moved = s1.move(pageKey, 's2', 'unit');
    await until(() => s2.state.replicas.get(pageKeyText(pageKey))?.context.record?.status === 'receiving', 's2 to receive the copy');
    const replies = [1, 2, 3].map((byte) => s1.request({ kind: 'write', pageKey, offsetBlocks: byte, lengthBlocks: 1, fua: false }, Buffer.alloc(512, byte), 'test'));
    await until(() => written.length >= 6, 'six block.written answers (three dual writes, each delivered twice)');

    console.log(`dual writes delivered twice in one batch: ${dualWritesDoubled}; answers: ${JSON.stringify(written.map((answer) => answer.ok))}; tokens held by s2: ${s2.tokensHeld}`);
    expect(dualWritesDoubled).toBe(3);
    expect(written.every((answer) => answer.ok)).toBe(true);
    for (const block of [1, 2, 3]) expect(pages.s2.blockAt(pageKey, block)).toBe(block);
    // The piece copy's bytes and every dual write's are let go, though the copy's sync is still held.
    expect(s2.tokensHeld).toBe(0);

    pages.s2.releaseSyncs();
    expect((await Promise.all(replies)).map((reply) => reply.outcome.status)).toEqual(['ok', 'ok', 'ok']);
    expect((await moved).ok).toBe(true);
  });
});
