/**
 * The server processes of one harness run, supervised directly.
 *
 * Why not LocalGroup: the harness needs each child's pid (SIGSTOP/SIGCONT)
 * and a different config file per server. Partitions put a proxy between
 * every pair of servers, so server s_i's config names its own real peer
 * listener but every other server's *proxy* address (each server listens on
 * its own `peer` entry and dials the others' entries). LocalGroup writes one
 * config for all and keeps its children private, so this supervisor spawns
 * `impl/cli/server-main.ts` itself, the same way LocalGroup does.
 *
 * Output lines are handed to `onLine` (the nemesis waits on checkpoint
 * lines) and kept, bounded, for the run's log file.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Address, GroupConfig } from '../cli/group-config.js';
import { groupConfigProblem } from '../cli/group-config.js';
import type { ServerStatus } from '../runtime/status-report.js';

const repositoryRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const logLinesMax = 200_000;

export interface JepsenGroupOptions {
  /** The group as the servers really listen (real peer ports). */
  readonly config: GroupConfig;
  /** Server id → the proxy address other servers must dial instead of its peer port. */
  readonly proxyAddresses: Readonly<Record<string, Address>>;
  readonly directory: string;
  readonly environment: Readonly<Record<string, string>>;
  readonly onLine: (line: string) => void;
}

export class JepsenGroup {
  readonly config: GroupConfig;
  readonly log: string[] = [];
  readonly #options: JepsenGroupOptions;
  readonly #processes = new Map<string, ChildProcess>();
  readonly #paused = new Set<string>();
  readonly #configPaths = new Map<string, string>();

  constructor(options: JepsenGroupOptions) {
    this.#options = options;
    this.config = options.config;
    mkdirSync(options.directory, { recursive: true });
    for (const self of options.config.servers) {
      const view: GroupConfig = {
        ...options.config,
        servers: options.config.servers.map((server) => (server.id === self.id ? server : { ...server, peer: options.proxyAddresses[server.id] ?? server.peer })),
      };
      const problem = groupConfigProblem(view);
      if (problem) throw new Error(`bad group config for ${self.id}: ${problem}`);
      const path = join(options.directory, `group-${self.id}.json`);
      writeFileSync(path, `${JSON.stringify(view, null, 2)}\n`);
      this.#configPaths.set(self.id, path);
    }
  }

  get serverIds(): string[] {
    return this.config.servers.map((server) => server.id);
  }

  isRunning(id: string): boolean {
    const child = this.#processes.get(id);
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  isPaused(id: string): boolean {
    return this.#paused.has(id);
  }

  async start(id: string, timeoutMs = 30_000): Promise<void> {
    if (this.isRunning(id)) return;
    const server = this.#server(id);
    mkdirSync(server.dataDirectory, { recursive: true });
    const child = spawn(process.execPath, ['--import', 'tsx', join(repositoryRoot, 'impl/cli/server-main.ts'), this.#configPaths.get(id)!, id], {
      cwd: repositoryRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.#options.environment },
    });
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream?.on('data', (chunk: Buffer) => {
        const lines = (partial + chunk.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          const text = line.startsWith('[') ? line : `[${id}] ${line}`;
          if (this.log.length < logLinesMax) this.log.push(text);
          this.#options.onLine(text);
        }
      });
    }
    this.#processes.set(id, child);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.status(id);
        return;
      } catch (error) {
        if (!this.isRunning(id)) throw new Error(`${id} exited while starting`);
        if (Date.now() > deadline) throw new Error(`${id} did not come up: ${(error as Error).message}`);
        await sleep(50);
      }
    }
  }

  /** SIGKILL; resolves once the process is gone. A paused process dies too (SIGKILL needs no SIGCONT). */
  async kill(id: string): Promise<void> {
    const child = this.#processes.get(id);
    this.#paused.delete(id);
    if (!child || !this.isRunning(id)) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    this.#processes.delete(id);
  }

  /** SIGTERM: the server syncs and closes its stores. */
  async stop(id: string): Promise<void> {
    const child = this.#processes.get(id);
    if (this.#paused.has(id)) this.resume(id);
    if (!child || !this.isRunning(id)) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
    this.#processes.delete(id);
  }

  pause(id: string): void {
    const child = this.#processes.get(id);
    if (!child || !this.isRunning(id)) return;
    child.kill('SIGSTOP');
    this.#paused.add(id);
  }

  resume(id: string): void {
    const child = this.#processes.get(id);
    this.#paused.delete(id);
    if (child && this.isRunning(id)) child.kill('SIGCONT');
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.serverIds.map((id) => this.stop(id)));
  }

  async admin<T>(id: string, path: string, body?: unknown, timeoutMs = 5_000): Promise<T> {
    const server = this.#server(id);
    const response = await fetch(`http://${server.admin.host}:${server.admin.port}${path}`, {
      signal: AbortSignal.timeout(timeoutMs),
      ...(body === undefined ? {} : { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    const result = await response.json() as T & { message?: string };
    if (!response.ok) throw new Error(`${id}: ${result.message ?? response.statusText}`);
    return result;
  }

  status(id: string): Promise<ServerStatus> {
    return this.admin<ServerStatus>(id, '/status');
  }

  nbdAddress(id: string): Address {
    return this.#server(id).nbd;
  }

  #server(id: string) {
    const server = this.config.servers.find((candidate) => candidate.id === id);
    if (!server) throw new Error(`no server ${id}`);
    return server;
  }
}

export function sleep(durationMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, durationMs));
}
