/**
 * Shared fixtures for the NBD front end's tests: a server on a free loopback
 * port over a memory backend, and a runner for the Debian client tools that
 * never throws, so a test can assert on a failing tool's exit code and text.
 */
import { execFile } from 'node:child_process';
import { MemoryBackend, type MemoryBackendOptions, type MemoryExportSpec } from './memory-backend.js';
import { startNbdServer, type NbdServerOptions } from './nbd-server.js';

export const MIB = 1024 * 1024;

export const DEFAULT_TEST_EXPORTS: MemoryExportSpec[] = [
  { name: 'vol-a', sizeBytes: 64 * MIB, description: 'test volume A' },
  { name: 'vol-b', sizeBytes: 32 * MIB },
];

export interface TestServer {
  port: number;
  backend: MemoryBackend;
  logLines: string[];
  uri(exportName: string): string;
  close(): Promise<void>;
}

export async function startTestServer(
  specs: MemoryExportSpec[] = DEFAULT_TEST_EXPORTS,
  backendOptions: MemoryBackendOptions = {},
  limits?: NbdServerOptions['limits'],
  payloadBytesMax?: number,
): Promise<TestServer> {
  const backend = new MemoryBackend(specs, backendOptions);
  const logLines: string[] = [];
  const options: NbdServerOptions = { host: '127.0.0.1', port: 0, backend, log: (line) => logLines.push(line) };
  if (limits !== undefined) options.limits = limits;
  if (payloadBytesMax !== undefined) options.payloadBytesMax = payloadBytesMax;
  const server = await startNbdServer(options);
  return {
    port: server.port,
    backend,
    logLines,
    uri: (exportName) => `nbd://127.0.0.1:${server.port}/${exportName}`,
    close: () => server.close(),
  };
}

export interface ToolResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs a tool to completion; `cwd` keeps any files the tool drops (fio's verify state) out of the repository. */
export function runTool(command: string, args: string[], timeoutMs = 8_000, cwd?: string): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 16 * MIB, cwd }, (error, stdout, stderr) => {
      const exitCode = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ exitCode, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}
