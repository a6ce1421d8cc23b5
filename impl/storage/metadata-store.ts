import * as nodePath from 'node:path';
import { open } from 'lmdb';
import type { Database, RootDatabase, RootDatabaseOptionsWithPath } from 'lmdb';
import { assert, pageKeyText } from '../../machines/identifiers.js';
import type { PageKey } from '../../machines/identifiers.js';
import type { DurableRecords, MetadataWrite } from '../../machines/node/node-io.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import type { LostClaim } from '../../machines/node/node-state.js';
import type { Membership } from '../../machines/membership/membership.js';
import { isNewerMembership } from '../../machines/membership/membership.js';
import { assertNever } from '../../machines/identifiers.js';
import type { DirectoryIdentity, StoredIdentity } from './data-directory.js';
import { makeDurableDirectorySync, syncDirectorySync } from './directory-sync.js';
import {
  lostClaimProblem, membershipProblem, metadataWriteProblem, moveCheckpointProblem, moveInputProblem, pageKeyProblem, replicaRecordProblem, routeProblem, sortedRecords, volumeProblem,
} from './metadata-records.js';
import type { StoredMove, StoredReplica, StoredRoute } from './metadata-records.js';

/**
 * A server's durable records (volumes, routes, replica records, move
 * checkpoints) in one LMDB environment under `<directory>/metadata`.
 *
 * Layout. Six named databases, JSON-encoded: `volumes` keyed by volume name,
 * `routes`, `replicas`, `moves` keyed by `${volume}/${page}`, and
 * `membership` holding one record under `current`, and `server` holding the
 * directory's identity under `identity` (data-directory.ts). A page-keyed
 * value repeats its page key, so a load can check the value against the key it
 * was found under. JSON keeps the records plain (no msgpack structure tables)
 * and readable with `mdb_dump`.
 *
 * Atomicity. `commit` applies a node's `meta.commit` (all of its writes) in one
 * LMDB child transaction: either every write is visible and durable, or none
 * is. The writes are checked before anything is queued, so a malformed write
 * rejects the commit and leaves the store untouched; a throw inside the child
 * transaction also rolls it back.
 *
 * Order. LMDB runs queued asynchronous transaction callbacks in the order they
 * were called, so commits are applied in the order the runtime issues them,
 * even when it does not wait for one before issuing the next (the node issues
 * fire-and-forget commits with a null completion id).
 *
 * Durability. The promise `commit` returns resolves only after LMDB's commit
 * has synced the data pages and the meta page. LMDB syncs on commit unless
 * `noSync` or `noMetaSync` is set; neither is set here. lmdb-js additionally
 * enables `overlappingSync` by default on Linux, and with it a write promise
 * resolves when the transaction is *committed* (visible), before it is
 * *flushed*: a power loss after the acknowledgement could then lose the
 * commit. The store therefore opens the environment with `overlappingSync:
 * false`, which makes the commit promise resolve after the synced commit.
 */
export class MetadataStore {
  readonly #root: RootDatabase;
  readonly #volumes: Database<VolumeDefinition, string>;
  readonly #routes: Database<StoredRoute, string>;
  readonly #replicas: Database<StoredReplica, string>;
  readonly #moves: Database<StoredMove, string>;
  /** One record under the key `current`: the newest membership this server adopted. */
  readonly #membership: Database<Membership, string>;
  /** One record under the key `current`: the claim to declare pages lost this server accepted or made last (machines/node/lost-pages.ts). */
  readonly #lostClaim: Database<LostClaim, string>;
  /** One record under the key `identity`: the server and group the directory belongs to (data-directory.ts). */
  readonly #server: Database<DirectoryIdentity, string>;
  #closed = false;

  readonly #path: string;

  private constructor(root: RootDatabase, path: string) {
    this.#root = root;
    this.#path = path;
    this.#volumes = root.openDB<VolumeDefinition, string>({ name: 'volumes', encoding: 'json' });
    this.#routes = root.openDB<StoredRoute, string>({ name: 'routes', encoding: 'json' });
    this.#replicas = root.openDB<StoredReplica, string>({ name: 'replicas', encoding: 'json' });
    this.#moves = root.openDB<StoredMove, string>({ name: 'moves', encoding: 'json' });
    this.#membership = root.openDB<Membership, string>({ name: 'membership', encoding: 'json' });
    this.#server = root.openDB<DirectoryIdentity, string>({ name: 'server', encoding: 'json' });
    this.#lostClaim = root.openDB<LostClaim, string>({ name: 'lostClaim', encoding: 'json' });
  }

