import { assign, enqueueActions, setup } from 'xstate';
import type { PageKey, ServerId } from '../identifiers.js';
import { assert, pageKeyText } from '../identifiers.js';
import type { AllocationConfig } from './allocation-config.js';
import { allocationConfigProblem } from './allocation-config.js';
import type { InFlightMove, MoveRequest } from './allocation-plan.js';
import { overShareServers, planMoves } from './allocation-plan.js';
import type { LoadSample } from './load-sample.js';

/**
 * The allocation process of one server (the seed's "resource distribution
 * process"): it turns group-wide load samples into page moves.
 *
 * Theory of operation. Time is an input: `clock.tick` and each sample's
 * `takenAtMs` advance `nowMs`; the machine never reads a clock.
 *
 * - `off` — automatic balancing is switched off. Samples are still recorded
 *   (so `balancing.enable` starts from a current view) and moves already
 *   requested are still settled, but nothing is planned. Over-share streaks
 *   restart from zero on `balancing.enable`.
 * - `on.balanced` — the last sample showed no server over its share.
 * - `on.watching` — some server is over its share (load > share × (1 +
 *   `overShareRelative`) and by at least `overShareFloorLoad`), but not yet
 *   for `overShareSamplesMin` consecutive samples: a burst must last before it
 *   costs a copy. A sample without it returns to `balanced`.
 * - `on.moving` — moves are in flight. Samples keep arriving and may plan
 *   more moves, up to `concurrentMovesMax` in flight; when the last move
 *   settles the machine returns to `balanced` and the next sample decides.
 *
 * Every state accepts `load.sample` (a sample older than `sampleAgeMaxMs`, or
 * taken before the last completed move, is dropped: it shows a placement that
 * is gone), `move.completed` / `move.failed` (which free a slot) and
 * `clock.tick` (which also gives up on moves older than `moveTimeoutMs`), and
 * `page.moved`, which starts the cool-down of a page that arrived by a move
 * this machine did not request: every server plans as if it were the only
 * mover, so without it two balancers unloading onto one server saw that
 * server move a page straight back within seconds.
 * A plan is made only from a sample that confirms an over-share streak and
 * consists only of moves that strictly lower Σ load²/weight (see
 * `allocation-plan.ts`): under a stable load no later move can undo an
 * earlier one. The per-page cool-down covers what the sample cannot show —
 * a view taken before a page's own move, another server's concurrent move —
 * so no page is moved twice within `pageCooldownMs`.
 */
export interface AllocationInput {
  readonly config: AllocationConfig;
  readonly nowMs: number;
}

export interface AllocationCounters {
  readonly samplesAccepted: number;
  readonly samplesStale: number;
  readonly movesRequested: number;
  readonly movesCompleted: number;
  readonly movesFailed: number;
}

export interface AllocationContext {
  readonly config: AllocationConfig;
  readonly nowMs: number;
  readonly sample: LoadSample | null;
  /** Consecutive accepted samples in which each server was over its share. */
  readonly overStreaks: Readonly<Record<ServerId, number>>;
  readonly inFlight: Readonly<Record<string, InFlightMove>>;
  /** When each page was last requested, finished moving or given up on; entries older than the cool-down are pruned on ticks. */
  readonly lastMovedAtMs: Readonly<Record<string, number>>;
  /** When a move last completed: a sample taken before it shows a placement that no longer exists. */
  readonly placementChangedAtMs: number;
  /** The moves the current transition requests; emitted as effects by `emitPlan`. */
  readonly plan: readonly MoveRequest[];
  readonly counters: AllocationCounters;
}

export type AllocationEvent =
  | { type: 'load.sample'; sample: LoadSample }
  | { type: 'move.completed'; pageKey: PageKey }
  | { type: 'move.failed'; pageKey: PageKey; reason: string }
  /** A page arrived on this server by a move this machine did not request (another server's balancer, a drain, an administrator). */
  | { type: 'page.moved'; pageKey: PageKey }
  | { type: 'clock.tick'; nowMs: number }
  | { type: 'balancing.enable' }
  | { type: 'balancing.disable' };

type SampleEvent = Extract<AllocationEvent, { type: 'load.sample' }>;

function isStale(context: AllocationContext, sample: LoadSample): boolean {
  return sample.takenAtMs < context.nowMs - context.config.sampleAgeMaxMs || sample.takenAtMs < context.placementChangedAtMs;
}

function checkedSample(context: AllocationContext, sample: LoadSample): LoadSample {
  assert(sample.servers.length <= context.config.serversMax, `a sample names at most ${context.config.serversMax} servers`);
  assert(sample.pages.length <= context.config.pagesMax, `a sample names at most ${context.config.pagesMax} pages`);
  return sample;
}

