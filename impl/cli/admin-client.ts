/**
 * The client side of the servers' small HTTP/JSON APIs (the admin API,
 * impl/runtime/admin-server.ts, and the balancers' load exchange): one JSON
 * request, its status and its parsed answer.
 *
 * Connections are kept alive and reused (one agent per process): a bench or
 * a supervisor that moves pages one at a time makes two calls per move, and
 * with `fetch` each call cost the calling process about 2 ms on this host
 * (measured between a server's reply and the next request's arrival in
 * `bench:nbd`'s idle copy, a tenth of a 4 MiB move's own time). Idle pooled
 * sockets do not keep a process alive (Node unrefs them while they wait),
 * so a CLI command still exits when it is done.
 */
import http from 'node:http';
import type { Address } from './group-config.js';

/** At most this many connections per server at once; more calls queue in the agent. */
const socketsPerServerMax = 16;
/** An answer larger than this is refused (the biggest, a /status of a large group, is a few hundred KiB). */
const answerBytesMax = 16 * 2 ** 20;

const agent = new http.Agent({ keepAlive: true, maxSockets: socketsPerServerMax });

export interface JsonAnswer {
  readonly status: number;
  readonly body: unknown;
}

/** GET `path` (no body) or POST `body` as JSON; rejects on a network failure, a time-out or an answer that is not JSON. */
export function jsonRequest(address: Address, path: string, body: unknown, timeoutMs: number): Promise<JsonAnswer> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise<JsonAnswer>((resolve, reject) => {
    const request = http.request({
      host: address.host, port: address.port, path, agent, timeout: timeoutMs,
      method: payload === undefined ? 'GET' : 'POST',
      headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
    }, (response) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > answerBytesMax) {
          request.destroy(new Error(`answer from ${address.host}:${address.port}${path} exceeds ${answerBytesMax} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      response.on('error', reject);
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as unknown });
        } catch {
          reject(new Error(`${address.host}:${address.port}${path} answered ${response.statusCode} with no JSON: ${text.slice(0, 200)}`));
        }
      });
    });
    // The time-out is the socket's idleness; a call that waits for an answer longer than that is told why.
    request.on('timeout', () => request.destroy(new Error(`${address.host}:${address.port}${path} timed out after ${timeoutMs} ms`)));
    request.on('error', reject);
    request.end(payload);
  });
}

/** One call to a server's admin API; a non-2xx answer throws with the server's message. */
export async function adminRequest<T>(serverId: string, admin: Address, path: string, body?: unknown, timeoutMs = 5_000): Promise<T> {
  const answer = await jsonRequest(admin, path, body, timeoutMs);
  const result = answer.body as T & { message?: string };
  if (answer.status < 200 || answer.status >= 300) throw new Error(`${serverId}: ${result?.message ?? `HTTP ${answer.status}`}`);
  return result;
}
