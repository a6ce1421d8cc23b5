/**
 * The balancer of one server: the glue between the load monitor, the ring,
 * the pure allocation machine and the runtime.
 *
 * Theory of operation. Every `sampleIntervalMs` it (1) takes its monitor's
 * report into its ring view and sends the view to its successor, (2) builds
 * a group-wide sample from the fresh reports, charging each page's heat to
 * the owner its routing table names, (3) feeds the machine a `clock.tick`
 * and the sample, and (4) carries out each `move.request` the machine
 * returns: a page this server owns is moved by `runtime.move`; the cold
 * half of a swap is owned by the destination, so it is asked to start that
 * move through its admin endpoint. A started move is settled by watching the
 * routing table: `move.completed` once it names the destination, `move.failed`
 * if the move was refused or left the node without the route changing. A
 * page that arrives here by anyone's move (another balancer's, a drain's, an
 * administrator's) is `page.moved`: its cool-down starts, so the balancer
 * that unloaded it onto this server and this one cannot pass it back and
 * forth. The machine is told the time; it never reads a clock.
 *
 * Failure. A tick that throws is logged and the next one runs: the balancer
 * is advice, and no error of its own may end the server. Its time is this
 * process's monotonic clock (see ring-view.ts on why no two servers' clocks
 * are compared).
 */
import type { PageKey, ServerId } from '../../machines/identifiers.js';
import { pageKeyOfText, pageKeyText, ownValue } from '../../machines/identifiers.js';
import { initialOwner } from '../../machines/node/volume.js';
import { assert } from '../../machines/identifiers.js';
import type { AllocationConfig } from '../../machines/allocation/allocation-config.js';
import type { AllocationEffect } from '../../machines/allocation/allocation-effects.js';
import { startAllocation, stepAllocation } from '../../machines/allocation/allocation-effects.js';
import type { AllocationContext, AllocationEvent } from '../../machines/allocation/allocation.machine.js';
import { allocationMachine } from '../../machines/allocation/allocation.machine.js';
import type { MoveRequest } from '../../machines/allocation/allocation-plan.js';
import type { LoadSample, PageHeat, ServerCapacity } from '../../machines/allocation/load-sample.js';
import { balancedServers, maxOverMeanRatio, pageLoad, serverLoads } from '../../machines/allocation/load-sample.js';
import type { ServerRuntime } from '../runtime/server-runtime.js';
import type { BlockObservation, LoadReport } from './load-monitor.js';
import { defaultLoadMonitorBounds, LoadMonitor } from './load-monitor.js';
import { RingView } from './ring-view.js';

export interface BalancerOptions {
  readonly runtime: ServerRuntime;
  readonly servers: readonly ServerCapacity[];
  readonly allocation: AllocationConfig;
  readonly sampleIntervalMs: number;
  readonly halfLifeMs: number;
  /** Sends this server's ring view to a peer; resolves false if it could not. */
  readonly sendReports: (to: ServerId, reports: readonly LoadReport[]) => Promise<boolean>;
  /** Asks the owner of a page to start a move (the cold half of a swap). */
  readonly requestRemoteMove: (owner: ServerId, move: MoveRequest) => Promise<{ ok: boolean; message: string }>;
  readonly log: (line: string) => void;
  /** A monotonic clock in milliseconds; this process's by default. */
  readonly nowMs?: () => number;
}

type AllocationSnapshot = { value: unknown; context: AllocationContext };

/** One line per decision the demo prints; the newest are kept. */
export interface BalanceEvent {
  readonly atMs: number;
  readonly text: string;
}

export const balanceEventsMax = 200;
/** Cold pages per server a sample lists as swap candidates; the rest are only counted (LoadSample.pageCounts). */
export const coldPagesPerServerMax = 64;

/** What one look at the routing table gives; taken again only when the table changed. */
interface Placement {
  readonly routes: unknown;
  /** The epoch of each page this server owns: a page that appears here, or under a newer epoch, has just arrived. */
  readonly ownedEpochs: Map<string, number>;
  readonly pageCounts: Record<ServerId, number>;
  /** The first pages each server owns, in the table's order, with no heat: candidates for the cold half of a swap. */
  readonly coldPages: readonly PageHeat[];
}
/** A move that has left the node without the route changing is failed after this many ticks of waiting for the route. */
const routeWaitTicksMax = 10;

