/**
 * One server process (`impl/cli/server-main.ts`) as a supervisor sees it:
 * spawned with a config file and its id, its output split into lines,
 * stopped cleanly (SIGTERM, SIGKILL after a grace period), killed (SIGKILL:
 * a crash), paused and resumed (SIGSTOP/SIGCONT). The local group, the
 * benchmarks and the fault harness all supervise servers through this.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Address } from './group-config.js';
import { serverNodeFlags } from './server-node-flags.js';

/** Where every server process runs (its working directory), here and in the CLI's detached starts. */
export const repositoryRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * A server's data directory as the server itself resolves it: every server
 * process runs in the repository's root (here and in the CLI's detached
 * starts), so a relative path in the group config is relative to that.
 */
export function resolvedDataDirectory(dataDirectory: string): string {
  return resolve(repositoryRoot, dataDirectory);
}

export interface ServerProcessOptions {
  readonly configPath: string;
  readonly serverId: string;
  readonly environment?: Readonly<Record<string, string>>;
  /** Inherit the supervisor's stdout/stderr, or receive each output line. */
  readonly output: 'inherit' | ((line: string) => void);
}

export class ServerProcess {
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;

  constructor(options: ServerProcessOptions) {
    const { output } = options;
    this.#child = spawn(process.execPath, [...serverNodeFlags, '--import', 'tsx', join(repositoryRoot, 'impl/cli/server-main.ts'), options.configPath, options.serverId], {
      cwd: repositoryRoot, stdio: ['ignore', output === 'inherit' ? 'inherit' : 'pipe', output === 'inherit' ? 'inherit' : 'pipe'],
      env: { ...process.env, ...options.environment },
    });
    this.#exited = new Promise((resolve) => this.#child.once('exit', () => resolve()));
    if (output === 'inherit') return;
    for (const stream of [this.#child.stdout, this.#child.stderr]) {
      let partial = '';
      stream?.on('data', (chunk: Buffer) => {
        const lines = (partial + chunk.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) output(line);
      });
    }
  }

  /** The operating system's id of the process (benchmarks read its CPU time from /proc). */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  get running(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  exited(): Promise<void> {
    return this.#exited;
  }

  /** A crash: SIGKILL, no chance to flush or close anything (a paused process dies too). */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.#child.kill('SIGKILL');
    await this.#exited;
  }

  /**
   * A clean stop: SIGTERM (the server syncs and closes its stores), SIGKILL
   * if it has not exited within the grace period. Says which it took: a
   * forced stop is a crash, which a caller counting crashes must know of.
   */
  async stop(graceMs = 15_000): Promise<'stopped' | 'killed'> {
    if (!this.running) return 'stopped';
    this.#child.kill('SIGCONT');
    this.#child.kill('SIGTERM');
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      this.#child.kill('SIGKILL');
    }, graceMs);
    await this.#exited;
    clearTimeout(timer);
    return killed ? 'killed' : 'stopped';
  }

  pause(): void {
    if (this.running) this.#child.kill('SIGSTOP');
  }

  resume(): void {
    if (this.running) this.#child.kill('SIGCONT');
  }
}
