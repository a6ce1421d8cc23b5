import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerConfig } from '../cli/group-config.js';
import { joinServer, nextServerConfig } from '../cli/membership-admin.js';
import { adminRequest } from '../cli/admin-client.js';
import { balancePortOffset } from '../balance/balance-server.js';
import type { ClusterFixture } from './cluster-fixture.js';
import { eventually, ownerOf, runTool, startCluster } from './cluster-fixture.js';

/**
 * With automatic balancing on (BLOCKSHIFT_BALANCE=1), a server added online
 * becomes a destination of the balancers that were running before it
 * joined: a hot workload on s1's pages moves one of them to s4, which has
 * twice the capacity weight and no load.
 */
const admin = <T>(server: ServerConfig, path: string, body?: unknown) => adminRequest<T>(server.id, server.admin, path, body);

describe('a server added online receives pages from the balancer', () => {
  let cluster: ClusterFixture;
  beforeAll(async () => {
    cluster = await startCluster(7_809, { traceTransitions: false }, {
      BLOCKSHIFT_BALANCE: '1', BLOCKSHIFT_BALANCE_INTERVAL_MS: '500', BLOCKSHIFT_BALANCE_HALF_LIFE_MS: '1500', BLOCKSHIFT_BALANCE_SAMPLES_MIN: '2',
    });
  }, 60_000);
  afterAll(async () => cluster?.close());

  it('s4 joins, the balancers take it into their ring and sample, and a hot page of s1 moves to it', async () => {
    const s4 = nextServerConfig(cluster.group.config, 's4', 2);
    cluster.group.reconfigure({ ...cluster.group.config, servers: [...cluster.group.config.servers, s4] });
    await cluster.group.start('s4');
    await joinServer(cluster.group.config, s4, admin, () => undefined);
    const s1 = cluster.group.server('s1');
    const load = async () => (await fetch(`http://${s1.admin.host}:${s1.admin.port + balancePortOffset}/load`)).json() as Promise<{ servers: Array<{ id: string; capacityWeight: number }>; events: Array<{ text: string }> }>;
    await eventually(async () => (await load()).servers.some((server) => server.id === 's4' && server.capacityWeight === 2), 10_000);
    // A hot random workload on s1's pages (alpha/0 and beta/0), through s1, until a page has moved to s4.
    let movedToS4: string | null = null;
    const fio = runTool('fio', [
      '--name=hot', '--ioengine=nbd', `--uri=${cluster.group.nbdUri('s1', 'alpha')}`, '--rw=randrw', '--rwmixread=70', '--bs=4k', '--size=4M',
      '--iodepth=4', '--time_based', '--runtime=8', '--output-format=json',
    ], 120_000, cluster.directory);
    const startMs = Date.now();
    const deadlineMs = startMs + 8_000;
    while (movedToS4 === null && Date.now() < deadlineMs) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      movedToS4 = (await ownerOf(cluster.group, 'alpha/0')) === 's4' ? 'alpha/0' : null;
    }
    console.log(movedToS4 ? `alpha/0 owned by s4 ${((Date.now() - startMs) / 1000).toFixed(1)} s after the workload started` : 'no page moved to s4');
    const result = await fio;
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    const events = (await load()).events.map((event) => event.text);
    console.log(`balancer events on s1:\n${events.join('\n')}`);
    expect(movedToS4, 'the hot page moved to s4').toBe('alpha/0');
    expect(events.some((text) => /alpha\/0 s1→s4/.test(text))).toBe(true);
  }, 150_000);
});
