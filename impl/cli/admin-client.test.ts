import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { adminRequest, jsonRequest, refusalOf } from './admin-client.js';

/** A JSON server on an ephemeral port whose handler sees each request with the number of its connection. */
async function serve(handler: (request: http.IncomingMessage, response: http.ServerResponse, connection: number) => void): Promise<{ address: { host: string; port: number }; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const numbers = new WeakMap<object, number>();
  const server = http.createServer((request, response) => handler(request, response, numbers.get(request.socket)!));
  server.on('connection', (socket) => numbers.set(socket, ++connections));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: { host: '127.0.0.1', port: (server.address() as AddressInfo).port },
    connections: () => connections,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

function answer(response: http.ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

describe('the admin client', () => {
  it('reuses one connection for calls in sequence, and posts JSON', async () => {
    const bodies: string[] = [];
    const server = await serve((request, response) => {
      let text = '';
      request.on('data', (chunk: Buffer) => { text += chunk.toString(); });
      request.on('end', () => { bodies.push(`${request.method} ${text}`); answer(response, 200, { ok: true, message: 'fine' }); });
    });
    closers.push(server.close);
    for (let call = 0; call < 5; call += 1) expect(await adminRequest('s1', server.address, '/moves', { page: call })).toEqual({ ok: true, message: 'fine' });
    expect(await adminRequest('s1', server.address, '/status')).toEqual({ ok: true, message: 'fine' });
    expect(bodies).toEqual([0, 1, 2, 3, 4].map((page) => `POST {"page":${page}}`).concat(['GET ']));
    expect(server.connections()).toBe(1);
  });

  it('sends a request once more on a fresh connection when the server closed the pooled one without reading it', async () => {
    // The server answers the first request of each connection, and resets its connection at the second one (as a server
    // whose keep-alive timer fired as the request went out): the client must send that request again, and it runs once.
    const served: number[] = [];
    const server = await serve((request, response, connection) => {
      const nth = served.filter((seen) => seen === connection).length;
      if (nth >= 1) {
        request.socket.destroy();
        return;
      }
      served.push(connection);
      answer(response, 200, { ok: true, message: `connection ${connection}` });
    });
    closers.push(server.close);
    expect(await adminRequest<{ message: string }>('s1', server.address, '/moves', { page: 1 })).toEqual({ ok: true, message: 'connection 1' });
    expect(await adminRequest<{ message: string }>('s1', server.address, '/moves', { page: 2 })).toEqual({ ok: true, message: 'connection 2' });
    expect(served).toEqual([1, 2]);
  });

  it('does not send a request again when a fresh connection is reset', async () => {
    const server = await serve((request) => request.socket.destroy());
    closers.push(server.close);
    await expect(jsonRequest(server.address, '/moves', { page: 1 }, 2_000)).rejects.toThrow(/socket hang up|ECONNRESET/);
    expect(server.connections()).toBe(1);
  });

  it('gives up after its deadline, however long the server stays silent', async () => {
    const server = await serve(() => undefined);
    closers.push(server.close);
    const startedMs = performance.now();
    await expect(jsonRequest(server.address, '/moves/wait', {}, 300)).rejects.toThrow(/timed out after 300 ms/);
    expect(performance.now() - startedMs).toBeLessThan(2_000);
  });

  it('throws the server message of a non-2xx answer, and says so when an answer is not JSON', async () => {
    const server = await serve((request, response) => {
      if (request.url === '/text') {
        response.writeHead(404, { 'content-type': 'text/plain' });
        response.end('not here');
        return;
      }
      answer(response, 409, { ok: false, message: 'alpha/0 is already moving' });
    });
    closers.push(server.close);
    await expect(adminRequest('s2', server.address, '/moves', {})).rejects.toThrow('s2: alpha/0 is already moving');
    await expect(adminRequest('s2', server.address, '/text')).rejects.toThrow(/answered 404 with no JSON: not here/);
  });

  it('passes a refused membership change\'s reason on, and takes a malformed one for none', async () => {
    const refusals: Record<string, unknown> = {
      '/waiting': { reason: 'waitingFor', servers: ['s2', 's3'] },
      '/final': { reason: 'final' },
      '/unknown-reason': { reason: 'tryHarder', servers: [] },
      '/servers-not-strings': { reason: 'notDraining', servers: [7] },
      '/not-an-object': 'waitingFor',
    };
    const server = await serve((request, response) => answer(response, 409, { ok: false, message: 'refused', refusal: refusals[request.url!] }));
    closers.push(server.close);
    const refusalFor = (path: string) => adminRequest('s1', server.address, path, {}).then(() => 'answered ok', refusalOf);
    expect(await refusalFor('/waiting')).toEqual({ reason: 'waitingFor', servers: ['s2', 's3'] });
    expect(await refusalFor('/final')).toEqual({ reason: 'final' });
    for (const path of ['/unknown-reason', '/servers-not-strings', '/not-an-object', '/none']) expect(await refusalFor(path)).toBeNull();
    await expect(adminRequest('s1', server.address, '/waiting', {})).rejects.toThrow('s1: refused');
  });
});
