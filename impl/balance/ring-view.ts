/**
 * Group-wide load as one server knows it, gathered around a ring (the seed's
 * load monitors 220A → 220B → 220C → 220A): each server periodically sends
 * every report it holds to its successor, which keeps the newest report per
 * server. After a full turn every server holds every server's report. A
 * report older than `reportAgeMaxMs` is dropped, so a dead server's load
 * fades out instead of steering moves forever.
 */
import type { ServerId } from '../../machines/identifiers.js';
import { pageKeyText } from '../../machines/identifiers.js';
import type { LoadSample, PageHeat, ServerCapacity } from '../../machines/allocation/load-sample.js';
import type { LoadReport } from './load-monitor.js';

export class RingView {
  readonly #reports = new Map<ServerId, LoadReport>();
  #ring: readonly ServerId[];

  constructor(readonly self: ServerId, ring: readonly ServerId[], readonly reportAgeMaxMs: number) {
    if (!ring.includes(self)) throw new Error(`${self} is not on the ring`);
    this.#ring = ring;
  }

  get ring(): readonly ServerId[] {
    return this.#ring;
  }

  /** The group's membership changed: the ring follows it, and the reports of servers that left are dropped. */
  setRing(ring: readonly ServerId[]): void {
    if (!ring.includes(this.self)) return; // A server that left keeps its last ring until it stops.
    this.#ring = ring;
    for (const server of [...this.#reports.keys()]) if (!ring.includes(server)) this.#reports.delete(server);
  }

  /** The next server on the ring, in configuration order; null in a group of one. */
  successor(): ServerId | null {
    if (this.ring.length < 2) return null;
    return this.ring[(this.ring.indexOf(this.self) + 1) % this.ring.length] ?? null;
  }

  /** Keeps the newer of what it holds and what arrives, for each server; ignores servers not on the ring. */
  merge(reports: readonly LoadReport[]): void {
    for (const report of reports) {
      if (!this.ring.includes(report.server)) continue;
      const held = this.#reports.get(report.server);
      if (!held || held.takenAtMs < report.takenAtMs) this.#reports.set(report.server, report);
    }
  }

  fresh(nowMs: number): LoadReport[] {
    for (const [server, report] of this.#reports) if (nowMs - report.takenAtMs > this.reportAgeMaxMs) this.#reports.delete(server);
    return [...this.#reports.values()];
  }

  /**
   * The allocation process's input: each page's heat summed over the servers
   * that accepted requests for it, charged to the owner `ownerOf` names. Its
   * time is the oldest fresh report's, so the sample's age is honest.
   */
  sample(nowMs: number, servers: readonly ServerCapacity[], ownerOf: (pageText: string) => ServerId | null): LoadSample {
    const reports = this.fresh(nowMs);
    const pages = new Map<string, PageHeat>();
    for (const report of reports) {
      for (const page of report.pages) {
        const text = pageKeyText(page.pageKey);
        const owner = ownerOf(text);
        if (owner === null) continue;
        const held = pages.get(text);
        pages.set(text, {
          pageKey: page.pageKey, owner,
          randomOpsPerSecond: (held?.randomOpsPerSecond ?? 0) + page.randomOpsPerSecond,
          sequentialOpsPerSecond: (held?.sequentialOpsPerSecond ?? 0) + page.sequentialOpsPerSecond,
          bytesPerSecond: (held?.bytesPerSecond ?? 0) + page.bytesPerSecond,
        });
      }
    }
    const takenAtMs = reports.length === 0 ? nowMs : Math.min(...reports.map((report) => report.takenAtMs));
    return { takenAtMs, servers, pages: [...pages.values()] };
  }
}
