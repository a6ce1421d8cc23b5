/**
 * The load monitor of one server (the seed's "load monitor process"): it
 * sees every block request this server's NBD front end accepts and keeps,
 * per page and per client, decaying rates of operations (sequential and
 * random apart), bytes and latency. It measures where requests *enter* the
 * group; which server *serves* a page is the owner's business, so the
 * allocation process charges a page's heat to its owner (see
 * `machines/allocation/load-sample.ts`).
 *
 * A request is observed once per page it touches, when it is *issued*: a
 * sequential stream is recognised in the order the client sent it (at a
 * queue depth above one, completions come back out of order, and judging at
 * completion called most of a stream random), and a request split into many
 * pieces still counts as one operation on its page. Its latency is added
 * when it is answered.
 *
 * Bounded, and cheap on the request path: past `pagesMax` pages (or
 * `clientsMax` clients) the colder half is dropped in one sweep, so
 * admitting a page costs O(1) amortised instead of a scan per request. A
 * report carries only the hottest `reportPagesMax` pages and
 * `reportClientsMax` clients: it travels the ring with every other server's,
 * and the planner looks at no more than the hottest few dozen pages per
 * server anyway.
 *
 * Time is the caller's monotonic clock (never read here), so a step of the
 * wall clock neither freezes nor inflates a rate.
 */
import type { PageKey, ServerId } from '../../machines/identifiers.js';
import { pageKeyText } from '../../machines/identifiers.js';
import { AccessPattern } from './access-pattern.js';
import { DecayingRate } from './decaying-rate.js';

/** One request's part in one page, as it is issued. */
export interface BlockObservation {
  readonly pageKey: PageKey;
  readonly kind: 'read' | 'write';
  readonly offsetBlocks: number;
  readonly lengthBlocks: number;
  readonly bytes: number;
  readonly clientId?: string;
}

export interface PageLoadReport {
  readonly pageKey: PageKey;
  readonly randomOpsPerSecond: number;
  readonly sequentialOpsPerSecond: number;
  readonly bytesPerSecond: number;
  readonly latencyMsMean: number;
}

export interface ClientLoadReport {
  readonly clientId: string;
  readonly opsPerSecond: number;
  readonly bytesPerSecond: number;
}

/** What one server measured, as it travels around the ring. */
export interface LoadReport {
  readonly server: ServerId;
  /** The reporting server's own monotonic clock: it orders that server's reports, and means nothing to another server's clock. */
  readonly takenAtMs: number;
  /** How long ago, as its sender last held it, the report was taken: the receiver's age for it, whatever the two clocks say. */
  readonly ageMs: number;
  readonly pages: readonly PageLoadReport[];
  readonly clients: readonly ClientLoadReport[];
}

interface PageRates {
  readonly pageKey: PageKey;
  readonly random: DecayingRate;
  readonly sequential: DecayingRate;
  readonly bytes: DecayingRate;
  readonly latencyMs: DecayingRate;
}

interface ClientRates {
  readonly ops: DecayingRate;
  readonly bytes: DecayingRate;
}

export interface LoadMonitorOptions {
  readonly server: ServerId;
  readonly halfLifeMs: number;
  readonly pagesMax: number;
  readonly clientsMax: number;
  /** Rates below this (ops/s) are left out of reports: they cannot move a balance and cost bytes on the ring. */
  readonly reportOpsPerSecondMin: number;
  readonly reportPagesMax: number;
  readonly reportClientsMax: number;
}

export const defaultLoadMonitorBounds = { pagesMax: 16_384, clientsMax: 1_024, reportOpsPerSecondMin: 0.01, reportPagesMax: 256, reportClientsMax: 64 } as const;

export const unknownClient = 'unknown';

export class LoadMonitor {
  readonly #pages = new Map<string, PageRates>();
  readonly #clients = new Map<string, ClientRates>();
  readonly #pattern = new AccessPattern();

  constructor(readonly options: LoadMonitorOptions) {}

