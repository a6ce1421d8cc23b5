import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { jsonRequest } from '../cli/admin-client.js';
import { isReport, startBalanceServer } from './balance-server.js';
import type { Balancer } from './balancer.js';

/**
 * The balancers' load exchange takes bytes from anyone who can reach its
 * port: a body cut short must not end the process, and a report is checked
 * to its leaves before the balancer keeps it (a review found a `null` page
 * entry crashing the next tick). A taking time of 1e300 once held a
 * server's load for good; reports now age by their `ageMs` on the
 * receiver's clock (ring-view.test.ts).
 */
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

const page = { pageKey: { volume: 'v', page: 3 }, randomOpsPerSecond: 10, sequentialOpsPerSecond: 0, bytesPerSecond: 40_960, latencyMsMean: 0.5 };
const report = (changes: Record<string, unknown> = {}) => ({ server: 's2', takenAtMs: Date.now(), ageMs: 0, pages: [page], clients: [{ clientId: 'c', opsPerSecond: 10, bytesPerSecond: 40_960 }], ...changes });

describe('load exchange', () => {
  it('keeps a well-formed report and refuses one with a malformed leaf or time', () => {
    expect(isReport(report())).toBe(true);
    for (const bad of [
      report({ pages: [null] }), report({ pages: [{ ...page, pageKey: null }] }), report({ pages: [{ ...page, bytesPerSecond: -1 }] }),
      report({ pages: [{ ...page, randomOpsPerSecond: 'many' }] }), report({ clients: [null] }), report({ clients: [{ clientId: 7, opsPerSecond: 1, bytesPerSecond: 1 }] }),
      report({ takenAtMs: Number.NaN }), report({ takenAtMs: -1 }), report({ ageMs: undefined }), report({ ageMs: -5 }), report({ ageMs: Number.POSITIVE_INFINITY }),
    ]) expect(isReport(bad), JSON.stringify(bad)).toBe(false);
  });

  it('answers after a client went away in the middle of a body, and goes on serving', async () => {
    const received: unknown[] = [];
    const balancer = { status: () => ({ ok: true }), receiveReports: (reports: unknown[]) => received.push(...reports), setEnabled: () => undefined } as unknown as Balancer;
    const server = await startBalanceServer('127.0.0.1', 0, balancer);
    closers.push(() => server.close());
    const address = { host: '127.0.0.1', port: server.port };
    const cut = net.connect(address.port, address.host);
    await new Promise<void>((resolve) => cut.once('connect', () => resolve()));
    cut.write('POST /load HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"reports":');
    await new Promise((resolve) => setTimeout(resolve, 50));
    cut.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const answer = await jsonRequest(address, '/load', { reports: [report()] }, 2_000);
    expect(answer.status).toBe(200);
    expect(received).toHaveLength(1);
  });
});
