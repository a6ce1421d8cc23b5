import type { PageKey, ServerId } from '../identifiers.js';
import { pageKeyText } from '../identifiers.js';
import type { MoveKind } from '../migration/checkpoint.js';
import type { AllocationConfig } from './allocation-config.js';
import type { LoadSample, PageHeat } from './load-sample.js';
import { balancedServers, imbalance, isSequentialStream, pageLoad, totalPageCount } from './load-sample.js';

/**
 * The allocation rules as pure functions of one sample: which servers are
 * over their share, and which moves to request. The machine decides *when*
 * to plan (hysteresis, the on/off switch, the bound on moves in flight);
 * this file decides *what* to move. Draining members are left out of the
 * sample's servers before anything is weighed (`balancedServers`): no page
 * is planned onto them, and their pages are left to their drain, so the
 * allocation and the drain never move the same server's pages.
 */
export interface MoveRequest {
  readonly pageKey: PageKey;
  readonly from: ServerId;
  readonly to: ServerId;
  readonly kind: MoveKind;
  /** `overShare`: a hot page leaves an over-share server; `swap`: a cold page comes back so page counts keep to capacity. */
  readonly reason: 'overShare' | 'swap';
}

export interface InFlightMove extends MoveRequest {
  readonly requestedAtMs: number;
}

/** What the planner must respect besides the sample. */
export interface PlanLimits {
  readonly nowMs: number;
  /** Servers whose over-share streak reached the hysteresis bound. */
  readonly confirmedSources: ReadonlySet<ServerId>;
  readonly inFlight: Readonly<Record<string, InFlightMove>>;
  readonly lastMovedAtMs: Readonly<Record<string, number>>;
}

/** The hottest pages of a source considered per step; it bounds planning work on servers with many pages. */
export const candidatePagesMax = 64;

interface View {
  readonly owners: Map<string, ServerId>;
  readonly loads: Map<ServerId, number>;
  readonly pageCounts: Map<ServerId, number>;
  readonly pageLoads: Map<string, number>;
  readonly pages: Map<string, PageHeat>;
}

/**
 * The sample's placement with every move in flight taken as done, so moves
 * already requested are not requested again. Page counts come from the
 * sample's summary when it has one (its listed pages are then a subset; a
 * listed page whose move is in flight counts at its destination).
 */
export function projectedView(sample: LoadSample, inFlight: Readonly<Record<string, InFlightMove>>, config: AllocationConfig): View {
  const owners = new Map<string, ServerId>();
  const loads = new Map<ServerId, number>(sample.servers.map((server) => [server.id, 0]));
  const summary = sample.pageCounts;
  const pageCounts = new Map<ServerId, number>(sample.servers.map((server) => [server.id, summary?.[server.id] ?? 0]));
  const pageLoads = new Map<string, number>();
  const pages = new Map<string, PageHeat>();
  const shiftCount = (id: ServerId, by: number) => {
    const count = pageCounts.get(id);
    if (count !== undefined) pageCounts.set(id, count + by);
  };
  for (const page of sample.pages) {
    const text = pageKeyText(page.pageKey);
    const owner = inFlight[text]?.to ?? page.owner;
    const load = pageLoad(page, config);
    owners.set(text, owner);
    pageLoads.set(text, load);
    pages.set(text, page);
    const ownerLoad = loads.get(owner);
    if (ownerLoad !== undefined) loads.set(owner, ownerLoad + load);
    if (!summary) shiftCount(owner, 1);
    else if (owner !== page.owner) {
      shiftCount(page.owner, -1);
      shiftCount(owner, 1);
    }
  }
  return { owners, loads, pageCounts, pageLoads, pages };
}

/** The sample as the allocation weighs it: draining members, their weight and their pages' load left out. */
function withoutDraining(sample: LoadSample): LoadSample {
  const servers = balancedServers(sample.servers);
  return servers.length === sample.servers.length ? sample : { ...sample, servers };
}

function totals(sample: LoadSample, view: View): { load: number; weight: number; pages: number } {
  let load = 0;
  let weight = 0;
  for (const server of sample.servers) {
    load += view.loads.get(server.id) ?? 0;
    weight += server.capacityWeight;
  }
  return { load, weight, pages: totalPageCount(sample) };
}

/** Servers over their share by both the relative threshold and the absolute floor, on the projected placement. */
export function overShareServers(fullSample: LoadSample, inFlight: Readonly<Record<string, InFlightMove>>, config: AllocationConfig): Set<ServerId> {
  const sample = withoutDraining(fullSample);
  const view = projectedView(sample, inFlight, config);
  const total = totals(sample, view);
  const over = new Set<ServerId>();
  for (const server of sample.servers) if (isOverShare(server.id, server.capacityWeight, view, total, config)) over.add(server.id);
  return over;
}

function isOverShare(id: ServerId, weight: number, view: View, total: { load: number; weight: number }, config: AllocationConfig): boolean {
  const load = view.loads.get(id) ?? 0;
  const expected = total.load * weight / total.weight;
  return load > expected * (1 + config.overShareRelative) && load - expected >= config.overShareFloorLoad;
}

/** Whether a page may be moved now: not moving, and not moved within its cool-down. */
export function isMovable(text: string, limits: PlanLimits, config: AllocationConfig): boolean {
  if (limits.inFlight[text]) return false;
  const lastMs = limits.lastMovedAtMs[text];
  return lastMs === undefined || limits.nowMs - lastMs >= config.pageCooldownMs;
}

