/**
 * A throw-away local group for the cluster tests: three server processes on
 * ports picked for the test file, data in a temporary directory, and the
 * demo volumes of FIG. 9 (one over three servers, one over two).
 *
 * Ports. A group on base port B uses B..B+4 (NBD, up to five servers),
 * B+1000.. (peers), B+2000.. (admin) and B+2100.. (balance). Every test
 * file's range lies below 32768, outside Linux's range for outgoing
 * connections (32768-60999), so an outgoing connection can never hold a
 * port a server is about to listen on; ranges of files that may run at the
 * same time do not overlap: the fault harness 3809 and 3909 (+3000.. for its
 * proxies), add-balance 7809, add-drain 13809, move-pieces 16809,
 * power-cut-handover 10809, flush-after-power-cut 18950, flush-member-down
 * 19409, flush-after-restart 19609, real-clients 21809, forget-member 22309,
 * crash-restart 24809 and 24859, abandon-move 24909, trace-conformance 27809; the CLI tests
 * expect nobody on 30500 (admin 32500) and stand in for an admin API on
 * 32700.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NbdClient, NbdErrorReply } from '../jepsen/nbd-client.js';
import { runTool } from '../nbd/test-support.js';
import type { ServerStatus } from '../runtime/status-report.js';
import type { GroupConfig } from '../cli/group-config.js';
import { localGroupConfig } from '../cli/group-config.js';
import { LocalGroup } from '../cli/local-group.js';
import { LineWaiters } from '../cli/line-waiters.js';

export { runTool };

export interface ClusterFixture {
  readonly group: LocalGroup;
  readonly directory: string;
  readonly log: string[];
  /** Resolves on the first output line (from now on) that matches. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string>;
  close(): Promise<void>;
}

export async function startCluster(basePort: number, changes: Partial<GroupConfig> = {}, environment?: Readonly<Record<string, string>>): Promise<ClusterFixture> {
  const directory = mkdtempSync(join(tmpdir(), 'blockshift-cluster-'));
  const config = { ...localGroupConfig(join(directory, 'data'), 3, basePort), ...changes };
  const log: string[] = [];
  const waiters = new LineWaiters();
  const output = (id: string, line: string) => {
    const text = `[${id}] ${line}`;
    if (log.length < 10_000) log.push(text);
    waiters.offer(text);
  };
  const waitForLine = (pattern: RegExp, timeoutMs: number) => waiters.waitFor(pattern, timeoutMs);
  const group = new LocalGroup(config, directory, { output, environment });
  await group.startAll();
  await group.admin('s1', '/volumes', { name: 'alpha', pageCount: 3, servers: ['s1', 's2', 's3'], piecesPerPage: 4 });
  await group.admin('s1', '/volumes', { name: 'beta', pageCount: 2, servers: ['s1', 's2'], piecesPerPage: 4 });
  await eventually(async () => (await Promise.all(['s2', 's3'].map((id) => group.status(id)))).every((status) => status.volumes.length === 2), 5_000);
  return {
    group, directory, log, waitForLine,
    close: async () => {
      await group.stopAll();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

export async function eventually(check: () => Promise<boolean>, timeoutMs: number, intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`condition not reached within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** The server holding the valid copy of a page, asked of every live server. */
export async function ownerOf(group: LocalGroup, pageText: string): Promise<string | null> {
  for (const server of group.config.servers) {
    const status: ServerStatus | null = await group.status(server.id).catch(() => null);
    if (status?.copies[pageText]?.startsWith('valid')) return server.id;
  }
  return null;
}

export async function moveOf(group: LocalGroup, source: string, pageText: string): Promise<ServerStatus['moves'][number] | null> {
  const status = await group.status(source);
  return status.moves.find((move) => move.page === pageText) ?? null;
}

/** A FLUSH's outcome as its errno: 0 when it succeeded (an error that is not an NBD reply is thrown). */
/** A client of `volume` connected through `server`'s NBD port (5 s to connect). */
export function connectNbd(group: LocalGroup, server: string, volume: string): Promise<NbdClient> {
  const address = new URL(group.nbdUri(server, volume));
  return NbdClient.connect(address.hostname, Number(address.port), volume, 5_000);
}

export async function flushErrno(client: NbdClient, timeoutMs = 10_000): Promise<number> {
  try {
    await client.flush(timeoutMs);
    return 0;
  } catch (error) {
    if (error instanceof NbdErrorReply) return error.errno;
    throw error;
  }
}
