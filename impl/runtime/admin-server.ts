/**
 * The administrator's door into one server: a small HTTP/JSON API on
 * loopback that the `blockshift` CLI talks to.
 *
 *   GET  /status            this server's view (volumes, routes, copies, moves)
 *   GET  /latency           its client requests' latency histograms by path (request-path-latency.ts), counted since it started
 *   POST /volumes           {name, pageCount, servers, pageSizeBlocks?, blockSizeBytes?, piecesPerPage?}
 *   POST /moves             {volume, page, to, kind: "unit" | "piecewise", pieces?}  (pieces must divide the volume's piecesPerPage)
 *   POST /members           {id, peer: {host, port}, admin?: {host, port}, capacityWeight?}: a server joins the group
 *   POST /members/drain     {id}: mark a member draining (its own server then moves its pages away)
 *   POST /members/leave     {}: this server, drained and holding nothing, leaves the group
 *   POST /shutdown          stop this server cleanly
 *
 * Bodies are bounded and validated; a bad request gets a 4xx with a clear
 * message and changes nothing.
 */
import http from 'node:http';
import type { MoveKind } from '../../machines/migration/checkpoint.js';
import { defaultBlockSizeBytes, defaultPageSizeBlocks } from '../../machines/node/volume.js';
import type { ServerRuntime } from './server-runtime.js';
import { statusOf } from './status-report.js';

const bodyBytesMax = 64 * 1024;

export interface AdminServerOptions {
  readonly host: string;
  readonly port: number;
  readonly runtime: ServerRuntime;
  readonly onShutdown: () => void;
  readonly log: (line: string) => void;
}

export async function startAdminServer(options: AdminServerOptions): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    void handle(options, request).then(
      ({ status, body }) => reply(response, status, body),
      (error: unknown) => reply(response, 500, { ok: false, message: (error as Error).message }),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : options.port,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

function reply(response: http.ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(`${JSON.stringify(body)}\n`);
}

async function handle(options: AdminServerOptions, request: http.IncomingMessage): Promise<{ status: number; body: unknown }> {
  const { runtime } = options;
  const route = `${request.method} ${request.url}`;
  if (route === 'GET /status') return { status: 200, body: statusOf(runtime.state) };
  if (route === 'GET /latency') return { status: 200, body: runtime.requestLatencies.report() };
  if (request.method !== 'POST') return { status: 404, body: { ok: false, message: `no such endpoint: ${route}` } };
  const body = await readJson(request);
  if (typeof body === 'string') return { status: 400, body: { ok: false, message: body } };
  switch (request.url) {
    case '/volumes': {
      const name = body.name;
      const pageCount = body.pageCount;
      const servers = body.servers;
      if (typeof name !== 'string' || typeof pageCount !== 'number' || !Array.isArray(servers) || !servers.every((server) => typeof server === 'string')) {
        return { status: 400, body: { ok: false, message: 'expected {name: string, pageCount: number, servers: string[]}' } };
      }
      const result = await runtime.createVolume({
        name, pageCount, servers: servers as string[],
        pageSizeBlocks: numberOr(body.pageSizeBlocks, defaultPageSizeBlocks),
        blockSizeBytes: numberOr(body.blockSizeBytes, defaultBlockSizeBytes),
        piecesPerPage: numberOr(body.piecesPerPage, 4),
      });
      return { status: result.ok ? 200 : 409, body: result };
    }
    case '/moves': {
      const { volume, page, to, kind, pieces } = body;
      if (typeof volume !== 'string' || typeof page !== 'number' || typeof to !== 'string' || (kind !== 'unit' && kind !== 'piecewise') ||
        (pieces !== undefined && typeof pieces !== 'number')) {
        return { status: 400, body: { ok: false, message: 'expected {volume: string, page: number, to: string, kind: "unit" | "piecewise", pieces?: number}' } };
      }
      // The node judges the piece count against the volume (it must divide its piecesPerPage) and refuses with the reason.
      const result = await runtime.move({ volume, page }, to, kind as MoveKind, pieces as number | undefined);
      return { status: result.ok ? 200 : 409, body: result };
    }
    case '/moves/wait': {
      // Answers once this server holds no move of the page, or after waitMs (default 60 s, at most 10 min) with 408.
      const { volume, page } = body;
      const waitMs = numberOr(body.waitMs, 60_000);
      if (typeof volume !== 'string' || typeof page !== 'number' || !(waitMs >= 0 && waitMs <= 600_000)) {
        return { status: 400, body: { ok: false, message: 'expected {volume: string, page: number, waitMs?: number (0-600000)}' } };
      }
      const finished = runtime.moveFinished({ volume, page });
      if (finished === null) return { status: 503, body: { ok: false, message: 'too many callers are waiting for moves; try again' } };
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        finished.then(() => true),
        new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), waitMs); }),
      ]);
      clearTimeout(timer);
      return outcome
        ? { status: 200, body: { ok: true, message: `${runtime.self} holds no move of ${volume}/${page}` } }
        : { status: 408, body: { ok: false, message: `${runtime.self} still moves ${volume}/${page} after ${waitMs} ms` } };
    }
    case '/members': {
      const { id, peer } = body;
      const capacityWeight = numberOr(body.capacityWeight, 1);
      const address = peer as { host?: unknown; port?: unknown } | undefined;
      if (typeof id !== 'string' || typeof address !== 'object' || address === null || typeof address.host !== 'string' || typeof address.port !== 'number') {
        return { status: 400, body: { ok: false, message: 'expected {id: string, peer: {host: string, port: number}, capacityWeight?: number}' } };
      }
      const adminAddress = body.admin as { host?: unknown; port?: unknown } | undefined;
      const admin = typeof adminAddress === 'object' && adminAddress !== null && typeof adminAddress.host === 'string' && typeof adminAddress.port === 'number'
        ? { host: adminAddress.host, port: adminAddress.port } : null;
      const result = await runtime.changeMembership({ kind: 'add', member: { id, peer: { host: address.host, port: address.port }, admin, capacityWeight, draining: false } });
      return { status: result.ok ? 200 : 409, body: result };
    }
    case '/members/drain': {
      if (typeof body.id !== 'string') return { status: 400, body: { ok: false, message: 'expected {id: string}' } };
      const result = await runtime.changeMembership({ kind: 'drain', id: body.id });
      return { status: result.ok ? 200 : 409, body: result };
    }
    case '/members/leave': {
      const result = await runtime.changeMembership({ kind: 'remove', id: runtime.self });
      return { status: result.ok ? 200 : 409, body: result };
    }
    case '/shutdown':
      setImmediate(options.onShutdown);
      return { status: 200, body: { ok: true, message: `${runtime.self} stopping` } };
    default:
      return { status: 404, body: { ok: false, message: `no such endpoint: ${route}` } };
  }
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === 'number' ? value : fallback;
}

async function readJson(request: http.IncomingMessage): Promise<Record<string, unknown> | string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of request) {
    bytes += (chunk as Buffer).length;
    if (bytes > bodyBytesMax) return `request body over ${bodyBytesMax} bytes`;
    chunks.push(chunk as Buffer);
  }
  try {
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : 'expected a JSON object';
  } catch {
    return 'request body is not JSON';
  }
}
