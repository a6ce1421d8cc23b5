/**
 * The balancer's door, one per server on the admin port + 100 (loopback
 * HTTP/JSON, like the admin API, so the peer protocol stays unchanged):
 *
 *   POST /load        {reports: LoadReport[]}   a ring predecessor's view
 *   GET  /load        this server's view of the group's load, shares, moves
 *   POST /balancing   {enabled: boolean}         the automatic-balancing switch
 *
 * Bodies are bounded; a bad one gets a 400 and changes nothing.
 */
import type http from 'node:http';
import type { MoveRequest } from '../../machines/allocation/allocation-plan.js';
import { jsonRequest } from '../cli/admin-client.js';
import { readJsonObject, startJsonHttpServer } from '../runtime/json-http-server.js';
import type { Balancer } from './balancer.js';
import type { ClientLoadReport, LoadReport, PageLoadReport } from './load-monitor.js';

export const balancePortOffset = 100;
/**
 * A ring message holds every member's fresh report, each at most 256 pages and 64 clients (load-monitor.ts): about
 * 48 KiB, so 256 members fit with room to spare. A larger body is refused, and the sender logs that its view reached
 * no one rather than the exchange stopping in silence.
 */
const bodyBytesMax = 16 * 1024 * 1024;
const peerRequestTimeoutMs = 2_000;

export function startBalanceServer(host: string, port: number, balancer: Balancer): Promise<{ port: number; close(): Promise<void> }> {
  // A body cut short (the client went away) rejects the read: answered 400, never left as an unhandled rejection,
  // which ended the process (a review found it).
  return startJsonHttpServer({ host, port, handle: (request) => handle(balancer, request), thrownStatus: 400 });
}

async function handle(balancer: Balancer, request: http.IncomingMessage): Promise<{ status: number; body: unknown }> {
  const route = `${request.method} ${request.url}`;
  if (route === 'GET /load') return { status: 200, body: balancer.status() };
  const body = await readJsonObject(request, bodyBytesMax);
  if (typeof body === 'string') return { status: 400, body: { ok: false, message: body } };
  if (route === 'POST /load') {
    const reports = body.reports;
    if (!Array.isArray(reports) || !reports.every(isReport)) return { status: 400, body: { ok: false, message: 'expected {reports: LoadReport[]}' } };
    balancer.receiveReports(reports);
    return { status: 200, body: { ok: true } };
  }
  if (route === 'POST /balancing') {
    if (typeof body.enabled !== 'boolean') return { status: 400, body: { ok: false, message: 'expected {enabled: boolean}' } };
    balancer.setEnabled(body.enabled);
    return { status: 200, body: { ok: true } };
  }
  return { status: 404, body: { ok: false, message: `no such endpoint: ${route}` } };
}

/**
 * A load report from a peer, checked to its leaves: a `null` page entry
 * passed the old shape check and crashed the balancer's next tick (a review
 * found it). Its times are the sender's (see ring-view.ts): `takenAtMs` only
 * orders that sender's reports and `ageMs` is its age, so a stamp from the
 * far future cannot hold a server's load for good; the report ages like any.
 */
export function isReport(value: unknown): value is LoadReport {
  const report = value as LoadReport;
  return typeof report === 'object' && report !== null && typeof report.server === 'string' && isRate(report.takenAtMs) && isRate(report.ageMs) &&
    Array.isArray(report.pages) && report.pages.every(isPageReport) && Array.isArray(report.clients) && report.clients.every(isClientReport);
}

function isRate(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

function isPageReport(value: unknown): value is PageLoadReport {
  const page = value as PageLoadReport;
  return typeof page === 'object' && page !== null && typeof page.pageKey === 'object' && page.pageKey !== null &&
    typeof page.pageKey.volume === 'string' && Number.isSafeInteger(page.pageKey.page) && page.pageKey.page >= 0 &&
    isRate(page.randomOpsPerSecond) && isRate(page.sequentialOpsPerSecond) && isRate(page.bytesPerSecond) && isRate(page.latencyMsMean);
}

function isClientReport(value: unknown): value is ClientLoadReport {
  const client = value as ClientLoadReport;
  return typeof client === 'object' && client !== null && typeof client.clientId === 'string' && isRate(client.opsPerSecond) && isRate(client.bytesPerSecond);
}

/** Sends a view to a peer's balance endpoint; a peer that is down just misses this turn of the ring. */
export async function postReports(address: { host: string; port: number }, reports: readonly LoadReport[]): Promise<boolean> {
  try {
    const answer = await jsonRequest(address, '/load', { reports }, peerRequestTimeoutMs);
    return answer.status === 200;
  } catch {
    return false;
  }
}

/** Asks an owner's admin endpoint to start a move (the cold half of a swap). */
export async function postMove(adminAddress: { host: string; port: number }, move: MoveRequest): Promise<{ ok: boolean; message: string }> {
  try {
    const answer = await jsonRequest(adminAddress, '/moves', { volume: move.pageKey.volume, page: move.pageKey.page, to: move.to, kind: move.kind }, peerRequestTimeoutMs);
    return answer.body as { ok: boolean; message: string };
  } catch (error) {
    return { ok: false, message: (error as Error).message };
  }
}