/**
 * Streaks after this sample: a server's grows while it stays over its share
 * and drops to zero otherwise. It stops at the hysteresis bound, beyond which
 * a longer streak carries no information.
 */
function streaksAfter(context: AllocationContext, sample: LoadSample): Record<ServerId, number> {
  const over = overShareServers(sample, context.inFlight, context.config);
  const bound = context.config.overShareSamplesMin;
  return Object.fromEntries(sample.servers.map((server) => [server.id, over.has(server.id) ? Math.min(bound, (context.overStreaks[server.id] ?? 0) + 1) : 0]));
}

function planFor(context: AllocationContext, sample: LoadSample): MoveRequest[] {
  const nowMs = Math.max(context.nowMs, sample.takenAtMs);
  const streaks = streaksAfter(context, sample);
  const confirmedSources = new Set(Object.entries(streaks).filter(([, streak]) => streak >= context.config.overShareSamplesMin).map(([id]) => id));
  if (confirmedSources.size === 0) return [];
  return planMoves(sample, { nowMs, confirmedSources, inFlight: context.inFlight, lastMovedAtMs: context.lastMovedAtMs }, context.config);
}

function sampleOf(event: AllocationEvent): LoadSample {
  assert(event.type === 'load.sample', 'a sample guard sees a sample');
  return (event as SampleEvent).sample;
}

function bump(counters: AllocationCounters, name: keyof AllocationCounters, by = 1): AllocationCounters {
  return { ...counters, [name]: counters[name] + by };
}

function withoutKey<T>(record: Readonly<Record<string, T>>, key: string): Record<string, T> {
  const { [key]: _dropped, ...rest } = record;
  return rest;
}

export const allocationSetup = setup({
  types: {} as { context: AllocationContext; events: AllocationEvent; input: AllocationInput },
  actions: {
    /** The effect itself: the action object carries the move as its params. */
    'move.request': (_args: unknown, _params: MoveRequest) => {},
    dropStale: assign(({ context }) => ({ counters: bump(context.counters, 'samplesStale') })),
    acceptSample: assign(({ context, event }) => {
      const sample = checkedSample(context, sampleOf(event));
      return {
        sample, nowMs: Math.max(context.nowMs, sample.takenAtMs), overStreaks: streaksAfter(context, sample),
        counters: bump(context.counters, 'samplesAccepted'),
      };
    }),
    /** Records a sample while balancing is off: no streaks, so switching on starts the hysteresis afresh. */
    recordSample: assign(({ context, event }) => {
      const sample = checkedSample(context, sampleOf(event));
      return { sample, nowMs: Math.max(context.nowMs, sample.takenAtMs), counters: bump(context.counters, 'samplesAccepted') };
    }),
    /** Computed before `acceptSample` changes the streaks, from the same sample the guard saw. */
    makePlan: assign(({ context, event }) => ({ plan: planFor(context, sampleOf(event)) })),
    startPlan: assign(({ context }) => {
      const inFlight = { ...context.inFlight };
      const lastMovedAtMs = { ...context.lastMovedAtMs };
      for (const move of context.plan) {
        const text = pageKeyText(move.pageKey);
        inFlight[text] = { ...move, requestedAtMs: context.nowMs };
        lastMovedAtMs[text] = context.nowMs;
      }
      return { inFlight, lastMovedAtMs, counters: bump(context.counters, 'movesRequested', context.plan.length) };
    }),
    emitPlan: enqueueActions(({ context, enqueue }) => {
      for (const move of context.plan) enqueue({ type: 'move.request', params: move });
    }),
    clearPlan: assign({ plan: [] }),
    settleCompleted: assign(({ context, event }) => {
      assert(event.type === 'move.completed', 'settles a completed move');
      const text = pageKeyText(event.pageKey);
      // A move this machine had given up on may still complete: the page moved all the same, so its cool-down starts again.
      return {
        inFlight: withoutKey(context.inFlight, text),
        // The cool-down runs from the later of request and completion, so a long copy does not shorten it.
        lastMovedAtMs: { ...context.lastMovedAtMs, [text]: context.nowMs },
        placementChangedAtMs: context.nowMs,
        counters: context.inFlight[text] ? bump(context.counters, 'movesCompleted') : context.counters,
      };
    }),
    /** Only the cool-down: the sample charges heat to the owner the routing table names when it is taken, so the placement it shows is current. */
    coolMovedPage: assign(({ context, event }) => {
      assert(event.type === 'page.moved', 'cools a moved page');
      return { lastMovedAtMs: { ...context.lastMovedAtMs, [pageKeyText(event.pageKey)]: context.nowMs } };
    }),
    settleFailed: assign(({ context, event }) => {
      assert(event.type === 'move.failed', 'settles a failed move');
      const text = pageKeyText(event.pageKey);
      if (!context.inFlight[text]) return {};
      return { inFlight: withoutKey(context.inFlight, text), counters: bump(context.counters, 'movesFailed') };
    }),
    advanceClock: assign(({ context, event }) => {
      assert(event.type === 'clock.tick', 'advances on a tick');
      const nowMs = Math.max(context.nowMs, event.nowMs);
      const inFlight: Record<string, InFlightMove> = {};
      const timedOut: string[] = [];
      for (const [text, move] of Object.entries(context.inFlight)) {
        if (nowMs - move.requestedAtMs >= context.config.moveTimeoutMs) timedOut.push(text);
        else inFlight[text] = move;
      }
      // Entries past their cool-down no longer constrain anything; pruning them bounds the record by the moves of one cool-down.
      const lastMovedAtMs = Object.fromEntries(Object.entries(context.lastMovedAtMs).filter(([, atMs]) => nowMs - atMs < context.config.pageCooldownMs));
      // A move given up on may still be copying, so its page starts a fresh cool-down rather than becoming movable at once.
      for (const text of timedOut) lastMovedAtMs[text] = nowMs;
      return { nowMs, inFlight, lastMovedAtMs, counters: bump(context.counters, 'movesFailed', timedOut.length) };
    }),
    resetStreaks: assign({ overStreaks: {} }),
  },
  guards: {
    isStale: ({ context, event }) => isStale(context, sampleOf(event)),
    plansMoves: ({ context, event }) => planFor(context, sampleOf(event)).length > 0,
    showsOverShare: ({ context, event }) => overShareServers(sampleOf(event), context.inFlight, context.config).size > 0,
    noMovesInFlight: ({ context }) => Object.keys(context.inFlight).length === 0,
  },
});

