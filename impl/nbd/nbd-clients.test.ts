/**
 * The front end against the real Debian NBD clients (libnbd's nbdinfo and
 * nbdcopy, QEMU's qemu-io and qemu-img, fio's nbd engine), each run as a
 * child process against a memory backend on a loopback port. These prove
 * interoperability; the byte-level edge cases live in nbd-raw-socket.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIB, runTool, startTestServer, type TestServer } from './test-support.js';

let server: TestServer;
let scratchDir: string;

beforeAll(async () => {
  server = await startTestServer([
    { name: 'vol-a', sizeBytes: 64 * MIB, description: 'test volume A' },
    { name: 'vol-b', sizeBytes: 32 * MIB },
    { name: 'vol-copy', sizeBytes: 8 * MIB },
    { name: 'vol-fio', sizeBytes: 8 * MIB },
  ]);
  scratchDir = mkdtempSync(join(tmpdir(), 'blockshift-nbd-'));
});

afterAll(async () => {
  await server.close();
  rmSync(scratchDir, { recursive: true, force: true });
});

describe('NBD front end with real clients', () => {
  it('lists both exports and their sizes with nbdinfo --list', async () => {
    const result = await runTool('nbdinfo', ['--list', `nbd://127.0.0.1:${server.port}`]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain('export="vol-a"');
    expect(result.stdout).toContain('export-size: 67108864');
    expect(result.stdout).toContain('description: test volume A');
    expect(result.stdout).toContain('export="vol-b"');
    expect(result.stdout).toContain('export-size: 33554432');
  });

  it('describes one export with nbdinfo, advertising the supported features', async () => {
    const result = await runTool('nbdinfo', [server.uri('vol-a')]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain('using structured packets');
    expect(result.stdout).toContain('export-size: 67108864');
    for (const feature of ['can_flush: true', 'can_fua: true', 'can_trim: true', 'can_zero: true', 'can_multi_conn: true']) {
      expect(result.stdout).toContain(feature);
    }
    expect(result.stdout).toContain('block_size_maximum: 33554432');
  });

  it('refuses an unknown export with an error from nbdinfo', async () => {
    const result = await runTool('nbdinfo', [server.uri('no-such-volume')]);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toMatch(/no-such-volume/);
  });

  it('writes and reads back a pattern with qemu-io', async () => {
    const result = await runTool('qemu-io', [
      '-f', 'raw',
      '-c', 'write -P 0xab 0 1M',
      '-c', 'read -P 0xab 0 1M',
      '-c', 'write -z 2M 1M',
      '-c', 'read -P 0 2M 1M',
      '-c', 'discard 4M 64k',
      '-c', 'write -f -P 0x5c 8M 64k',
      '-c', 'read -P 0x5c 8M 64k',
      '-c', 'flush',
      server.uri('vol-a'),
    ]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).not.toContain('Pattern verification failed');
    expect(result.stderr).not.toContain('Pattern verification failed');
    expect(result.stdout).toContain('read 1048576/1048576 bytes at offset 0');
  });

  it('copies a random image in with qemu-img convert and compares it back', async () => {
    const sourcePath = join(scratchDir, 'source.img');
    writeFileSync(sourcePath, randomBytes(8 * MIB));
    const convert = await runTool('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', sourcePath, server.uri('vol-b')]);
    expect(convert.exitCode, convert.stderr).toBe(0);
    // The export is larger than the image; compare checks that the excess reads as zeroes.
    const compare = await runTool('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', sourcePath, server.uri('vol-b')]);
    expect(compare.exitCode, compare.stdout + compare.stderr).toBe(0);
    expect(compare.stdout).toContain('Images are identical');
  });

  it('round-trips an image through nbdcopy over several connections', async () => {
    const sourcePath = join(scratchDir, 'copy-source.img');
    const targetPath = join(scratchDir, 'copy-target.img');
    const source = randomBytes(8 * MIB);
    writeFileSync(sourcePath, source);
    const copyIn = await runTool('nbdcopy', ['--connections=4', sourcePath, server.uri('vol-copy')]);
    expect(copyIn.exitCode, copyIn.stderr).toBe(0);
    const copyOut = await runTool('nbdcopy', ['--connections=4', server.uri('vol-copy'), targetPath]);
    expect(copyOut.exitCode, copyOut.stderr).toBe(0);
    expect(readFileSync(targetPath).equals(source)).toBe(true);
  });

  it('survives a verified random-write fio run through the nbd engine', async (context) => {
    const engineHelp = await runTool('fio', ['--enghelp=nbd']);
    if (engineHelp.exitCode !== 0 || !engineHelp.stdout.includes('uri')) {
      console.warn(`skipping fio smoke test: fio has no nbd engine (${engineHelp.stderr.trim()})`);
      context.skip();
      return;
    }
    const result = await runTool('fio', [
      '--name=nbd-smoke',
      '--ioengine=nbd',
      `--uri=${server.uri('vol-fio')}`,
      '--rw=randwrite',
      '--bs=4k',
      '--size=4M',
      '--iodepth=4',
      '--verify=crc32c',
      '--verify_state_save=0',
      '--output-format=terse',
    ], 8_000, scratchDir);
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    expect(result.stderr).not.toMatch(/verify|bad magic|error/i);
  });
});
