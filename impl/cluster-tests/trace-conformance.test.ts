import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TraceLine } from '../../model-tests/conformance/trace-check.js';
import { checkTrace } from '../../model-tests/conformance/trace-check.js';
import type { ClusterFixture } from './cluster-fixture.js';
import { eventually, ownerOf, runTool, startCluster } from './cluster-fixture.js';

/**
 * The machines the explorer checks are the machines the cluster runs: every
 * transition a real run logs (writes through a non-owner, a piecewise move
 * with writes during it, a unit move whose source is killed mid-copy and
 * restarted) is a step of its machine, and each instance's steps chain.
 */
describe('trace conformance of a real run', () => {
  let cluster: ClusterFixture;
  beforeAll(async () => {
    cluster = await startCluster(27_809, { moveThrottleMBps: 2, moveProgressTimeoutMs: 1_500 });
  }, 60_000);
  afterAll(async () => cluster?.close());

  it('every logged transition is a step of its machine, and each instance chains', async () => {
    const write = (server: string, offset: number) => runTool('qemu-io', ['-f', 'raw', '-c', `write -P 0x5a ${offset} 512k`, cluster.group.nbdUri(server, 'alpha')], 30_000);
    expect((await write('s2', 0)).exitCode).toBe(0);
    await cluster.group.admin('s1', '/moves', { volume: 'alpha', page: 0, to: 's3', kind: 'piecewise' });
    for (let round = 0; round < 4; round += 1) expect((await write('s2', round * 1024 * 1024)).exitCode).toBe(0);
    await eventually(async () => (await ownerOf(cluster.group, 'alpha/0')) === 's3', 30_000);

    const copying = cluster.waitForLine(/\[s2\] checkpoint alpha\/1 stage 2 attempt 1 durable/, 30_000);
    await cluster.group.admin('s2', '/moves', { volume: 'alpha', page: 1, to: 's1', kind: 'unit' });
    await copying;
    await cluster.group.kill('s2');
    await cluster.group.start('s2');
    await eventually(async () => (await ownerOf(cluster.group, 'alpha/1')) === 's1', 30_000);
    await cluster.group.stopAll();

    const lines = cluster.group.config.servers.flatMap((server) =>
      readFileSync(join(server.dataDirectory, 'trace.jsonl'), 'utf8').split('\n').filter((line) => line.length > 0).map((line) => JSON.parse(line) as TraceLine));
    const result = checkTrace(lines);
    console.log(`trace conformance: ${result.steps} steps of ${result.instances} instances over ${result.starts} process starts: ${JSON.stringify(result.stepsByMachine)}`);
    expect(result.problems).toEqual([]);
    for (const machine of ['piecewiseMove', 'unitMove', 'replica', 'requestRouting']) expect(result.stepsByMachine[machine] ?? 0, machine).toBeGreaterThan(0);
    expect(result.starts).toBe(4);
  }, 180_000);
});
