/**
 * A server's durable metadata — volume definitions, routing tables with
 * epochs, replica records (valid, receiving, invalid with forwarding
 * pointer) and move checkpoints — in lmdb.
 *
 * Every `meta.commit` effect becomes one lmdb transaction, so its writes land
 * all together or not at all; the promise resolves only after lmdb has
 * synced the transaction to disk (the default: `noSync` and `noMetaSync` are
 * deliberately left off, since a checkpoint must be durable before the stage
 * it records takes effect). Keys are `<kind>/<volume>/<page>`.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';
import type { RootDatabase } from 'lmdb';
import type { PageKey } from '../../machines/identifiers.js';
import { assert, pageKeyText } from '../../machines/identifiers.js';
import type { DurableRecords, MetadataWrite } from '../../machines/node/node-io.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';

type Stored =
  | { kind: 'volume'; volume: VolumeDefinition }
  | { kind: 'route'; pageKey: PageKey; route: DurableRecords['routes'][number]['route'] }
  | { kind: 'replica'; pageKey: PageKey; record: DurableRecords['replicas'][number]['record'] }
  | { kind: 'move'; pageKey: PageKey; input: DurableRecords['moves'][number]['input']; checkpoint: DurableRecords['moves'][number]['checkpoint'] };

export class MetadataStore {
  readonly #db: RootDatabase<Stored, string>;

  private constructor(db: RootDatabase<Stored, string>) {
    this.#db = db;
  }

  static open(directory: string): MetadataStore {
    mkdirSync(directory, { recursive: true });
    return new MetadataStore(open<Stored, string>({ path: join(directory, 'metadata.lmdb'), encoding: 'json' }));
  }

  load(): DurableRecords {
    const volumes: VolumeDefinition[] = [];
    const routes: Array<DurableRecords['routes'][number]> = [];
    const replicas: Array<DurableRecords['replicas'][number]> = [];
    const moves: Array<DurableRecords['moves'][number]> = [];
    for (const { key, value } of this.#db.getRange({})) {
      assert(typeof value === 'object' && value !== null && 'kind' in value, `metadata record ${key} has a kind`);
      switch (value.kind) {
        case 'volume': volumes.push(value.volume); break;
        case 'route': routes.push({ pageKey: value.pageKey, route: value.route }); break;
        case 'replica': replicas.push({ pageKey: value.pageKey, record: value.record }); break;
        case 'move': moves.push({ pageKey: value.pageKey, input: value.input, checkpoint: value.checkpoint }); break;
        default: throw new Error(`metadata record ${key} has an unknown kind`);
      }
    }
    return { volumes, routes, replicas, moves };
  }

  /** Applies the writes in one transaction; resolves once it is durable. */
  async commit(writes: readonly MetadataWrite[]): Promise<void> {
    const ok = await this.#db.transaction(() => {
      for (const write of writes) {
        switch (write.kind) {
          case 'volume': this.#db.put(`volume/${write.volume.name}`, { kind: 'volume', volume: write.volume }); break;
          case 'route': this.#db.put(`route/${pageKeyText(write.pageKey)}`, { kind: 'route', pageKey: write.pageKey, route: write.route }); break;
          case 'replica': this.#db.put(`replica/${pageKeyText(write.pageKey)}`, { kind: 'replica', pageKey: write.pageKey, record: write.record }); break;
          case 'move': this.#db.put(`move/${pageKeyText(write.pageKey)}`, { kind: 'move', pageKey: write.pageKey, input: write.input, checkpoint: write.checkpoint }); break;
          case 'move.delete': this.#db.remove(`move/${pageKeyText(write.pageKey)}`); break;
          default: throw new Error(`unknown metadata write ${(write as { kind: string }).kind}`);
        }
      }
      return true;
    });
    assert(ok === true, 'metadata transaction committed');
  }

  async close(): Promise<void> {
    await this.#db.close();
  }
}
