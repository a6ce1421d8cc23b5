import { getHeapStatistics } from 'node:v8';
import type { Violation } from '../world/properties.js';
import { checkLiveness, healFairly } from './liveness.js';
import { checkState, checkTransition, goalsReached, sometimesGoals } from '../world/properties.js';
import { fingerprintWords, forgetInternedPieces } from '../world/fingerprint.js';
import { VisitedSet } from './visited-set.js';
import type { FingerprintAudit } from '../world/fingerprint-audit.js';
import { canonicalObjects } from '../world/canonical-objects.js';
import type { Action, World } from '../world/world.js';
import { applyAction, describeAction, enabledActions, initialWorld } from '../world/world.js';
import { assert } from '../../machines/identifiers.js';
import type { WorldConfig } from '../world/world-config.js';

/**
 * Breadth-first exhaustive search of every interleaving the bounds allow.
 * States are deduplicated by canonical fingerprint; every state is checked
 * against the *always* properties, every transition against the
 * transition properties, and the *sometimes* goals are gathered over all
 * states. The first violation found is at the smallest depth, so its trace is
 * a shortest counterexample.
 *
 * Goals are gathered per transition, from every successor whether new or
 * not, because the fingerprint leaves out the goals a world's path met
 * (world/fingerprint.ts): the worlds reached by two paths are one state, and
 * the goals the second path met are seen on its last transition. One goal
 * needs its history: "a crash at stage s, and the move still completes".
 * Every world a crash at a new stage s leads to is kept as a witness
 * candidate (a few per stage); after the search, a stage not yet seen
 * completing is witnessed by healing a candidate fairly (liveness.ts) until
 * its own history shows the move completed after that crash. A completing
 * path found either way is a real path of the model.
 */
export interface ExploreOptions {
  readonly statesMax: number;
  readonly depthMax: number;
  /**
   * Checks liveness from this many states, drawn uniformly over the whole
   * search (a reservoir): faults stop, a fair schedule must converge. The
   * first this-many eligible states were taken before, which in breadth-first
   * order left every deeper state unchecked (a review found 90% of a search
   * never sampled). With at least as many samples as states, every state is
   * checked.
   */
  readonly livenessSamples: number;
  /** Only every this-many-th new state is eligible for a liveness sample. */
  readonly livenessEvery: number;
  readonly livenessStepsMax: number;
  readonly onProgress?: (states: number, depth: number) => void;
  /** Stop (incomplete) after this long; unbounded when absent. */
  readonly secondsMax?: number;
  /**
   * Stop (incomplete, with `memoryCapped`) once the V8 heap in use passes
   * this fraction of its limit, rather than die of heap exhaustion with
   * nothing reported. Checked every `heapCheckEveryStates` new states; off
   * when absent.
   */
  readonly heapFractionMax?: number;
  /**
   * Merge worlds that are images of each other under a renaming of
   * interchangeable servers (model-tests/world/server-symmetry.ts). On unless
   * false; a test runs every broken variant with and without it.
   */
  readonly symmetry?: boolean;
  /**
   * Keep each world's history (its sightings and answered client
   * operations: world/fingerprint.ts) in the fingerprint, as before it was
   * left out; for the test that both searches agree.
   */
  readonly historyInFingerprint?: boolean;
  /**
   * Share one object per server state and per message among the worlds of
   * the search (world/canonical-objects.ts). On unless false; a test
   * demands the same results either way.
   */
  readonly shareEqualObjects?: boolean;
  /**
   * Debug: check that states merged by fingerprint are equal in every field
   * but the abstracted ones (world/fingerprint-audit.ts). Off unless given;
   * when off, the search pays one test per transition.
   */
  readonly fingerprintAudit?: FingerprintAudit;
  /** Called once per distinct state as it is found (for tests that compare searches). */
  readonly onNewState?: (world: World) => void;
  /**
   * Search from this world (of `config`) instead of the initial one: every
   * future of a given prefix, e.g. the steps that lead into a scenario a
   * configuration small enough for CI cannot reach whole. A violation's
   * trace then starts from it.
   */
  readonly start?: World;
}

export interface TraceStep {
  readonly action: Action;
  readonly description: string;
}

export interface ExploreResult {
  readonly config: WorldConfig;
  readonly states: number;
  readonly transitions: number;
  readonly depth: number;
  readonly seconds: number;
  readonly complete: boolean;
  readonly violation: (Violation & { trace: TraceStep[] }) | null;
  readonly goals: Record<string, boolean>;
  readonly deadlocks: number;
  readonly livenessChecked: number;
  /** The states liveness samples were drawn from (every `livenessEvery`-th new state). */
  readonly livenessEligible: number;
  readonly livenessFailure: (TraceStep[] & { reason?: string }) | null;
  /** The search stopped because the heap neared its limit (see ExploreOptions.heapFractionMax). */
  readonly memoryCapped: boolean;
}