export class Balancer {
  readonly monitor: LoadMonitor;
  readonly ring: RingView;
  readonly #options: BalancerOptions;
  /** The group's servers with their weights: the configured ones, then whatever the membership says. */
  #servers: readonly ServerCapacity[];
  #snapshot: AllocationSnapshot;
  readonly #watching = new Map<string, { move: MoveRequest; ticksWithoutMove: number }>();
  readonly #events: BalanceEvent[] = [];
  #timer: NodeJS.Timeout | null = null;
  #lastSample: LoadSample | null = null;
  /** True while a send of the ring view is under way (one at a time: a slow successor must not pile them up). */
  #sending = false;
  /** The server the ring view last reached, or null if the last send reached nobody; a change is logged. */
  #reached: ServerId | null | undefined = undefined;
  /** The placement as the routing table last looked at showed it (see `#lookAtPlacement`). */
  #placement: Placement | null = null;

  constructor(options: BalancerOptions) {
    // A sample's plan may swap a cold page back from one server on each of its moves: with fewer listed than that, a
    // sample that counts the rest would plan fewer moves than one listing every page (the property test found it).
    assert(options.allocation.movesPerSampleMax <= coldPagesPerServerMax, `a sample lists ${coldPagesPerServerMax} cold pages per server, at least movesPerSampleMax`);
    this.#options = options;
    this.#servers = options.servers;
    const self = options.runtime.self;
    this.monitor = new LoadMonitor({ server: self, halfLifeMs: options.halfLifeMs, ...defaultLoadMonitorBounds });
    this.ring = new RingView(self, options.servers.map((server) => server.id), options.allocation.sampleAgeMaxMs);
    const [snapshot] = startAllocation(allocationMachine, { config: options.allocation, nowMs: this.#now() });
    this.#snapshot = snapshot as AllocationSnapshot;
  }

  /** The volume backend issues a request's part in one page. */
  observe(observation: BlockObservation): void {
    this.monitor.observe(observation, this.#now());
  }

  /** ... and that request is answered. */
  answered(pageKey: PageKey, latencyMs: number): void {
    this.monitor.answered(pageKey, latencyMs, this.#now());
  }

  start(): void {
    this.#timer = setInterval(() => this.#tickLogged(), this.#options.sampleIntervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  receiveReports(reports: readonly LoadReport[]): void {
    this.ring.merge(reports, this.#now());
  }

  /** The membership changed: new members become destinations, and the ring and the sample follow. */
  setServers(servers: readonly ServerCapacity[]): void {
    this.#servers = servers;
    this.ring.setRing(servers.map((server) => server.id));
  }

  setEnabled(enabled: boolean): void {
    this.#feed({ type: enabled ? 'balancing.enable' : 'balancing.disable' });
    this.#note(`automatic balancing ${enabled ? 'on' : 'off'}`);
  }

  tick(): void {
    const nowMs = this.#now();
    this.ring.merge([this.monitor.report(nowMs)], nowMs);
    this.#sendAroundRing();
    const placement = this.#lookAtPlacement();
    this.#settleWatched();
    this.#feed({ type: 'clock.tick', nowMs });
    const sample = this.ring.sample(nowMs, this.#servers, (text) => this.#ownerOf(text));
    this.#lastSample = { ...sample, pages: this.#withColdPages(this.#hottest(sample.pages), placement), pageCounts: placement.pageCounts };
    this.#feed({ type: 'load.sample', sample: this.#lastSample });
  }

  #tickLogged(): void {
    try {
      this.tick();
    } catch (error) {
      this.#options.log(`balance: tick failed, next in ${this.#options.sampleIntervalMs} ms: ${(error as Error).stack ?? String(error)}`);
    }
  }

  /** Sends the ring view to the successor, or, if it does not take it, to the next server on the ring that does. */
  #sendAroundRing(): void {
    if (this.#sending) return;
    this.#sending = true;
    void (async () => {
      let reached: ServerId | null = null;
      for (const to of this.ring.successors()) {
        const sent = await this.#options.sendReports(to, this.ring.fresh(this.#now())).catch(() => false);
        if (sent) {
          reached = to;
          break;
        }
      }
      if (reached !== this.#reached && this.ring.successors().length > 0) {
        this.#options.log(reached === null ? 'balance: the load view reached no server on the ring' : `balance: the load view goes to ${reached}`);
      }
      this.#reached = reached;
    })().finally(() => { this.#sending = false; });
  }

  /**
   * Looks at the routing table, if it changed since the last look (it is a
   * persistent map: an unchanged one is the same object, and costs nothing):
   * how many pages each server owns, a few cold pages of each, and the pages
   * that arrived on this server (its route names this server under a newer
   * epoch), whose cool-down starts now.
   */
  #lookAtPlacement(): Placement {
    const routes = this.#options.runtime.state.routes;
    const before = this.#placement;
    if (before && routes === before.routes) return before;
    const self = this.#options.runtime.self;
    const ownedEpochs = new Map<string, number>();
    const pageCounts: Record<ServerId, number> = {};
    const coldPages: PageHeat[] = [];
    for (const [text, route] of routes) {
      const count = pageCounts[route.owner] ?? 0;
      pageCounts[route.owner] = count + 1;
      if (count < coldPagesPerServerMax) {
        const pageKey = pageKeyOfText(text);
        if (pageKey) coldPages.push({ pageKey, owner: route.owner, randomOpsPerSecond: 0, sequentialOpsPerSecond: 0, bytesPerSecond: 0 });
      }
      if (route.owner !== self) continue;
      ownedEpochs.set(text, route.epoch);
      const seenEpoch = before?.ownedEpochs.get(text);
      if (before && (seenEpoch === undefined || seenEpoch < route.epoch)) {
        const pageKey = pageKeyOfText(text);
        if (pageKey) this.#feed({ type: 'page.moved', pageKey });
      }
    }
    this.#placement = { routes, ownedEpochs, pageCounts, coldPages };
    return this.#placement;
  }

  /** The hottest pages the sample may carry, if the reports name more (many servers, each with many hot pages). */
  #hottest(pages: readonly PageHeat[]): readonly PageHeat[] {
    const { allocation } = this.#options;
    if (pages.length <= allocation.pagesMax) return pages;
    return pages.map((page) => ({ page, load: pageLoad(page, allocation) })).sort((a, b) => b.load - a.load).slice(0, allocation.pagesMax).map(({ page }) => page);
  }

  /** What `GET /load` shows: the group's load as this server sees it, its share of it, the machine's state and recent decisions. */
  status(): unknown {
    const nowMs = this.#now();
    const sample = this.#lastSample;
    const config = this.#options.allocation;
    const loads = sample ? serverLoads(sample, config) : new Map<ServerId, number>();
    const totalLoad = [...loads.values()].reduce((sum, load) => sum + load, 0);
    // A draining member is expected to carry nothing (its drain moves its pages away), as the allocation weighs it.
    const balanced = balancedServers(this.#servers);
    const totalWeight = balanced.reduce((sum, server) => sum + server.capacityWeight, 0);
    return {
      server: this.#options.runtime.self,
      atMs: nowMs,
      state: this.#snapshot.value,
      enabled: JSON.stringify(this.#snapshot.value) !== '"off"',
      servers: this.#servers.map((server) => ({
        id: server.id, capacityWeight: server.capacityWeight, draining: server.draining === true, load: loads.get(server.id) ?? 0,
        share: totalLoad > 0 ? (loads.get(server.id) ?? 0) / totalLoad : 0, expectedShare: server.draining === true || totalWeight <= 0 ? 0 : server.capacityWeight / totalWeight,
      })),
      groupLoad: totalLoad,
      maxOverMean: sample && balancedServers(sample.servers).length > 0 ? maxOverMeanRatio(loads, balancedServers(sample.servers)) : 1,
      reports: this.ring.fresh(nowMs).map((report) => ({ server: report.server, ageMs: report.ageMs, pages: report.pages.length, clients: report.clients })),
      inFlight: Object.values(this.#snapshot.context.inFlight),
      counters: this.#snapshot.context.counters,
      events: this.#events,
    };
  }

  #now(): number {
    return this.#options.nowMs?.() ?? performance.timeOrigin + performance.now();
  }

  #ownerOf(text: string): ServerId | null {
    const state = this.#options.runtime.state;
    const route = state.routes.get(text);
    if (route) return route.owner;
    const pageKey = pageKeyOfText(text);
    const volume = pageKey ? ownValue(state.volumes, pageKey.volume) : undefined;
    return pageKey && volume && pageKey.page < volume.pageCount ? initialOwner(volume, pageKey.page) : null;
  }

  /**
   * The hot pages, the pages of moves this balancer watches (so the planner
   * sees where they go), and a few cold pages of each server for swaps; the
   * rest of the placement travels as counts.
   */
  #withColdPages(hot: readonly PageHeat[], placement: Placement): PageHeat[] {
    const pages = new Map(hot.map((page) => [pageKeyText(page.pageKey), page]));
    const room = () => pages.size < this.#options.allocation.pagesMax;
    for (const [text, watched] of this.#watching) {
      const owner = this.#ownerOf(text);
      if (!pages.has(text) && owner !== null && room()) pages.set(text, { pageKey: watched.move.pageKey, owner, randomOpsPerSecond: 0, sequentialOpsPerSecond: 0, bytesPerSecond: 0 });
    }
    for (const page of placement.coldPages) {
      const text = pageKeyText(page.pageKey);
      const owner = this.#ownerOf(text);
      if (!pages.has(text) && owner === page.owner && room()) pages.set(text, page);
    }
    return [...pages.values()];
  }

  #feed(event: AllocationEvent): void {
    const [snapshot, effects] = stepAllocation(allocationMachine, this.#snapshot as never, event) as [AllocationSnapshot, AllocationEffect[]];
    this.#snapshot = snapshot;
    for (const effect of effects) this.#execute(effect);
  }

  #execute(effect: AllocationEffect): void {
    switch (effect.type) {
      case 'move.request': {
        const move: MoveRequest = { pageKey: effect.pageKey, from: effect.from, to: effect.to, kind: effect.kind, reason: effect.reason };
        const text = pageKeyText(move.pageKey);
        this.#note(`move ${text} ${move.from}→${move.to} (${move.reason}, ${move.kind})`);
        this.#watching.set(text, { move, ticksWithoutMove: 0 });
        const started = move.from === this.#options.runtime.self
          ? this.#options.runtime.move(move.pageKey, move.to, move.kind)
          : this.#options.requestRemoteMove(move.from, move);
        void started.then(
          (result) => { if (!result.ok) this.#fail(text, result.message); },
          (error: unknown) => this.#fail(text, (error as Error).message),
        );
        return;
      }
    }
  }

  #fail(text: string, reason: string): void {
    const watched = this.#watching.get(text);
    if (!watched) return;
    this.#watching.delete(text);
    this.#note(`move ${text} failed: ${reason}`);
    this.#feed({ type: 'move.failed', pageKey: watched.move.pageKey, reason });
  }

  /** A move is done when this server's routing table names its destination (the source pushes the route after the flip). */
  #settleWatched(): void {
    const state = this.#options.runtime.state;
    for (const [text, watched] of [...this.#watching]) {
      if (this.#ownerOf(text) === watched.move.to) {
        this.#watching.delete(text);
        this.#note(`move ${text} ${watched.move.from}→${watched.move.to} completed`);
        this.#feed({ type: 'move.completed', pageKey: watched.move.pageKey });
        continue;
      }
      // Only the source's node knows its moves; elsewhere the route is the only sign, and the machine's time-out covers
      // a lost one: once the machine has given it up, so does the watch (a remote swap half never completed stayed
      // watched for good, and a later arrival of the page fired a stray completion; a review found it).
      if (!this.#snapshot.context.inFlight[text]) {
        this.#watching.delete(text);
        this.#note(`move ${text} ${watched.move.from}→${watched.move.to} given up: no route to ${watched.move.to} within the move time-out`);
        continue;
      }
      // A move given up by the administrator (abandoned) has failed at once, though its record waits for its destination.
      const local = state.moves[text];
      if (watched.move.from === this.#options.runtime.self && local?.snapshot.status === 'active' && local.snapshot.matches('abandoned')) {
        this.#fail(text, 'the administrator abandoned it');
        continue;
      }
      if (watched.move.from !== this.#options.runtime.self || local?.snapshot.status === 'active') continue;
      watched.ticksWithoutMove += 1;
      if (watched.ticksWithoutMove > routeWaitTicksMax) this.#fail(text, 'the move ended without the route naming its destination');
    }
  }

  #note(text: string): void {
    const line = { atMs: this.#now(), text };
    this.#events.push(line);
    if (this.#events.length > balanceEventsMax) this.#events.shift();
    this.#options.log(`balance: ${text}`);
  }
}
