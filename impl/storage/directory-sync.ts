import * as fs from 'node:fs';
import * as nodePath from 'node:path';

/**
 * Making a directory entry durable. Creating, renaming or unlinking a file
 * changes its directory, and on Linux that change survives a power loss only
 * once the directory itself has been fsynced; syncing the file alone is not
 * enough. Both stores call these after every change to a directory that an
 * acknowledged operation depends on.
 */
export async function syncDirectory(path: string): Promise<void> {
  const handle = await fs.promises.open(path, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function syncDirectorySync(path: string): void {
  const descriptor = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(descriptor);
  } finally {
    fs.closeSync(descriptor);
  }
}

/**
 * Creates `path` and any missing parents, then fsyncs the parent of every
 * directory it created, so the new directories survive a power loss.
 */
export async function makeDurableDirectory(path: string): Promise<void> {
  const firstCreated = await fs.promises.mkdir(path, { recursive: true });
  if (firstCreated === undefined) return;
  // mkdir returns the first directory it created; that one and every directory below it up to `path` is new.
  for (const created of createdDirectories(path, firstCreated)) await syncDirectory(nodePath.dirname(created));
}

export function makeDurableDirectorySync(path: string): void {
  const firstCreated = fs.mkdirSync(path, { recursive: true });
  if (firstCreated === undefined) return;
  for (const created of createdDirectories(path, firstCreated)) syncDirectorySync(nodePath.dirname(created));
}

/** The directories from `path` up to and including `firstCreated`, deepest first. */
function createdDirectories(path: string, firstCreated: string): string[] {
  const top = nodePath.resolve(firstCreated);
  const created: string[] = [];
  for (let current = nodePath.resolve(path); ; current = nodePath.dirname(current)) {
    created.push(current);
    if (current === top || current === nodePath.dirname(current)) break;
  }
  return created;
}

/**
 * Replaces a small file's contents atomically and durably: the text goes to
 * a temporary file beside it, which is fsynced and renamed over the file,
 * and then the directory is fsynced. A crash at any point leaves the old
 * contents or the new, never a mix or nothing.
 */
export function replaceFileDurablySync(path: string, text: string): void {
  const temporary = `${path}.tmp`;
  const descriptor = fs.openSync(temporary, 'w');
  try {
    fs.writeSync(descriptor, text);
    fs.fsyncSync(descriptor);
  } finally {
    fs.closeSync(descriptor);
  }
  fs.renameSync(temporary, path);
  syncDirectorySync(nodePath.dirname(path));
}
