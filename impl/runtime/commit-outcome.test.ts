import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bootstrapMembership } from '../../machines/membership/membership.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { DurableRecords, MetadataWrite } from '../../machines/node/node-io.js';
import { memoryPages } from './memory-pages.js';
import { ServerRuntime } from './server-runtime.js';

/**
 * A metadata commit whose outcome is unknown stops the server instead of
 * reaching the node, which would take it for a commit not applied (see
 * model-tests/explorer/failed-commit-outcome.test.ts for what that costs).
 * lmdb cannot say which it was: a write past the file size limit (EFBIG)
 * and a failed sync both come back as EIO.
 */
describe('a metadata commit that fails', () => {
  it('with its outcome unknown goes to the stop handler, not to the node', async () => {
    const commits: Array<readonly MetadataWrite[]> = [];
    const stopped: Error[] = [];
    const metadata = {
      load: (): DurableRecords => ({ volumes: [], routes: [], replicas: [], moves: [], membership: null }),
      commit: async (writes: readonly MetadataWrite[]) => {
        commits.push(writes);
        throw Object.assign(new Error('metadata commit failed, outcome unknown: Input/output error'), { outcomeUnknown: true });
      },
    };
    const runtime = new ServerRuntime({
      config: defaultNodeConfig('s1', ['s1']), incarnation: 1, pages: memoryPages(), metadata, peers: { send: () => undefined }, log: () => undefined,
      bootstrapMembership: bootstrapMembership([{ id: 's1', peer: null, admin: null, capacityWeight: 1, draining: false }]),
      onCommitOutcomeUnknown: (error) => stopped.push(error),
    });
    runtime.start();
    try {
      const created = runtime.createVolume({ name: 'v', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1'] });
      const answered = await Promise.race([created.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 200))]);
      expect(stopped.map((error) => error.message)).toEqual(['metadata commit failed, outcome unknown: Input/output error']);
      // The node never heard of the failure, so it neither answered nor tried the definition again.
      expect(answered).toBe(false);
      expect(commits).toHaveLength(1);
    } finally {
      runtime.stop();
    }
  });

  it('in lmdb is marked outcome unknown (a write past the file size limit reports EIO, as a failed sync would)', () => {
    const directory = mkdtempSync(join(tmpdir(), 'blockshift-commit-outcome-'));
    try {
      const script = `import { MetadataStore } from ${JSON.stringify(join(process.cwd(), 'impl/storage/metadata-store.ts'))};
        const store = MetadataStore.open(${JSON.stringify(directory)});
        for (let batch = 0; ; batch += 1) {
          const writes = Array.from({ length: 50 }, (_, i) => ({ kind: 'route', pageKey: { volume: 'v', page: batch * 50 + i }, route: { owner: 's1', epoch: 1 } }));
          try { await store.commit(writes); } catch (error) { console.log(JSON.stringify({ outcomeUnknown: error.outcomeUnknown, message: error.message })); process.exit(0); }
        }`;
      // 300 kB: lmdb's file grows past it after a few thousand routes (SIGXFSZ is ignored so the write fails instead).
      const run = spawnSync('prlimit', ['--fsize=300000', process.execPath, '--import', 'tsx', '--input-type=module', '-e', `process.on('SIGXFSZ', () => {}); ${script}`], { encoding: 'utf8', timeout: 60_000 });
      const line = run.stdout.trim().split('\n').at(-1) ?? '';
      expect(JSON.parse(line)).toEqual({ outcomeUnknown: true, message: expect.stringMatching(/^metadata commit failed, outcome unknown: /) });
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});
