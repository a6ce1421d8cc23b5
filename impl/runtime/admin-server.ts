/**
 * The administrator's door into one server: a small HTTP/JSON API on
 * loopback that the `blockshift` CLI talks to.
 *
 *   GET  /status            this server's view (volumes, routes, copies, moves)
 *   GET  /moves             only the moves it runs as their source, with their progress (cheap at any volume size)
 *   GET  /latency           its client requests' latency histograms by path (request-path-latency.ts), and its peer
 *                           round trips and service by peer and kind (peer-round-trips.ts), counted since it started
 *   POST /volumes           {name, pageCount, servers, pageSizeBlocks?, blockSizeBytes?, piecesPerPage?}
 *   POST /moves             {volume, page, to, kind: "unit" | "piecewise", pieces?}  (pieces must divide the volume's piecesPerPage)
 *   POST /members           {id, peer: {host, port}, admin?: {host, port}, capacityWeight?}: a server joins the group
 *   POST /members/drain     {id}: mark a member draining (its own server then moves its pages away)
 *   POST /members/leave     {}: this server, drained and holding nothing, leaves the group
 *   POST /members/forget    {ids, declareLost?}: other members holding nothing are removed (member-forget.ts), on the
 *                           caller's word that they are down for good (the CLI checks that they do not answer; the
 *                           node cannot); with declareLost, the pages they own are declared lost and served empty
 *                           by the member asked (lost-pages.ts)
 *   POST /shutdown          stop this server cleanly
 *
 * Bodies are bounded and validated; a bad request gets a 4xx with a clear
 * message and changes nothing. A refused membership change (409) also says
 * why in `refusal` ({reason, servers}, machines/membership/membership.ts,
 * MembershipRefusal): a program acts on that, not on the message's English.
 */
import type http from 'node:http';
import type { MoveKind } from '../../machines/migration/checkpoint.js';
import { defaultBlockSizeBytes, defaultPageSizeBlocks } from '../../machines/node/volume.js';
import type { ServerRuntime } from './server-runtime.js';
import { readJsonObject, startJsonHttpServer } from './json-http-server.js';
import { movesOf, statusOf } from './status-report.js';
import { membersMax } from '../../machines/membership/membership.js';

const bodyBytesMax = 64 * 1024;

export interface AdminServerOptions {
  readonly host: string;
  readonly port: number;
  readonly runtime: ServerRuntime;
  /** The server's data directory, absolute, reported by GET /status. */
  readonly dataDirectory: string;
  readonly onShutdown: () => void;
  readonly log: (line: string) => void;
}

export function startAdminServer(options: AdminServerOptions): Promise<{ port: number; close(): Promise<void> }> {
  return startJsonHttpServer({ host: options.host, port: options.port, handle: (request) => handle(options, request), thrownStatus: 500 });
}

async function handle(options: AdminServerOptions, request: http.IncomingMessage): Promise<{ status: number; body: unknown }> {
  const { runtime } = options;
  const route = `${request.method} ${request.url}`;
  // With the process id, so a supervisor can tell its own child's answer from another process's on the same port.
  if (route === 'GET /status') return { status: 200, body: { ...statusOf(runtime.state), pid: process.pid, dataDirectory: options.dataDirectory } };
  if (route === 'GET /moves') return { status: 200, body: { server: runtime.self, moves: movesOf(runtime.state) } };
  if (route === 'GET /latency') return { status: 200, body: { ...runtime.requestLatencies.report(), peers: runtime.peerRoundTrips.report() } };
  if (request.method !== 'POST') return { status: 404, body: { ok: false, message: `no such endpoint: ${route}` } };
  const body = await readJsonObject(request, bodyBytesMax);
  if (typeof body === 'string') return { status: 400, body: { ok: false, message: body } };
  switch (request.url) {
    case '/volumes': {
      const name = body.name;
      const pageCount = body.pageCount;
      const servers = body.servers;
      if (typeof name !== 'string' || typeof pageCount !== 'number' || !Array.isArray(servers) || !servers.every((server) => typeof server === 'string')) {
        return { status: 400, body: { ok: false, message: 'expected {name: string, pageCount: number, servers: string[]}' } };
      }
      const wrongType = notNumbers(body, ['pageSizeBlocks', 'blockSizeBytes', 'piecesPerPage']);
      if (wrongType) return { status: 400, body: { ok: false, message: wrongType } };
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
    case '/moves/abandon': {
      const { volume, page } = body;
      if (typeof volume !== 'string' || typeof page !== 'number') return { status: 400, body: { ok: false, message: 'expected {volume: string, page: number}' } };
      const result = await runtime.abandonMove({ volume, page });
      return { status: result.ok ? 200 : 409, body: result };
    }
    case '/moves/wait': {
      // Answers once this server holds no move of the page, or after waitMs (default 60 s, at most 10 min) with 408.
      const { volume, page } = body;
      const waitMs = body.waitMs ?? 60_000;
      if (typeof volume !== 'string' || typeof page !== 'number' || typeof waitMs !== 'number' || !(waitMs >= 0 && waitMs <= 600_000)) {
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
      const wrongType = notNumbers(body, ['capacityWeight']);
      if (wrongType) return { status: 400, body: { ok: false, message: wrongType } };
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
    case '/members/forget': {
      const { ids, declareLost } = body;
      if (!Array.isArray(ids) || ids.length === 0 || ids.length > membersMax || !ids.every((id) => typeof id === 'string') || (declareLost !== undefined && typeof declareLost !== 'boolean')) {
        return { status: 400, body: { ok: false, message: `expected {ids: [string, ...], declareLost?: boolean} (1 to ${membersMax} ids)` } };
      }
      const result = await runtime.changeMembership({ kind: 'forget', ids: ids as string[], ...(declareLost === true ? { declareLost: true } : {}) });
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

/** Names the optional number fields that are present but not numbers: a '8192' used to fall back to the default in silence. */
function notNumbers(body: Record<string, unknown>, names: readonly string[]): string | null {
  const wrong = names.filter((name) => body[name] !== undefined && typeof body[name] !== 'number');
  return wrong.length === 0 ? null : `${wrong.join(', ')} must be ${wrong.length === 1 ? 'a number' : 'numbers'}`;
}