  /** A request's part in one page is issued. */
  observe(observation: BlockObservation, nowMs: number): void {
    const text = pageKeyText(observation.pageKey);
    const clientId = observation.clientId ?? unknownClient;
    const page = this.#pages.get(text) ?? this.#admitPage(text, observation.pageKey, nowMs);
    const sequential = this.#pattern.isSequential(`${clientId}|${text}`, observation.offsetBlocks, observation.lengthBlocks);
    (sequential ? page.sequential : page.random).add(1, nowMs);
    page.bytes.add(observation.bytes, nowMs);
    const client = this.#clients.get(clientId) ?? this.#admitClient(clientId, nowMs);
    client.ops.add(1, nowMs);
    client.bytes.add(observation.bytes, nowMs);
  }

  /** That request is answered; a page dropped meanwhile is not admitted again for it. */
  answered(pageKey: PageKey, latencyMs: number, nowMs: number): void {
    this.#pages.get(pageKeyText(pageKey))?.latencyMs.add(latencyMs, nowMs);
  }

  /** The hottest pages and busiest clients, with `ageMs` 0: the ring view ages it from here. */
  report(nowMs: number): LoadReport {
    const pages: PageLoadReport[] = [];
    for (const page of this.#pages.values()) {
      const randomOpsPerSecond = page.random.perSecond(nowMs);
      const sequentialOpsPerSecond = page.sequential.perSecond(nowMs);
      const ops = randomOpsPerSecond + sequentialOpsPerSecond;
      if (ops < this.options.reportOpsPerSecondMin) continue;
      pages.push({
        pageKey: page.pageKey, randomOpsPerSecond, sequentialOpsPerSecond, bytesPerSecond: page.bytes.perSecond(nowMs),
        latencyMsMean: ops > 0 ? page.latencyMs.perSecond(nowMs) / ops : 0,
      });
    }
    const hottestPages = pages.sort((a, b) => b.randomOpsPerSecond + b.sequentialOpsPerSecond - (a.randomOpsPerSecond + a.sequentialOpsPerSecond)).slice(0, this.options.reportPagesMax);
    const clients = [...this.#clients].map(([clientId, rates]) => ({ clientId, opsPerSecond: rates.ops.perSecond(nowMs), bytesPerSecond: rates.bytes.perSecond(nowMs) }))
      .filter((client) => client.opsPerSecond >= this.options.reportOpsPerSecondMin)
      .sort((a, b) => b.opsPerSecond - a.opsPerSecond).slice(0, this.options.reportClientsMax);
    return { server: this.options.server, takenAtMs: nowMs, ageMs: 0, pages: hottestPages, clients };
  }

  #admitPage(text: string, pageKey: PageKey, nowMs: number): PageRates {
    if (this.#pages.size >= this.options.pagesMax) dropColderHalf(this.#pages, (rates) => rates.random.perSecond(nowMs) + rates.sequential.perSecond(nowMs));
    const halfLife = this.options.halfLifeMs;
    const rates = { pageKey, random: new DecayingRate(halfLife, nowMs), sequential: new DecayingRate(halfLife, nowMs), bytes: new DecayingRate(halfLife, nowMs), latencyMs: new DecayingRate(halfLife, nowMs) };
    this.#pages.set(text, rates);
    return rates;
  }

  #admitClient(clientId: string, nowMs: number): ClientRates {
    if (this.#clients.size >= this.options.clientsMax) dropColderHalf(this.#clients, (rates) => rates.ops.perSecond(nowMs));
    const rates = { ops: new DecayingRate(this.options.halfLifeMs, nowMs), bytes: new DecayingRate(this.options.halfLifeMs, nowMs) };
    this.#clients.set(clientId, rates);
    return rates;
  }
}

/** Keeps the hotter half of a full map (of equally cold entries, the longest held go): one sweep per `size / 2` admissions. */
function dropColderHalf<T>(entries: Map<string, T>, heat: (entry: T) => number): void {
  const ranked = [...entries].map(([key, entry]) => ({ key, heat: heat(entry) })).sort((a, b) => a.heat - b.heat);
  for (const { key } of ranked.slice(0, Math.ceil(ranked.length / 2))) entries.delete(key);
}
