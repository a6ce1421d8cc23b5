/**
 * The server processes of one harness run, supervised directly.
 *
 * Why not LocalGroup: the harness pauses servers (SIGSTOP/SIGCONT) and
 * needs a different config file per server. Partitions put a proxy between
 * every pair of servers, so server s_i's config names its own real peer
 * listener but every other server's *proxy* address (each server listens on
 * its own `peer` entry and dials the others' entries). LocalGroup writes one
 * config for all, so this supervisor keeps its own; both run each server
 * through `ServerProcess`.
 *
 * Output lines are handed to `onLine` (the nemesis waits on checkpoint
 * lines) and kept, bounded, for the run's log file.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Address, GroupConfig } from '../cli/group-config.js';
import { groupConfigProblem } from '../cli/group-config.js';
import { adminRequest } from '../cli/admin-client.js';
import { ServerProcess } from '../cli/server-process.js';
import type { ServerStatus } from '../runtime/status-report.js';

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
  readonly #processes = new Map<string, ServerProcess>();
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
    return this.#processes.get(id)?.running ?? false;
  }

  isPaused(id: string): boolean {
    return this.#paused.has(id);
  }

  async start(id: string, timeoutMs = 30_000): Promise<void> {
    if (this.isRunning(id)) return;
    const server = this.#server(id);
    mkdirSync(server.dataDirectory, { recursive: true });
    this.#processes.set(id, new ServerProcess({
      configPath: this.#configPaths.get(id)!, serverId: id, environment: this.#options.environment,
      output: (line) => {
        const text = line.startsWith('[') ? line : `[${id}] ${line}`;
        if (this.log.length < logLinesMax) this.log.push(text);
        this.#options.onLine(text);
      },
    }));
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
    this.#paused.delete(id);
    await this.#processes.get(id)?.kill();
    this.#processes.delete(id);
  }

  /** SIGTERM: the server syncs and closes its stores (a paused one is resumed first); 'killed' if it had to be SIGKILLed. */
  async stop(id: string): Promise<'stopped' | 'killed'> {
    this.#paused.delete(id);
    const outcome = await this.#processes.get(id)?.stop() ?? 'stopped';
    this.#processes.delete(id);
    return outcome;
  }

  pause(id: string): void {
    if (!this.isRunning(id)) return;
    this.#processes.get(id)?.pause();
    this.#paused.add(id);
  }

  resume(id: string): void {
    this.#paused.delete(id);
    this.#processes.get(id)?.resume();
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.serverIds.map((id) => this.stop(id)));
  }

  admin<T>(id: string, path: string, body?: unknown, timeoutMs = 5_000): Promise<T> {
    return adminRequest<T>(id, this.#server(id).admin, path, body, timeoutMs);
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
