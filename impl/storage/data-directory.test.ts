import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { afterEach, describe, expect, it } from 'vitest';
import { checkDirectoryIdentity, claimDataDirectory } from './data-directory.js';
import { MetadataStore } from './metadata-store.js';

/**
 * A data directory belongs to one running server, and to one server of one
 * group for good. Each case is one a review reproduced: two servers on one
 * directory (spelt two ways) both started; swapped directories served each
 * other's pages; a deleted metadata store started an empty server beside the
 * old page files.
 */
const directories: string[] = [];
const fresh = () => {
  const directory = mkdtempSync(join(tmpdir(), 'blockshift-data-directory-'));
  directories.push(directory);
  return directory;
};
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

const s1 = { serverId: 's1', groupName: 'blockshift-local' };

async function opened(directory: string, identity = s1): Promise<void> {
  const store = MetadataStore.open(directory);
  try {
    await checkDirectoryIdentity(directory, identity, store.storedIdentity());
  } finally {
    await store.close();
  }
}

describe('the claim on a data directory', () => {
  it('refuses a second claim however the path is spelt, and gives the directory back on release', async () => {
    const directory = join(fresh(), 'node');
    const claim = await claimDataDirectory(directory);
    symlinkSync(directory, `${directory}-link`);
    for (const spelling of [directory, `${directory}/`, `${directory}/.`, `${directory}-link`]) {
      await expect(claimDataDirectory(spelling)).rejects.toThrow(`the data directory ${claim.realPath} is in use by another process (pid ${process.pid})`);
    }
    await claim.release();
    await (await claimDataDirectory(`${directory}-link`)).release();
  });

  it('is given back by the kernel when its process is killed with SIGKILL, leaving nothing stale', async () => {
    const directory = fresh();
    const script = `import { claimDataDirectory } from ${JSON.stringify(join(process.cwd(), 'impl/storage/data-directory.ts'))};
      await claimDataDirectory(${JSON.stringify(directory)}); process.stdout.write('claimed\\n'); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => { if (chunk.toString().includes('claimed')) resolve(); });
      child.once('exit', (code) => reject(new Error(`the child exited with ${code} before claiming`)));
    });
    await expect(claimDataDirectory(directory)).rejects.toThrow(`(pid ${child.pid})`);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    await (await claimDataDirectory(directory)).release();
  });
});

describe('the identity of a data directory', () => {
  it('records its server and group at the first start, and refuses another server or group after', async () => {
    const directory = fresh();
    await opened(directory);
    await opened(directory);
    await expect(opened(directory, { ...s1, serverId: 's2' })).rejects.toThrow(/belongs to server s1 of group blockshift-local .*not to s2/);
    await expect(opened(directory, { ...s1, groupName: 'other' })).rejects.toThrow(/belongs to server s1 of group blockshift-local .*not to s1 of other/);
  });

  it('refuses a directory whose metadata store lost its records, instead of starting an empty server', async () => {
    const directory = fresh();
    await opened(directory);
    rmSync(join(directory, 'metadata'), { recursive: true });
    await expect(opened(directory)).rejects.toThrow(/has lost its records/);
  });

  it('refuses a new store beside page files of an earlier life, and adopts a directory written before identities existed', async () => {
    const orphaned = fresh();
    mkdirSync(join(orphaned, 'pages', 'v'), { recursive: true });
    writeFileSync(join(orphaned, 'pages', 'v', '0.page'), 'x');
    await expect(opened(orphaned)).rejects.toThrow(/page files are there from an earlier life/);

    const older = fresh();
    const store = MetadataStore.open(older);
    await store.commit([{ kind: 'volume', volume: { name: 'v', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1'] } }]);
    await store.close();
    mkdirSync(join(older, 'pages', 'v'), { recursive: true });
    writeFileSync(join(older, 'pages', 'v', '0.page'), 'x');
    await opened(older);
    await expect(opened(older, { ...s1, serverId: 's2' })).rejects.toThrow(/belongs to server s1/);
  });
});

describe('a damaged metadata record', () => {
  it('is refused with the store named, not a bare JSON error', async () => {
    const directory = fresh();
    await (MetadataStore.open(directory)).close();
    const raw = open({ path: join(directory, 'metadata'), maxDbs: 8 });
    await raw.openDB({ name: 'volumes', encoding: 'binary' }).put('v', Buffer.from('{"name": "v", "pageCo'));
    await raw.close();
    const store = MetadataStore.open(directory);
    try {
      expect(() => store.load()).toThrow(new RegExp(`the metadata store ${join(directory, 'metadata')} holds a damaged record`));
    } finally {
      await store.close();
    }
  });
});
