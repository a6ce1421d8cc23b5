/**
 * Group-wide load as one server knows it, gathered around a ring (the seed's
 * load monitors 220A → 220B → 220C → 220A): each server periodically sends
 * every report it holds to its successor, which keeps the newest report per
 * server. After a full turn every server holds every server's report. A
 * report older than `reportAgeMaxMs` is dropped, so a dead server's load
 * fades out instead of steering moves forever.
 *
 * Clocks. No two servers' clocks are compared. A report's `takenAtMs` is its
 * sender's monotonic clock and only orders that sender's reports; its age
 * travels with it (`ageMs`, as the last holder counted it) and each holder
 * turns it into a time on its own monotonic clock when it arrives. So a
 * server whose wall clock steps back an hour is neither frozen out nor kept
 * alive for an hour, and a report stamped in the far future ages like any
 * other. A server that restarts starts its clock afresh: until the report of
 * its previous life ages out, an older stamp is taken only for a report whose
 * holder has already aged its last one out.
 */
import type { ServerId } from '../../machines/identifiers.js';
import { pageKeyText } from '../../machines/identifiers.js';
import type { LoadSample, PageHeat, ServerCapacity } from '../../machines/allocation/load-sample.js';
import type { LoadReport } from './load-monitor.js';

interface HeldReport {
  readonly report: LoadReport;
  /** When the report was taken, on this server's monotonic clock. */
  readonly takenAtLocalMs: number;
}

export class RingView {
  readonly #reports = new Map<ServerId, HeldReport>();
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

  /**
   * The other servers in ring order after this one, nearest first: the
   * successor, and those to try when it does not answer (a dead successor
   * must not cut every server behind it off the ring).
   */
  successors(): ServerId[] {
    const at = this.#ring.indexOf(this.self);
    return Array.from({ length: this.#ring.length - 1 }, (_, index) => this.#ring[(at + 1 + index) % this.#ring.length]!);
  }

  /**
   * Keeps, for each server on the ring, the newest of what it holds and what
   * arrives (this server's own report always replaces its last one); `nowMs`
   * is this server's monotonic clock.
   */
  merge(reports: readonly LoadReport[], nowMs: number): void {
    this.#dropAged(nowMs);
    for (const report of reports) {
      if (!this.#ring.includes(report.server)) continue;
      const held = this.#reports.get(report.server);
      if (held && report.server !== this.self && held.report.takenAtMs >= report.takenAtMs) continue;
      const takenAtLocalMs = nowMs - report.ageMs;
      if (nowMs - takenAtLocalMs > this.reportAgeMaxMs) continue;
      this.#reports.set(report.server, { report, takenAtLocalMs });
    }
  }

  /** The fresh reports, each with its age now: what is sent on, and what a sample is built from. */
  fresh(nowMs: number): LoadReport[] {
    this.#dropAged(nowMs);
    return [...this.#reports.values()].map(({ report, takenAtLocalMs }) => ({ ...report, ageMs: nowMs - takenAtLocalMs }));
  }

  /** The servers whose load this server knows now: only they may be weighed, and so only they may receive pages. */
  reporting(nowMs: number): Set<ServerId> {
    this.#dropAged(nowMs);
    return new Set(this.#reports.keys());
  }

  /**
   * The allocation process's input: each page's heat summed over the servers
   * that accepted requests for it, charged to the owner `ownerOf` names, over
   * the `servers` with a fresh report (a server whose load is unknown, dead
   * or cut off, looks idle and would draw every move). Its time is the oldest
   * fresh report's, on this server's clock, so the sample's age is honest.
   */
  sample(nowMs: number, servers: readonly ServerCapacity[], ownerOf: (pageText: string) => ServerId | null): LoadSample {
    this.#dropAged(nowMs);
    const pages = new Map<string, PageHeat>();
    let takenAtMs = nowMs;
    for (const { report, takenAtLocalMs } of this.#reports.values()) {
      takenAtMs = Math.min(takenAtMs, takenAtLocalMs);
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
    return { takenAtMs, servers: servers.filter((server) => this.#reports.has(server.id)), pages: [...pages.values()] };
  }

  #dropAged(nowMs: number): void {
    for (const [server, held] of this.#reports) if (nowMs - held.takenAtLocalMs > this.reportAgeMaxMs) this.#reports.delete(server);
  }
}