const heapCheckEveryStates = 1_000;
/** Worlds kept per move stage, just after a crash at that stage, to witness that the move still completes. */
const crashWitnessesPerStageMax = 8;
/** Fair steps allowed to a crash witness for the move to complete. */
const crashWitnessStepsMax = 2_000;

function heapFractionUsed(): number {
  const { used_heap_size: used, heap_size_limit: limit } = getHeapStatistics();
  return used / limit;
}

export function explore(config: WorldConfig, options: ExploreOptions): ExploreResult {
  const sharing = canonicalObjects.enabled;
  canonicalObjects.enabled = options.shareEqualObjects !== false;
  try {
    return search(config, options);
  } finally {
    canonicalObjects.enabled = sharing;
  }
}

function search(config: WorldConfig, options: ExploreOptions): ExploreResult {
  const started = performance.now();
  const initial = options.start ?? initialWorld(config);
  assert(initial.config === config, 'a search starts from a world of its configuration');
  // States by 96 bits of their fingerprint, each with the state and action it was first reached by (visited-set.ts).
  const visited = new VisitedSet();
  const symmetric = options.symmetry !== false;
  forgetInternedPieces();
  const history = options.historyInFingerprint === true;
  const initialWords = fingerprintWords(initial, symmetric, history);
  const root = visited.addWords(initialWords[0] as number, initialWords[1] as number, initialWords[2] as number, -1, null);
  const audit = options.fingerprintAudit;
  audit?.noteNew(root, initial);
  options.onNewState?.(initial);
  let frontier: Array<[number, World]> = [[root, initial]];
  let transitions = 0;
  let depth = 0;
  let deadlocks = 0;
  let complete = true;
  let timedOut = false;
  const sightings = { ...initial.sightings };
  const merge = (world: World) => {
    sightings.moveCompleted ||= world.sightings.moveCompleted;
    sightings.dualWriteLanded ||= world.sightings.dualWriteLanded;
    sightings.staleRetry ||= world.sightings.staleRetry;
    sightings.pointerForwarded ||= world.sightings.pointerForwarded;
    if (world.sightings.flushSucceeded) sightings.flushSucceeded = true;
    if (world.sightings.flushLossReported) sightings.flushLossReported = true;
    if (world.sightings.abandonedCopyReleased) sightings.abandonedCopyReleased = true;
    if (world.sightings.lateCancelledForwardRefused) sightings.lateCancelledForwardRefused = true;
    if (world.sightings.dataWriteFailed) sightings.dataWriteFailed = true;
    const stages = world.sightings.completedAfterCrashAtStages;
    if (stages.some((stage) => !sightings.completedAfterCrashAtStages.includes(stage))) {
      sightings.completedAfterCrashAtStages = [...new Set([...sightings.completedAfterCrashAtStages, ...stages])];
    }
  };
  const crashWitnesses = new Map<number, World[]>();
  const noteCrash = (before: World, after: World) => {
    for (const stage of after.sightings.crashedAtStages) {
      if (before.sightings.crashedAtStages.includes(stage) || sightings.completedAfterCrashAtStages.includes(stage)) continue;
      const witnesses = crashWitnesses.get(stage) ?? [];
      if (witnesses.length < crashWitnessesPerStageMax) crashWitnesses.set(stage, [...witnesses, after]);
    }
  };
  /** Heals each crash witness fairly; a failed assertion on the way is a violation (its trace starts at the witness). */
  const witnessCrashStages = (): ExploreResult['violation'] => {
    for (const [stage, witnesses] of crashWitnesses) {
      for (const witness of witnesses) {
        if (sightings.completedAfterCrashAtStages.includes(stage)) break;
        try {
          merge(healFairly(witness, crashWitnessStepsMax));
        } catch (error) {
          return { property: 'every step runs without a failed assertion', detail: `while healing a crash at stage ${stage}: ${(error as Error).message}`, trace: [] };
        }
      }
    }
    return null;
  };
  const livenessCandidates: Array<[number, World]> = [];
  let livenessEligible = 0;
  // A fixed seed: the same search samples the same states.
  const reservoirRandom = seededRandom(0x5eed);
  const finish = (found: ExploreResult['violation']): ExploreResult => {
    const violation = found ?? witnessCrashStages();
    let livenessFailure: ExploreResult['livenessFailure'] = null;
    for (const [key, world] of violation ? [] : livenessCandidates) {
      const reason = checkLiveness(world, options.livenessStepsMax);
      if (reason) {
        livenessFailure = Object.assign(traceTo(key, null), { reason });
        break;
      }
    }
    return {
      config, states: visited.size, transitions, depth, seconds: (performance.now() - started) / 1000, complete: complete && violation === null,
      violation, goals: goalsReached(sightings, initial), deadlocks, livenessChecked: livenessCandidates.length, livenessEligible, livenessFailure, memoryCapped,
    };
  };
  const traceTo = (key: number, last: TraceStep | null): TraceStep[] => {
    const actions: Action[] = [];
    for (let cursor = key; cursor >= 0; cursor = visited.parentOf(cursor)) {
      const action = visited.actionOf(cursor);
      if (action === null) break;
      actions.unshift(action);
    }
    const steps: TraceStep[] = [];
    let world = initial;
    for (const action of actions) {
      steps.push({ action, description: describeAction(world, action) });
      world = applyAction(world, action);
    }
    return last ? [...steps, last] : steps;
  };

  let statesCapped = false;
  let memoryCapped = false;
  while (frontier.length > 0) {
    if (depth >= options.depthMax) { complete = false; break; }
    const next: Array<[number, World]> = [];
    for (const [key, world] of frontier) {
      if (options.secondsMax !== undefined && (performance.now() - started) / 1000 > options.secondsMax) { timedOut = true; break; }
      const actions = enabledActions(world);
      if (actions.length === 0 && !isSettled(world)) {
        deadlocks += 1;
        return finish({ property: 'no deadlock', detail: 'no action is enabled but work is unfinished', trace: traceTo(key, null) });
      }
      for (const action of actions) {
        let successor: World;
        try {
          successor = applyAction(world, action);
        } catch (error) {
          // An assertion in a node or in the simulator (an effect it cannot carry out) is a finding like any other:
          // reported with the trace that reaches it, not as a crash of the search.
          return finish({ property: 'every step runs without a failed assertion', detail: (error as Error).message, trace: traceTo(key, { action, description: describeAction(world, action) }) });
        }
        transitions += 1;
        // The words are read at once: the buffer is the fingerprint's, reused by its next call.
        const digest = fingerprintWords(successor, symmetric, history);
        const hashA = digest[0] as number;
        const hashB = digest[1] as number;
        const hashC = digest[2] as number;
        if (successor.sightings !== world.sightings) {
          merge(successor);
          if (action.type === 'crash') noteCrash(world, successor);
        }
        // A state already visited passed checkState then (its fingerprint keeps everything the state properties read,
        // and they are blind to server names), so only the transition is checked again.
        const found = visited.findWords(hashA, hashB, hashC);
        const seen = found >= 0;
        if (seen && audit !== undefined) audit.noteRevisit(found, successor);
        const violation = (seen ? null : checkState(successor)) ?? checkTransition(world, successor);
        if (violation) return finish({ ...violation, trace: traceTo(key, { action, description: describeAction(world, action) }) });
        if (seen) continue;
        // The state cap ends the search here: expanding the rest of the frontier would only fingerprint successors it may not keep.
        if (visited.size >= options.statesMax) { statesCapped = true; break; }
        if (options.heapFractionMax !== undefined && visited.size % heapCheckEveryStates === 0 && heapFractionUsed() > options.heapFractionMax) { memoryCapped = true; break; }
        const successorKey = visited.addWords(hashA, hashB, hashC, key, action);
        audit?.noteNew(successorKey, successor);
        options.onNewState?.(successor);
        next.push([successorKey, successor]);
        if (options.livenessSamples > 0 && visited.size % options.livenessEvery === 0) {
          livenessEligible += 1;
          if (livenessCandidates.length < options.livenessSamples) livenessCandidates.push([successorKey, successor]);
          else {
            // Algorithm R: the k-th eligible state replaces a sample with probability samples / k.
            const slot = Math.floor(reservoirRandom() * livenessEligible);
            if (slot < options.livenessSamples) livenessCandidates[slot] = [successorKey, successor];
          }
        }
      }
      if (statesCapped || memoryCapped) break;
    }
    if (timedOut || statesCapped || memoryCapped) { complete = false; break; }
    frontier = next;
    if (next.length > 0) depth += 1;
    options.onProgress?.(visited.size, depth);
  }
  void sometimesGoals;
  return finish(null);
}

/** A small deterministic generator (mulberry32) for the liveness reservoir. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = Math.imul(state ^ (state >>> 15), state | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Nothing left to do: every client operation answered and no move under way. */
export function isSettled(world: World): boolean {
  return world.clients.every((client) => client.status !== 'pending') &&
    world.servers.every((server) => Object.keys(server.meta.moves).length === 0 && Object.keys(server.node.moves).length === 0);
}