interface Candidate {
  readonly moves: MoveRequest[];
  readonly gain: number;
}

/**
 * Plans moves off confirmed over-share servers, greedily: each step takes the
 * move (or hot/cold swap) that lowers the imbalance Σ load²/weight the most,
 * and only a move that lowers it strictly is ever taken. A move into a server
 * already at its page-count bound must bring that server's coldest movable
 * page back (a swap), so hot pages spread by load while page counts, and so
 * storage, stay near the capacity weights instead of drifting.
 */
export function planMoves(fullSample: LoadSample, limits: PlanLimits, config: AllocationConfig): MoveRequest[] {
  const sample = withoutDraining(fullSample);
  const planned: MoveRequest[] = [];
  let budget = Math.min(config.movesPerSampleMax, config.concurrentMovesMax - Object.keys(limits.inFlight).length);
  if (budget <= 0) return planned;
  const view = projectedView(sample, limits.inFlight, config);
  const total = totals(sample, view);
  if (total.load <= 0) return planned;
  const weights = new Map(sample.servers.map((server) => [server.id, server.capacityWeight]));
  const pageBound = (id: ServerId) => Math.ceil(total.pages * (weights.get(id) ?? 0) / total.weight * (1 + config.pageCountSlackRelative));
  const taken = new Set<string>();
  const movable = (text: string) => !taken.has(text) && isMovable(text, limits, config);
  const relative = (id: ServerId) => (view.loads.get(id) ?? 0) / (weights.get(id) ?? 1);
  const sources = sample.servers
    .filter((server) => limits.confirmedSources.has(server.id) && (config.self === null || server.id === config.self))
    .sort((a, b) => relative(b.id) - relative(a.id) || a.id.localeCompare(b.id));

  for (const source of sources) {
    while (budget > 0 && isOverShare(source.id, source.capacityWeight, view, total, config)) {
      const best = bestCandidate(source.id, budget, view, sample, movable, pageBound, config);
      if (!best) break;
      for (const move of best.moves) {
        const text = pageKeyText(move.pageKey);
        const load = view.pageLoads.get(text) ?? 0;
        view.owners.set(text, move.to);
        view.loads.set(move.from, (view.loads.get(move.from) ?? 0) - load);
        view.loads.set(move.to, (view.loads.get(move.to) ?? 0) + load);
        view.pageCounts.set(move.from, (view.pageCounts.get(move.from) ?? 0) - 1);
        view.pageCounts.set(move.to, (view.pageCounts.get(move.to) ?? 0) + 1);
        taken.add(text);
        planned.push(move);
        budget -= 1;
      }
    }
  }
  return planned;
}

function bestCandidate(
  source: ServerId, budget: number, view: View, sample: LoadSample, movable: (text: string) => boolean,
  pageBound: (id: ServerId) => number, config: AllocationConfig,
): Candidate | null {
  const before = imbalance(view.loads, sample.servers);
  const owned = (id: ServerId) => [...view.owners].filter(([text, owner]) => owner === id && movable(text)).map(([text]) => text);
  // Random-hit pages first, then the hottest: a sequential stream leaves its page on its own, so moving it buys little.
  const hot = owned(source)
    .filter((text) => (view.pageLoads.get(text) ?? 0) > 0)
    .sort((a, b) => Number(isSequentialStream(view.pages.get(a)!)) - Number(isSequentialStream(view.pages.get(b)!)) ||
      (view.pageLoads.get(b) ?? 0) - (view.pageLoads.get(a) ?? 0) || a.localeCompare(b))
    .slice(0, candidatePagesMax);
  let best: Candidate | null = null;
  for (const destination of sample.servers) {
    if (destination.id === source) continue;
    const needsSwap = (view.pageCounts.get(destination.id) ?? 0) + 1 > pageBound(destination.id);
    if (needsSwap && budget < 2) continue;
    const cold = needsSwap ? coldest(owned(destination.id), view) : null;
    if (needsSwap && cold === null) continue;
    for (const text of hot) {
      const hotLoad = view.pageLoads.get(text) ?? 0;
      const coldLoad = cold === null ? 0 : view.pageLoads.get(cold) ?? 0;
      const loads = new Map(view.loads);
      loads.set(source, (loads.get(source) ?? 0) - hotLoad + coldLoad);
      loads.set(destination.id, (loads.get(destination.id) ?? 0) + hotLoad - coldLoad);
      const gain = before - imbalance(loads, sample.servers);
      // Strictly better only, with a little room for rounding, so equal-cost moves never alternate.
      if (!(gain > before * 1e-9) || (best && gain <= best.gain)) continue;
      const page = view.pages.get(text)!;
      const moves: MoveRequest[] = [{ pageKey: page.pageKey, from: source, to: destination.id, kind: config.moveKind, reason: 'overShare' }];
      if (cold !== null) moves.push({ pageKey: view.pages.get(cold)!.pageKey, from: destination.id, to: source, kind: config.moveKind, reason: 'swap' });
      best = { moves, gain };
    }
  }
  return best;
}

function coldest(texts: readonly string[], view: View): string | null {
  let found: string | null = null;
  for (const text of texts) {
    const load = view.pageLoads.get(text) ?? 0;
    if (found === null || load < (view.pageLoads.get(found) ?? 0) || (load === (view.pageLoads.get(found) ?? 0) && text < found)) found = text;
  }
  return found;
}
