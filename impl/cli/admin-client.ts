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
 *
 * Reuse and the server's keep-alive. The servers close a connection idle
 * for 5 s (Node's default). A request sent on a pooled socket just as the
 * server closes it fails with a reset that the server never read. So a
 * pooled socket is given up after `idleSocketMs`, before the server's
 * timer (as `fetch` did), and a request whose reused socket is reset before
 * any answer arrives is sent once more on a fresh one. A server that read a
 * request answers it; one that died reading it is not there for the second
 * try, so the retry does not run a call twice. (A helper's review
 * found the race: Node's agent ignores the server's `Keep-Alive` hint unless
 * the agent has a timeout of its own.)
 *
 * Deadline. `timeoutMs` bounds the whole call, from the request until its
 * last byte, including any wait for a free socket and the one retry.
 */
import http from 'node:http';
import type { MembershipRefusal } from '../../machines/membership/membership.js';
import { refusalReasonsNamingServers } from '../../machines/membership/membership.js';
import type { Address } from './group-config.js';

/** At most this many connections per server at once; more calls queue in the agent (within their deadline). */
const socketsPerServerMax = 16;
/** A pooled socket idle this long is closed, before the servers' own keep-alive timeout of 5 s. */
const idleSocketMs = 4_000;
/** An answer larger than this is refused (the biggest, a /status of a large group, is a few hundred KiB). */
const answerBytesMax = 16 * 2 ** 20;

const agent = new http.Agent({ keepAlive: true, maxSockets: socketsPerServerMax, timeout: idleSocketMs });

export interface JsonAnswer {
  readonly status: number;
  readonly body: unknown;
}

/** GET `path` (no body) or POST `body` as JSON; rejects on a network failure, after `timeoutMs`, or on an answer that is not JSON. */
export function jsonRequest(address: Address, path: string, body: unknown, timeoutMs: number): Promise<JsonAnswer> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const where = `${address.host}:${address.port}${path}`;
  return new Promise<JsonAnswer>((resolve, reject) => {
    let current: http.ClientRequest | null = null;
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      outcome();
    };
    const deadline = setTimeout(() => {
      settle(() => reject(new Error(`${where} timed out after ${timeoutMs} ms`)));
      current?.destroy();
    }, timeoutMs);
    const send = (isRetry: boolean): void => {
      let answered = false;
      const request = http.request({
        host: address.host, port: address.port, path, agent,
        method: payload === undefined ? 'GET' : 'POST',
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      }, (response) => {
        answered = true;
        const chunks: Buffer[] = [];
        let bytes = 0;
        response.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > answerBytesMax) {
            request.destroy(new Error(`answer from ${where} exceeds ${answerBytesMax} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        response.on('error', (error) => settle(() => reject(error)));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            const parsed: unknown = JSON.parse(text);
            settle(() => resolve({ status: response.statusCode ?? 0, body: parsed }));
          } catch {
            settle(() => reject(new Error(`${where} answered ${response.statusCode} with no JSON: ${text.slice(0, 200)}`)));
          }
        });
      });
      current = request;
      request.on('error', (error: NodeJS.ErrnoException) => {
        // The server closed a pooled connection as this request went out on it, before reading it: send it again, once.
        if (!isRetry && !answered && !settled && request.reusedSocket && (error.code === 'ECONNRESET' || error.code === 'EPIPE')) {
          send(true);
          return;
        }
        settle(() => reject(error));
      });
      request.end(payload);
    };
    send(false);
  });
}

/**
 * A server's refusal (a non-2xx answer): its message, and for a refused
 * membership change the reason (`refusal`, null otherwise), which callers
 * act on instead of the message's wording.
 */
export class AdminRefusedError extends Error {
  readonly refusal: MembershipRefusal | null;

  constructor(message: string, refusal: MembershipRefusal | null) {
    super(message);
    this.name = 'AdminRefusedError';
    this.refusal = refusal;
  }
}

/** The refusal a call failed with, or null (another failure: a network error, a time-out, a refusal without a reason). */
export function refusalOf(error: unknown): MembershipRefusal | null {
  return error instanceof AdminRefusedError ? error.refusal : null;
}

const reasonsNamingServers: ReadonlySet<string> = new Set(refusalReasonsNamingServers);

/** The answer's `refusal` if it is one (a server's answer is checked like any input), else null. */
function parsedRefusal(candidate: unknown): MembershipRefusal | null {
  if (typeof candidate !== 'object' || candidate === null) return null;
  const { reason, servers } = candidate as { reason?: unknown; servers?: unknown };
  if (reason === 'final') return { reason };
  if (typeof reason !== 'string' || !reasonsNamingServers.has(reason)) return null;
  if (!Array.isArray(servers) || !servers.every((server) => typeof server === 'string')) return null;
  return { reason: reason as Exclude<MembershipRefusal['reason'], 'final'>, servers: servers as string[] };
}

/** One call to a server's admin API; a non-2xx answer throws an AdminRefusedError with the server's message. */
export async function adminRequest<T>(serverId: string, admin: Address, path: string, body?: unknown, timeoutMs = 5_000): Promise<T> {
  const answer = await jsonRequest(admin, path, body, timeoutMs);
  const result = answer.body as T & { message?: string; refusal?: unknown };
  if (answer.status < 200 || answer.status >= 300) throw new AdminRefusedError(`${serverId}: ${result?.message ?? `HTTP ${answer.status}`}`, parsedRefusal(result?.refusal));
  return result;
}