  /** What the store says about its directory (see data-directory.ts). */
  storedIdentity(): StoredIdentity {
    assert(!this.#closed, 'the metadata store is open');
    const identity = this.#server.get('identity') ?? null;
    const empty = identity === null && [this.#volumes, this.#routes, this.#replicas, this.#moves, this.#membership, this.#lostClaim].every((database) => database.getKeysCount() === 0);
    return { identity, empty, record: async (next) => { await this.#server.put('identity', next); } };
  }

  /** Opens (creating if needed) the metadata of the server whose data directory is `directory`. */
  static open(directory: string): MetadataStore {
    const path = nodePath.join(directory, 'metadata');
    makeDurableDirectorySync(path);
    const options: RootDatabaseOptionsWithPath = {
      path,
      maxDbs: 8,
      // See "Durability" above: the commit promise must mean "flushed", not merely "committed".
      overlappingSync: false,
      // Child transactions (used for all-or-nothing commits) are unavailable with a cache or a write map.
      cache: false,
      useWritemap: false,
      compression: false,
    };
    assert(!options.noSync && !options.noMetaSync, 'the metadata store syncs every commit');
    const store = new MetadataStore(open(options), path);
    // Opening may have created data.mdb and lock.mdb; their directory entries must survive a power loss too.
    syncDirectorySync(path);
    return store;
  }

  /** Every durable record, checked for shape and sorted by volume, then page; a record that is not says where it is. */
  load(): DurableRecords {
    try {
      return this.#load();
    } catch (error) {
      throw new Error(`the metadata store ${this.#path} holds a damaged record: ${(error as Error).message}`, { cause: error });
    }
  }

  #load(): DurableRecords {
    assert(!this.#closed, 'the metadata store is open');
    const transaction = this.#root.useReadTransaction();
    try {
      const volumes: VolumeDefinition[] = [];
      for (const { key, value } of this.#volumes.getRange({ transaction })) {
        const problem = volumeProblem(value);
        assert(problem === null, `stored volume ${String(key)}: ${problem}`);
        assert(value.name === key, `stored volume ${String(key)} is named ${value.name}`);
        volumes.push(value);
      }
      const routes: StoredRoute[] = [];
      for (const { key, value } of this.#routes.getRange({ transaction })) {
        checkPageKeyed('route', key, value);
        const problem = routeProblem(value.route);
        assert(problem === null, `stored route ${key}: ${problem}`);
        routes.push({ pageKey: value.pageKey, route: value.route });
      }
      const replicas: StoredReplica[] = [];
      for (const { key, value } of this.#replicas.getRange({ transaction })) {
        checkPageKeyed('replica', key, value);
        const problem = replicaRecordProblem(value.record);
        assert(problem === null, `stored replica ${key}: ${problem}`);
        replicas.push({ pageKey: value.pageKey, record: value.record });
      }
      const moves: StoredMove[] = [];
      for (const { key, value } of this.#moves.getRange({ transaction })) {
        checkPageKeyed('move', key, value);
        const problem = moveInputProblem(value.input) ?? moveCheckpointProblem(value.checkpoint);
        assert(problem === null, `stored move ${key}: ${problem}`);
        assert(pageKeyText(value.input.pageKey) === key, `stored move ${key} has an input for ${pageKeyText(value.input.pageKey)}`);
        moves.push({ pageKey: value.pageKey, input: value.input, checkpoint: value.checkpoint });
      }
      const membership = this.#membership.get('current', { transaction }) ?? null;
      if (membership !== null) {
        const problem = membershipProblem(membership);
        assert(problem === null, `stored membership: ${problem}`);
      }
      const lostClaim = this.#lostClaim.get('current', { transaction }) ?? null;
      if (lostClaim !== null) {
        const problem = lostClaimProblem(lostClaim);
        assert(problem === null, `stored lost-pages claim: ${problem}`);
      }
      return sortedRecords({ volumes, routes, replicas, moves, membership, lostClaim });
    } finally {
      transaction.done();
    }
  }

  /** Applies every write atomically; resolves once all of them are durable, rejects (having applied none) otherwise. */
  async commit(writes: readonly MetadataWrite[]): Promise<void> {
    assert(!this.#closed, 'the metadata store is open');
    writes.forEach((write, index) => {
      const problem = metadataWriteProblem(write);
      assert(problem === null, `metadata write ${index} (${JSON.stringify(write)}): ${problem}`);
    });
    try {
      await this.#root.childTransaction(() => {
        for (const write of writes) this.#apply(write);
      });
    } catch (error) {
      // lmdb reports a failed write and a failed sync alike (EIO, even for EFBIG): the commit may have reached the
      // disk's meta page before its sync failed, so nobody can say it was not applied.
      throw Object.assign(new Error(`metadata commit failed, outcome unknown: ${(error as Error).message}`, { cause: error }), { outcomeUnknown: true });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#root.close();
  }

  /** Runs inside the commit's transaction: the synchronous puts and removes join it. */
  #apply(write: MetadataWrite): void {
    switch (write.kind) {
      case 'volume':
        this.#volumes.putSync(write.volume.name, write.volume);
        return;
      case 'route': {
        // Routing epochs only grow, on disk as in memory: commits become durable in the order they were issued, and a
        // route learnt late (an old push) may be issued after a flip to a newer epoch that is still being made durable.
        const key = pageKeyText(write.pageKey);
        if ((this.#routes.get(key)?.route.epoch ?? 0) > write.route.epoch) return;
        this.#routes.putSync(key, { pageKey: write.pageKey, route: write.route });
        return;
      }
      case 'replica':
        this.#replicas.putSync(pageKeyText(write.pageKey), { pageKey: write.pageKey, record: write.record });
        return;
      case 'move':
        this.#moves.putSync(pageKeyText(write.pageKey), { pageKey: write.pageKey, input: write.input, checkpoint: write.checkpoint });
        return;
      case 'move.delete':
        // Deleting a move that is not stored is not an error: the node may finish a move twice across a restart.
        this.#moves.removeSync(pageKeyText(write.pageKey));
        return;
      case 'lostClaim':
        this.#lostClaim.putSync('current', write.claim);
        return;
      case 'membership': {
        // Records only grow, also on disk, by the node's one "newer" rule: a commit issued before a newer one never overwrites it.
        const stored = this.#membership.get('current');
        if (!stored || !isNewerMembership(stored, write.membership)) this.#membership.putSync('current', write.membership);
        return;
      }
      default:
        assertNever(write, 'metadata write');
    }
  }
}

function checkPageKeyed(what: string, key: unknown, value: { readonly pageKey: PageKey }): void {
  assert(typeof value === 'object' && value !== null, `stored ${what} ${String(key)} is an object`);
  const problem = pageKeyProblem(value.pageKey);
  assert(problem === null, `stored ${what} ${String(key)}: ${problem}`);
  assert(pageKeyText(value.pageKey) === key, `stored ${what} under ${String(key)} names page ${pageKeyText(value.pageKey)}`);
}
