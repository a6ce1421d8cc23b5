/**
 * A group of server processes on this machine: started, stopped, killed
 * (SIGKILL, as a crash) and restarted one by one. `blockshift up` runs one in
 * the foreground; the cluster tests and the fault harness drive one each.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerStatus } from '../runtime/status-report.js';
import type { GroupConfig, ServerConfig } from './group-config.js';
import { groupConfigProblem } from './group-config.js';

const repositoryRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface LocalGroupOptions {
  /** Where each server's output goes: inherited by `up`, collected by tests. */
  readonly output: 'inherit' | ((serverId: string, line: string) => void);
  readonly environment?: Readonly<Record<string, string>>;
}

export class LocalGroup {
  readonly config: GroupConfig;
  readonly configPath: string;
  readonly #options: LocalGroupOptions;
  readonly #processes = new Map<string, ChildProcess>();

  constructor(config: GroupConfig, configDirectory: string, options: LocalGroupOptions) {
    const problem = groupConfigProblem(config);
    if (problem) throw new Error(`bad group config: ${problem}`);
    this.config = config;
    this.#options = options;
    mkdirSync(configDirectory, { recursive: true });
    this.configPath = join(configDirectory, 'group.json');
    writeFileSync(this.configPath, `${JSON.stringify(config, null, 2)}\n`);
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
    const child = spawn(process.execPath, ['--import', 'tsx', join(repositoryRoot, 'impl/cli/server-main.ts'), this.configPath, id], {
      cwd: repositoryRoot, stdio: ['ignore', output === 'inherit' ? 'inherit' : 'pipe', output === 'inherit' ? 'inherit' : 'pipe'],
      env: { ...process.env, ...this.#options.environment },
    });
    if (output !== 'inherit') {
      for (const stream of [child.stdout, child.stderr]) {
        let pending = '';
        stream?.on('data', (chunk: Buffer) => {
          const lines = (pending + chunk.toString('utf8')).split('\n');
          pending = lines.pop() ?? '';
          for (const line of lines) output(id, line);
        });
      }
    }
    this.#processes.set(id, child);
    await this.waitUntilUp(id, timeoutMs);
  }

  /** A crash: SIGKILL, no chance to flush or close anything. */
  async kill(id: string): Promise<void> {
    const child = this.#processes.get(id);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    this.#processes.delete(id);
  }

  /** A clean stop: SIGTERM, the server syncs and closes its stores. */
  async stop(id: string): Promise<void> {
    const child = this.#processes.get(id);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    this.#processes.delete(id);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#processes.keys()].map((id) => this.stop(id)));
  }

  async waitForExit(): Promise<void> {
    await Promise.all([...this.#processes.values()].map((child) => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve(null);
      else child.once('exit', resolve);
    })));
  }

  async waitUntilUp(id: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.admin(id, '/status');
        return;
      } catch (error) {
        const child = this.#processes.get(id);
        if (child && (child.exitCode !== null || child.signalCode !== null)) throw new Error(`${id} exited while starting`);
        if (Date.now() > deadline) throw new Error(`${id} did not come up: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  async admin<T>(id: string, path: string, body?: unknown): Promise<T> {
    const server = this.server(id);
    const response = await fetch(`http://${server.admin.host}:${server.admin.port}${path}`, body === undefined ? {} : {
      method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' },
    });
    const result = await response.json() as T & { message?: string };
    if (!response.ok) throw new Error(`${id}: ${result.message ?? response.statusText}`);
    return result;
  }

  status(id: string): Promise<ServerStatus> {
    return this.admin<ServerStatus>(id, '/status');
  }

  nbdUri(id: string, volume: string): string {
    const { nbd } = this.server(id);
    return `nbd://${nbd.host}:${nbd.port}/${volume}`;
  }
}