const planAndStart = ['makePlan', 'acceptSample', 'startPlan', 'emitPlan', 'clearPlan'] as const;

export const allocationMachine = allocationSetup.createMachine({
  id: 'allocation',
  context: ({ input }) => {
    const problem = allocationConfigProblem(input.config);
    assert(problem === null, `allocation config: ${problem}`);
    return {
      config: input.config, nowMs: input.nowMs, sample: null, overStreaks: {}, inFlight: {}, lastMovedAtMs: {}, placementChangedAtMs: 0, plan: [],
      counters: { samplesAccepted: 0, samplesStale: 0, movesRequested: 0, movesCompleted: 0, movesFailed: 0 },
    };
  },
  initial: 'starting',
  on: {
    'move.completed': { actions: 'settleCompleted' },
    'move.failed': { actions: 'settleFailed' },
    'page.moved': { actions: 'coolMovedPage' },
    'clock.tick': { actions: 'advanceClock' },
  },
  states: {
    starting: {
      always: [{ guard: ({ context }) => context.config.enabled, target: 'on' }, { target: 'off' }],
    },
    off: {
      on: {
        'balancing.enable': { target: 'on', actions: 'resetStreaks' },
        'load.sample': [{ guard: 'isStale', actions: 'dropStale' }, { actions: 'recordSample' }],
      },
    },
    on: {
      initial: 'balanced',
      on: { 'balancing.disable': { target: 'off' } },
      states: {
        balanced: {
          on: {
            'load.sample': [
              { guard: 'isStale', actions: 'dropStale' },
              { guard: 'plansMoves', target: 'moving', actions: [...planAndStart] },
              { guard: 'showsOverShare', target: 'watching', actions: 'acceptSample' },
              { actions: 'acceptSample' },
            ],
          },
        },
        watching: {
          on: {
            'load.sample': [
              { guard: 'isStale', actions: 'dropStale' },
              { guard: 'plansMoves', target: 'moving', actions: [...planAndStart] },
              { guard: 'showsOverShare', actions: 'acceptSample' },
              { target: 'balanced', actions: 'acceptSample' },
            ],
          },
        },
        moving: {
          always: { guard: 'noMovesInFlight', target: 'balanced' },
          on: {
            'load.sample': [
              { guard: 'isStale', actions: 'dropStale' },
              { guard: 'plansMoves', actions: [...planAndStart] },
              { actions: 'acceptSample' },
            ],
          },
        },
      },
    },
  },
});
