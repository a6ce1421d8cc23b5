/**
 * A group of server processes on this machine: started, stopped, killed
 * (SIGKILL, as a crash) and restarted one by one. `blockshift up` runs one in
 * the foreground; the cluster tests and the fault harness drive one each.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServerStatus } from '../runtime/status-report.js';
import type { GroupConfig, ServerConfig } from './group-config.js';
import { groupConfigProblem } from './group-config.js';
import { adminRequest } from './admin-client.js';
import { ServerProcess } from './server-process.js';
import { writeGroupConfig } from './membership-admin.js';

export interface LocalGroupOptions {
  /** Where each server's output goes: inherited by `up`, collected by tests. */
  readonly output: 'inherit' | ((serverId: string, line: string) => void);
  readonly environment?: Readonly<Record<string, string>>;
}

export class LocalGroup {
  #config: GroupConfig;
  readonly configPath: string;
  readonly #options: LocalGroupOptions;
  readonly #processes = new Map<string, ServerProcess>();

  constructor(config: GroupConfig, configDirectory: string, options: LocalGroupOptions) {
    const problem = groupConfigProblem(config);
    if (problem) throw new Error(`bad group config: ${problem}`);
    this.#config = config;
    this.#options = options;
    mkdirSync(configDirectory, { recursive: true });
    this.configPath = join(configDirectory, 'group.json');
    writeFileSync(this.configPath, `${JSON.stringify(config, null, 2)}\n`);
  }

  get config(): GroupConfig {
    return this.#config;
  }

  /** Rewrites the group's configuration file (a server added or gone) so new processes and the CLI find every server. */
  reconfigure(config: GroupConfig): void {
    const problem = groupConfigProblem(config);
    if (problem) throw new Error(`bad group config: ${problem}`);
    this.#config = config;
    writeGroupConfig(this.configPath, config);
  }

  server(id: string): ServerConfig {
    const server = this.config.servers.find((candidate) => candidate.id === id);
    if (!server) throw new Error(`no server ${id}`);
    return server;
  }

  async startAll(timeoutMs = 30_000): Promise<void> {
    await Promise.all(this.config.servers.map((server) => this.start(server.id, timeoutMs)));
  }

  async start(id: string, timeoutMs = 30_000): Promise<void> {
    const server = this.server(id);
    mkdirSync(server.dataDirectory, { recursive: true });
    const output = this.#options.output;
    this.#processes.set(id, new ServerProcess({
      configPath: this.configPath, serverId: id, environment: this.#options.environment,
      output: output === 'inherit' ? 'inherit' : (line) => output(id, line),
    }));
    await this.waitUntilUp(id, timeoutMs);
  }

  /** The process id of a running server, if it runs. */
  pid(id: string): number | undefined {
    return this.#processes.get(id)?.pid;
  }

  /** A crash: SIGKILL, no chance to flush or close anything. */
  async kill(id: string): Promise<void> {
    await this.#processes.get(id)?.kill();
    this.#processes.delete(id);
  }

  /** A clean stop: SIGTERM, the server syncs and closes its stores. */
  async stop(id: string): Promise<void> {
    await this.#processes.get(id)?.stop();
    this.#processes.delete(id);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#processes.keys()].map((id) => this.stop(id)));
  }

  async waitForExit(): Promise<void> {
    await Promise.all([...this.#processes.values()].map((child) => child.exited()));
  }

  /**
   * Waits until the server's own process answers as that server. Any answer
   * on its admin port used to do: with another group on the same ports, a
   * server that had failed to start was reported up, and `up` printed the
   * other group's URIs as its own (a review found it).
   */
  async waitUntilUp(id: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const child = this.#processes.get(id);
      if (child?.running === false) throw new Error(`${id} exited while starting (its ports or data directory may be in use; see its output above)`);
      try {
        const status = await this.admin<{ server?: unknown; pid?: unknown }>(id, '/status');
        // Another process of the same name (a group already running on these ports) answers with its own pid.
        if (status.server !== id || (child !== undefined && status.pid !== child.pid)) {
          throw new Error(`another process (${String(status.server)}, pid ${String(status.pid)}) answers on ${id}'s admin port`);
        }
        return;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`${id} did not come up: ${(error as Error).message}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  admin<T>(id: string, path: string, body?: unknown): Promise<T> {
    return adminRequest<T>(id, this.server(id).admin, path, body);
  }

  status(id: string): Promise<ServerStatus> {
    return this.admin<ServerStatus>(id, '/status');
  }

  nbdUri(id: string, volume: string): string {
    const { nbd } = this.server(id);
    return `nbd://${nbd.host}:${nbd.port}/${volume}`;
  }
}
