/**
 * A server's claim on its data directory, taken before anything in it is
 * opened, and the identity the directory keeps.
 *
 * Exclusive. LMDB lets several processes open one store, so two servers
 * given one directory (the same path spelt `/x/s1` and `/x/s1/`, a symbolic
 * link, or a second start of a running server) both started, and each then
 * believed it held the valid copy of every page either had (a review
 * reproduced it). The claim is a listening Unix socket in Linux's abstract
 * namespace, named after the directory's real path: binding it fails while
 * another process holds it, and the kernel releases it when the process
 * dies however it dies, so no stale lock file is ever left behind after a
 * `kill -9` or a power cut.
 *
 * Identity. The directory remembers which server of which group it belongs
 * to, in `identity.json` and in the metadata store (the caller writes the
 * store's copy). A directory of another server or group is refused: two
 * servers started with their directories swapped served each other's pages
 * and failed every read. A directory whose identity file survives but whose
 * metadata store has lost its copy (a deleted or truncated `data.mdb`) is
 * refused too, instead of starting as a new, empty server beside page files
 * it no longer knows; so is a fresh store beside existing page files.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { makeDurableDirectorySync, replaceFileDurablySync } from './directory-sync.js';

export interface DirectoryIdentity {
  readonly serverId: string;
  readonly groupName: string;
}

export interface DataDirectoryClaim {
  /** The directory's real path (symbolic links resolved), which names the claim. */
  readonly realPath: string;
  release(): Promise<void>;
}

/** Claims `directory` (creating it durably if need be) for this process, or says which process holds it. */
export async function claimDataDirectory(directory: string): Promise<DataDirectoryClaim> {
  makeDurableDirectorySync(directory);
  const realPath = realpathSync(directory);
  const name = `\0blockshift-data-${createHash('sha256').update(realPath).digest('hex').slice(0, 40)}`;
  const server = net.createServer((socket) => socket.end(`${process.pid}\n`));
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(name, () => resolve());
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    const holder = await holderOf(name);
    throw new Error(`the data directory ${realPath} is in use by another process${holder ? ` (pid ${holder})` : ''}: two servers may not share one`);
  }
  // The claim must not keep a stopping process alive.
  server.unref();
  return { realPath, release: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

function holderOf(name: string): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = net.connect(name);
    let text = '';
    socket.setTimeout(1_000, () => socket.destroy());
    socket.on('data', (chunk) => { text += chunk.toString('utf8'); });
    socket.on('error', () => resolve(null));
    socket.on('close', () => resolve(text.trim() || null));
  });
}

const identityFile = 'identity.json';

/** What the directory's metadata store says about it. */
export interface StoredIdentity {
  readonly identity: DirectoryIdentity | null;
  /** No record of any kind: a new store, or one that lost its contents. */
  readonly empty: boolean;
  /** Records the identity durably in the store. */
  record(identity: DirectoryIdentity): Promise<void>;
}

/**
 * Checks that the directory belongs to `expected` and records the identity
 * where it is missing: in the store first, then in the file, so that a crash
 * between the two never leaves a file that claims a store it is not in.
 * Throws with the reason when the directory must not be used. A directory
 * written before identities existed (records, but no identity) is adopted.
 */
export async function checkDirectoryIdentity(directory: string, expected: DirectoryIdentity, store: StoredIdentity): Promise<void> {
  const path = join(directory, identityFile);
  const onFile = readIdentityFile(path);
  for (const [where, identity] of [['its identity file', onFile], ['its metadata store', store.identity]] as const) {
    if (identity && (identity.serverId !== expected.serverId || identity.groupName !== expected.groupName)) {
      throw new Error(`the data directory ${directory} belongs to server ${identity.serverId} of group ${identity.groupName} (so says ${where}), ` +
        `not to ${expected.serverId} of ${expected.groupName}: is the configuration's dataDirectory right?`);
    }
  }
  if (onFile && !store.identity && store.empty) {
    throw new Error(`the metadata store in ${directory} has lost its records (${path} says the directory is ${onFile.serverId}'s, and the store is empty): ` +
      'restore it from a backup, or remove the whole directory to start this server afresh');
  }
  if (!onFile && store.empty && hasPageFiles(join(directory, 'pages'))) {
    throw new Error(`the metadata store in ${directory} is empty, but page files are there from an earlier life: restore the store, or remove the whole directory to start afresh`);
  }
  if (!store.identity) await store.record(expected);
  if (!onFile) replaceFileDurablySync(path, `${JSON.stringify(expected)}\n`);
}

function readIdentityFile(path: string): DirectoryIdentity | null {
  if (!existsSync(path)) return null;
  let value: Partial<DirectoryIdentity>;
  try {
    value = JSON.parse(readFileSync(path, 'utf8')) as Partial<DirectoryIdentity>;
  } catch (error) {
    throw new Error(`${path} holds no identity (${(error as Error).message})`);
  }
  if (typeof value?.serverId !== 'string' || typeof value.groupName !== 'string') throw new Error(`${path} holds no identity: ${JSON.stringify(value)}`);
  return { serverId: value.serverId, groupName: value.groupName };
}

function hasPageFiles(pagesDirectory: string): boolean {
  if (!existsSync(pagesDirectory)) return false;
  return readdirSync(pagesDirectory, { withFileTypes: true }).some((entry) => entry.isDirectory() && readdirSync(join(pagesDirectory, entry.name)).length > 0);
}
