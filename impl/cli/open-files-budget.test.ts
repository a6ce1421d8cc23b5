import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { localGroupConfig } from './group-config.js';
import { openFilesNeeded, openFilesProblem, openFilesSoftLimitOf } from './open-files-budget.js';

const procLimits = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 1048576              files
Max locked memory         8388608              8388608              bytes
`;

describe('the open files a server needs, against the limit', () => {
  it('reads the soft limit of /proc/self/limits, and none where it is unlimited or absent', () => {
    expect(openFilesSoftLimitOf(procLimits)).toBe(1024);
    expect(openFilesSoftLimitOf(procLimits.replace('1024   ', 'unlimited'))).toBeNull();
    expect(openFilesSoftLimitOf('Limit Soft Hard Units\n')).toBeNull();
  });

  it('counts connections, page handles and peers, and names the numbers when they exceed the limit', () => {
    const demand = { nbdConnectionsMax: 256, pageHandlesMax: 256, peerCount: 2 };
    expect(openFilesNeeded(demand)).toBe(256 + 256 + 8 + 64);
    expect(openFilesProblem(demand, 1024)).toBeNull();
    expect(openFilesProblem(demand, null)).toBeNull();
    expect(openFilesProblem({ ...demand, nbdConnectionsMax: 4096 }, 1024)).toMatch(/may need 4424 open files \(nbdConnectionsMax 4096.*the open-file limit is 1024: raise it \(ulimit -n\) or lower nbdConnectionsMax/);
  });
});

describe('a server started under too low an open-file limit', () => {
  let directory: string | null = null;
  afterEach(() => {
    if (directory !== null) rmSync(directory, { recursive: true, force: true });
    directory = null;
  });

  it('refuses to start, naming the limit, and touches no data directory', async () => {
    directory = mkdtempSync(join(tmpdir(), 'blockshift-nofile-'));
    const config = localGroupConfig(join(directory, 'data'), 3, 40_809);
    const configPath = join(directory, 'group.json');
    writeFileSync(configPath, JSON.stringify(config));
    // 256 connections by default, 256 page handles: 584 files wanted, 300 allowed.
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = execFile('prlimit', ['--nofile=300:300', process.execPath, '--import', 'tsx', 'impl/cli/server-main.ts', configPath, 's1'], { timeout: 20_000 }, () => undefined);
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
      child.on('exit', (code) => resolve({ code, stderr }));
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('may need 584 open files');
    expect(result.stderr).toContain('the open-file limit is 300');
    expect(existsSync(join(directory, 'data'))).toBe(false);
  });
});
