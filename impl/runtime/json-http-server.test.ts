import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { JsonHttpLimits } from './json-http-server.js';
import { readJsonObject, startJsonHttpServer } from './json-http-server.js';

/**
 * The admin API and the balance endpoint take bytes from anyone on
 * loopback: whatever a caller sends, the answer is JSON, and nothing a
 * caller holds open stays open past its bound (Node's own defaults were a
 * 5-minute request time-out checked every 30 s, no cap on connections, and
 * bare-text 400s).
 */
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

async function start(limits: Partial<JsonHttpLimits> = {}, handle = async () => ({ status: 200, body: { ok: true } })) {
  const server = await startJsonHttpServer({
    host: '127.0.0.1', port: 0, thrownStatus: 500, limits,
    handle: async (request) => {
      const body = await readJsonObject(request, 1024);
      return typeof body === 'string' ? { status: 400, body: { ok: false, message: body } } : handle();
    },
  });
  closers.push(() => server.close());
  return server.port;
}

/** Sends raw bytes and collects everything the server says until it closes the connection (or `waitMs` passes). */
function exchange(port: number, bytes: string, waitMs = 3_000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    let text = '';
    const timer = setTimeout(() => { socket.destroy(); resolve({ text, closed: false }); }, waitMs);
    socket.on('data', (chunk) => { text += chunk.toString('latin1'); });
    socket.on('error', () => undefined);
    socket.on('close', () => { clearTimeout(timer); resolve({ text, closed: true }); });
  });
}

const jsonOf = (text: string) => JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { ok: boolean; message: string };

describe('the JSON HTTP server', () => {
  it('answers a malformed request with a JSON 400 and closes', async () => {
    const port = await start();
    const { text, closed } = await exchange(port, 'NOT HTTP AT ALL\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 400 /);
    expect(jsonOf(text)).toMatchObject({ ok: false, message: expect.stringMatching(/malformed HTTP request/) });
    expect(closed).toBe(true);
  });

  it('answers a request whose body never finishes with a JSON 408 once the request time-out passes', async () => {
    const port = await start({ requestTimeoutMs: 300, headersTimeoutMs: 200, connectionsCheckingIntervalMs: 50 });
    const started = performance.now();
    const { text, closed } = await exchange(port, 'POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":');
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(jsonOf(text).message).toMatch(/within 300 ms/);
    expect(closed).toBe(true);
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('closes connections past its bound and serves again once they go', async () => {
    const port = await start({ connectionsMax: 2 });
    const held = await Promise.all([0, 1].map(() => new Promise<net.Socket>((resolve) => { const socket = net.connect(port, '127.0.0.1', () => resolve(socket)); })));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const refused = await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 1_000);
    expect(refused).toEqual({ text: '', closed: true });
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const served = await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(served.text).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('answers a body over its bound, or not a JSON object, with the reason, and a handler that throws with its status', async () => {
    const port = await start();
    const post = (body: string) => exchange(port, `POST /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    expect(jsonOf((await post('x'.repeat(2_000))).text).message).toBe('request body over 1024 bytes');
    expect(jsonOf((await post('[1]')).text).message).toBe('expected a JSON object');
    expect(jsonOf((await post('{"a":')).text).message).toBe('request body is not JSON');
    const throwing = await start({}, async () => { throw new Error('the handler failed'); });
    const thrown = await exchange(throwing, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(thrown.text).toMatch(/^HTTP\/1\.1 500 /);
    expect(jsonOf(thrown.text).message).toBe('the handler failed');
  });
});
