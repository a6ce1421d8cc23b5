/**
 * The load monitor of one server (the seed's "load monitor process"): it
 * sees every block operation this server's NBD front end accepts and keeps,
 * per page and per client, decaying rates of operations (sequential and
 * random apart), bytes and latency. It measures where requests *enter* the
 * group; which server *serves* a page is the owner's business, so the
 * allocation process charges a page's heat to its owner (see
 * `machines/allocation/load-sample.ts`). Bounded: past `pagesMax` pages or
 * `clientsMax` clients the coldest entry is dropped.
 */
import type { PageKey, ServerId } from '../../machines/identifiers.js';
import { pageKeyText } from '../../machines/identifiers.js';
import { AccessPattern } from './access-pattern.js';
import { DecayingRate } from './decaying-rate.js';

export interface BlockObservation {
  readonly pageKey: PageKey;
  readonly kind: 'read' | 'write';
  readonly offsetBlocks: number;
  readonly lengthBlocks: number;
  readonly bytes: number;
  readonly latencyMs: number;
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
  readonly takenAtMs: number;
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
}

export const unknownClient = 'unknown';

export class LoadMonitor {
  readonly #pages = new Map<string, PageRates>();
  readonly #clients = new Map<string, ClientRates>();
  readonly #pattern = new AccessPattern();

  constructor(readonly options: LoadMonitorOptions) {}

  observe(observation: BlockObservation, nowMs: number): void {
    const text = pageKeyText(observation.pageKey);
    const clientId = observation.clientId ?? unknownClient;
    const page = this.#pages.get(text) ?? this.#admitPage(text, observation.pageKey, nowMs);
    const sequential = this.#pattern.isSequential(`${clientId}|${text}`, observation.offsetBlocks, observation.lengthBlocks);
    (sequential ? page.sequential : page.random).add(1, nowMs);
    page.bytes.add(observation.bytes, nowMs);
    page.latencyMs.add(observation.latencyMs, nowMs);
    const client = this.#clients.get(clientId) ?? this.#admitClient(clientId, nowMs);
    client.ops.add(1, nowMs);
    client.bytes.add(observation.bytes, nowMs);
  }

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
    const clients = [...this.#clients].map(([clientId, rates]) => ({ clientId, opsPerSecond: rates.ops.perSecond(nowMs), bytesPerSecond: rates.bytes.perSecond(nowMs) }));
    return { server: this.options.server, takenAtMs: nowMs, pages, clients };
  }

  #admitPage(text: string, pageKey: PageKey, nowMs: number): PageRates {
    if (this.#pages.size >= this.options.pagesMax) this.#evictColdest(this.#pages, (rates) => rates.random.perSecond(nowMs) + rates.sequential.perSecond(nowMs));
    const halfLife = this.options.halfLifeMs;
    const rates = { pageKey, random: new DecayingRate(halfLife, nowMs), sequential: new DecayingRate(halfLife, nowMs), bytes: new DecayingRate(halfLife, nowMs), latencyMs: new DecayingRate(halfLife, nowMs) };
    this.#pages.set(text, rates);
    return rates;
  }

  #admitClient(clientId: string, nowMs: number): ClientRates {
    if (this.#clients.size >= this.options.clientsMax) this.#evictColdest(this.#clients, (rates) => rates.ops.perSecond(nowMs));
    const rates = { ops: new DecayingRate(this.options.halfLifeMs, nowMs), bytes: new DecayingRate(this.options.halfLifeMs, nowMs) };
    this.#clients.set(clientId, rates);
    return rates;
  }

  #evictColdest<T>(entries: Map<string, T>, heat: (entry: T) => number): void {
    let coldest: string | null = null;
    let coldestHeat = Infinity;
    for (const [key, entry] of entries) {
      const value = heat(entry);
      if (value < coldestHeat) {
        coldest = key;
        coldestHeat = value;
      }
    }
    if (coldest !== null) entries.delete(coldest);
  }
}
