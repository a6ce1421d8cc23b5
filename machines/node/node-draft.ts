import type { NodeState } from './node-state.js';

/**
 * The working copy of a node state during one step, copied on write per map.
 *
 * Theory of operation. A step used to copy every top-level map of the state
 * before it started, though a request touches three or four of them. The
 * draft starts out sharing every map with the state it was made from. The
 * first time the step asks for a map to change (`draft.requests`, the
 * writable accessor), the draft copies that one map and hands out the copy
 * from then on; reads that do not intend to write use `draft.read('requests')`,
 * which returns the copy if there is one and the original otherwise, and so
 * never copies. `finish()` assembles the next state from copies and untouched
 * originals. The state the step started from is never written: the simulator
 * keeps every state it has seen and branches from old ones.
 *
 * Rule for callers: a map obtained by `read` must not be written, and must be
 * re-read after the step may have written that field (the copy replaces it).
 */
type Mutable<T> = {
  -readonly [K in keyof T]: T[K] extends ReadonlyMap<infer K2, infer V> ? Map<K2, V> : T[K] extends Readonly<Record<string, infer V>> ? Record<string, V> : T[K]
};

type MapField = 'volumes' | 'volumeReservations' | 'moves' | 'requests' | 'serves' | 'continuations' | 'flushes' |
  'localWritesInFlight' | 'blockVersions' | 'parked' | 'handoversDeferred' | 'attemptsJoined' | 'lossWatches' | 'departedLossEpochs';
type Draft = Mutable<NodeState>;

export class NodeDraft {
  readonly #base: NodeState;
  readonly #copies: Partial<Pick<Draft, MapField>> = {};
  // Scalar and whole-value fields are replaced, never edited in place, so they need no copy. The per-page records
  // are persistent maps (page-map.ts): an edit makes a new map sharing all but a chunk, which replaces the field.
  started: boolean;
  routes: NodeState['routes'];
  replicas: NodeState['replicas'];
  forwardedWritesDone: NodeState['forwardedWritesDone'];
  forwardedTriesEnded: NodeState['forwardedTriesEnded'];
  membership: NodeState['membership'];
  leaveCheck: NodeState['leaveCheck'];
  forgetCheck: NodeState['forgetCheck'];
  lostClaim: NodeState['lostClaim'];
  lostCheck: NodeState['lostCheck'];
  nonMemberRoutesMayRemain: NodeState['nonMemberRoutesMayRemain'];
  nextId: number;
  lastWriteSequence: number;
  lossEpoch: number;
  earlierRunsSynced: boolean;
  flushExcused: NodeState['flushExcused'];
  incarnationFence: NodeState['incarnationFence'];
  readonly config: NodeState['config'];
  readonly incarnation: number;

  constructor(base: NodeState) {
    this.#base = base;
    this.started = base.started;
    this.routes = base.routes;
    this.replicas = base.replicas;
    this.forwardedWritesDone = base.forwardedWritesDone;
    this.forwardedTriesEnded = base.forwardedTriesEnded;
    this.membership = base.membership;
    this.leaveCheck = base.leaveCheck;
    this.forgetCheck = base.forgetCheck;
    this.lostClaim = base.lostClaim;
    this.lostCheck = base.lostCheck;
    this.nonMemberRoutesMayRemain = base.nonMemberRoutesMayRemain;
    this.nextId = base.nextId;
    this.lastWriteSequence = base.lastWriteSequence;
    this.lossEpoch = base.lossEpoch;
    this.earlierRunsSynced = base.earlierRunsSynced;
    this.flushExcused = base.flushExcused;
    this.incarnationFence = base.incarnationFence;
    this.config = base.config;
    this.incarnation = base.incarnation;
  }

  /** The current map of a field, for reading only: no copy is made. */
  read<K extends MapField>(field: K): NodeState[K] {
    return (this.#copies[field] ?? this.#base[field]) as NodeState[K];
  }

  #edit<K extends MapField>(field: K): Draft[K] {
    let copy = this.#copies[field];
    if (copy === undefined) {
      const original = this.#base[field];
      copy = (original instanceof Map ? new Map(original) : { ...original }) as Draft[K];
      this.#copies[field] = copy;
    }
    return copy as Draft[K];
  }

  // Writable accessors: the first use in a step copies the map.
  get volumes(): Draft['volumes'] { return this.#edit('volumes'); }
  get volumeReservations(): Draft['volumeReservations'] { return this.#edit('volumeReservations'); }
  get moves(): Draft['moves'] { return this.#edit('moves'); }
  get requests(): Draft['requests'] { return this.#edit('requests'); }
  get serves(): Draft['serves'] { return this.#edit('serves'); }
  get continuations(): Draft['continuations'] { return this.#edit('continuations'); }
  get flushes(): Draft['flushes'] { return this.#edit('flushes'); }
  get localWritesInFlight(): Draft['localWritesInFlight'] { return this.#edit('localWritesInFlight'); }
  get blockVersions(): Draft['blockVersions'] { return this.#edit('blockVersions'); }
  get parked(): Draft['parked'] { return this.#edit('parked'); }
  get handoversDeferred(): Draft['handoversDeferred'] { return this.#edit('handoversDeferred'); }
  get attemptsJoined(): Draft['attemptsJoined'] { return this.#edit('attemptsJoined'); }
  get lossWatches(): Draft['lossWatches'] { return this.#edit('lossWatches'); }
  get departedLossEpochs(): Draft['departedLossEpochs'] { return this.#edit('departedLossEpochs'); }

  finish(): NodeState {
    return {
      config: this.config, started: this.started, volumes: this.read('volumes'), volumeReservations: this.read('volumeReservations'), routes: this.routes, replicas: this.replicas, moves: this.read('moves'),
      requests: this.read('requests'), serves: this.read('serves'), continuations: this.read('continuations'), flushes: this.read('flushes'),
      lastWriteSequence: this.lastWriteSequence, localWritesInFlight: this.read('localWritesInFlight'), blockVersions: this.read('blockVersions'),
      forwardedWritesDone: this.forwardedWritesDone, forwardedTriesEnded: this.forwardedTriesEnded, parked: this.read('parked'), handoversDeferred: this.read('handoversDeferred'), attemptsJoined: this.read('attemptsJoined'),
      membership: this.membership, leaveCheck: this.leaveCheck, forgetCheck: this.forgetCheck, lostClaim: this.lostClaim, lostCheck: this.lostCheck, nonMemberRoutesMayRemain: this.nonMemberRoutesMayRemain, nextId: this.nextId, incarnation: this.incarnation,
      lossEpoch: this.lossEpoch, lossWatches: this.read('lossWatches'), departedLossEpochs: this.read('departedLossEpochs'), earlierRunsSynced: this.earlierRunsSynced,
      flushExcused: this.flushExcused, incarnationFence: this.incarnationFence,
    };
  }
}
