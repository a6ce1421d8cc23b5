/**
 * An online check that one block behaves as a linearizable register, for the
 * model's client history. Values are write ids (0 = never written).
 *
 * `possible` is the set of values the register may hold now, as far as a
 * read invoked now can tell. A write joins `pending` when invoked and may take
 * effect at any moment until it completes, so a read may return it as soon as
 * it is invoked. When an operation completes having settled value v (the write
 * itself, or what the read returned), the register holds v or a write that may
 * still be ordered after it: one still pending, or one that completed while
 * the operation was pending. A write whose outcome is unknown (its server
 * crashed) stays pending for ever.
 *
 * This is sound — it never rejects a linearizable history — and catches stale
 * reads, lost acknowledged writes and new-old inversions between reads. The
 * checker in impl/history does the full Wing–Gong search for real histories.
 *
 * Power cuts with writes that are never made durable (`rollback`, present
 * only in that mode): a cut may roll the block back to any value it has held
 * since its last durable value, so at a cut those values become possible
 * again, for the register and for every read in flight. Between cuts the
 * register is as strict as ever: once a read after a cut has seen an older
 * value, a newer one that the cut lost may not come back. (The model's
 * clients never write with FUA in that mode, so without FLUSHes no write
 * ever becomes durable and the set only grows; that over-approximates and
 * so stays sound. A FLUSH answered ok shrinks it, below.)
 *
 * Clients that FLUSH (`ackedVia`, present only in that mode): the model's
 * client has one connection per server, and a FLUSH through a server covers
 * the writes acknowledged through it (NBD). A FLUSH that answers `ok` makes
 * each covered write w durable, so the block can never again hold a value
 * that w overwrote: any write that completed before w was invoked (and the
 * initial 0). Those leave both `possible` and `rollback`. A FLUSH that
 * reported a loss concludes nothing, and its covered writes are no longer
 * pending a FLUSH on that connection (a server reports a loss once per
 * connection, as Linux reports writeback errors); one that failed otherwise
 * (a time-out) leaves them pending, so the next FLUSH must vouch for them;
 * and a server's crash closes its connection, whose writes no later FLUSH
 * covers.
 */
export interface InFlightOperation {
  readonly kind: 'read' | 'write' | 'flush';
  readonly value: number;
  /** Reads: the values this read may return. FLUSHes: the writes it covers. */
  readonly allowed: readonly number[];
  /** Writes that completed while this operation was pending. */
  readonly completedDuring: readonly number[];
  /**
   * Power cuts with unflushed writes: the values cuts while this operation was pending could roll the block back to.
   * It may have taken effect before such a cut (a write then lost in it, a read of what the cut then undid), so once
   * it completes the block may hold any of them.
   */
  readonly cutDuring?: readonly number[];
  /**
   * A write a completed read has returned: it has taken effect, so it is no longer pending (it may not take effect
   * again after a later write), though its acknowledgement is still to come.
   */
  readonly effected?: boolean;
}

export interface RegisterState {
  readonly possible: readonly number[];
  readonly pending: readonly number[];
  readonly inFlight: Readonly<Record<string, InFlightOperation>>;
  /** Power cuts with unflushed writes only: the values a cut may roll the block back to. */
  readonly rollback?: readonly number[];
  /** Clients that FLUSH only: per write, the writes (and 0) that had completed when it was invoked. */
  readonly precededBy?: Readonly<Record<string, readonly number[]>>;
  /** Clients that FLUSH only: the writes completed so far. */
  readonly completed?: readonly number[];
  /** Clients that FLUSH only: per server, the writes acknowledged through it that no FLUSH through it has answered for. */
  readonly ackedVia?: Readonly<Record<string, readonly number[]>>;
}

export const initialRegister: RegisterState = { possible: [0], pending: [], inFlight: {} };
/** The register of a block whose acknowledged writes a power cut may lose (the initial zeroes are durable). */
export const initialUnflushedRegister: RegisterState = { ...initialRegister, rollback: [0] };
/** The same, for clients that also FLUSH. */
export const initialFlushingRegister: RegisterState = { ...initialUnflushedRegister, precededBy: {}, completed: [], ackedVia: {} };

const union = (a: readonly number[], b: readonly number[]) => [...new Set([...a, ...b])].sort((x, y) => x - y);

export function invoke(register: RegisterState, opId: string, kind: 'read' | 'write', value: number): RegisterState {
  const inFlight: Record<string, InFlightOperation> = {};
  for (const [id, op] of Object.entries(register.inFlight)) {
    inFlight[id] = kind === 'write' && op.kind === 'read' ? { ...op, allowed: union(op.allowed, [value]) } : op;
  }
  if (kind === 'write') {
    inFlight[opId] = { kind, value, allowed: [], completedDuring: [] };
    const precededBy = register.precededBy === undefined ? undefined : { ...register.precededBy, [value]: union([0], register.completed ?? []) };
    return { ...register, pending: union(register.pending, [value]), inFlight, ...(precededBy ? { precededBy } : {}) };
  }
  inFlight[opId] = { kind, value: -1, allowed: union(register.possible, register.pending), completedDuring: [] };
  return { ...register, inFlight };
}

/**
 * Completes an operation (`via`: the server it went through): the new state, or the reason the history is not
 * linearizable. `effectOnly`: a write a read has returned, settled as to the register's values, not acknowledged.
 */
export function complete(register: RegisterState, opId: string, readValue: number | null, via: string, effectOnly = false): RegisterState | string {
  const op = register.inFlight[opId];
  if (!op) throw new Error(`no operation ${opId} in flight`);
  if (op.kind === 'flush') throw new Error(`${opId} is a FLUSH: completeFlush`);
  let settled = op.value;
  if (op.kind === 'read') {
    if (readValue === null) throw new Error('a completed read has a value');
    if (!op.allowed.includes(readValue)) return `read returned ${readValue}, but only ${JSON.stringify(op.allowed)} were possible`;
    settled = readValue;
    // A pending write this read returned has taken effect by now: it completes (as to the register's values) here, so
    // a history "r1 sees w1, w2 acknowledged, r2 sees w1" is refused. (Before, w1 stayed pending and could come back.)
    const writer = Object.entries(register.inFlight).find(([, other]) => other.kind === 'write' && other.value === readValue && !other.effected);
    if (writer && register.pending.includes(readValue)) {
      const [writerId, writerOp] = writer;
      const after = complete(register, writerId, null, via, true);
      if (typeof after === 'string') return after;
      return complete({ ...after, inFlight: { ...after.inFlight, [writerId]: { ...writerOp, effected: true } } }, opId, readValue, via);
    }
  }
  if (op.kind === 'write' && op.effected) {
    // Its acknowledgement: the values are settled already (above); what an acknowledgement adds to cuts and FLUSHes is not.
    const inFlightRest = { ...register.inFlight };
    delete inFlightRest[opId];
    if (register.rollback === undefined) return { ...register, inFlight: inFlightRest };
    const next: RegisterState = { ...register, inFlight: inFlightRest, rollback: union(register.rollback, [op.value]) };
    if (register.ackedVia === undefined) return next;
    return { ...next, completed: union(register.completed ?? [], [op.value]), ackedVia: { ...register.ackedVia, [via]: union(register.ackedVia[via] ?? [], [op.value]) } };
  }
  const pending = op.kind === 'write' ? register.pending.filter((value) => value !== op.value) : register.pending;
  const inFlight: Record<string, InFlightOperation> = {};
  for (const [id, other] of Object.entries(register.inFlight)) {
    if (id === opId) continue;
    inFlight[id] = op.kind === 'write' ? { ...other, completedDuring: union(other.completedDuring, [op.value]) } : other;
  }
  const possible = union(union([settled], op.cutDuring ?? []), union(pending, op.completedDuring));
  // Taken effect, not acknowledged (`effectOnly`): the block has held its value, so a later cut may roll back to it.
  if (effectOnly) return { ...register, possible, pending, inFlight, ...(register.rollback === undefined ? {} : { rollback: union(register.rollback, [op.value]) }) };
  // An acknowledged write that is not durable is one more value a later power cut may roll the block back to.
  if (register.rollback === undefined) return { possible, pending, inFlight };
  const next: RegisterState = { ...register, possible, pending, inFlight, rollback: op.kind === 'write' ? union(register.rollback, [op.value]) : register.rollback };
  if (register.ackedVia === undefined || op.kind !== 'write') return next;
  return { ...next, completed: union(register.completed ?? [], [op.value]), ackedVia: { ...register.ackedVia, [via]: union(register.ackedVia[via] ?? [], [op.value]) } };
}

/** A FLUSH through server `via` is invoked: it covers the writes acknowledged through `via` so far. */
export function invokeFlush(register: RegisterState, opId: string, via: string): RegisterState {
  if (register.ackedVia === undefined) throw new Error('FLUSHes are modelled only with unflushed writes');
  return { ...register, inFlight: { ...register.inFlight, [opId]: { kind: 'flush', value: -1, allowed: register.ackedVia[via] ?? [], completedDuring: [] } } };
}

/**
 * A FLUSH through `via` is answered: `ok`, a reported loss (its covered writes
 * are settled either way), or another error, such as a time-out, after which
 * they still wait for a FLUSH to vouch for them.
 */
export function completeFlush(register: RegisterState, opId: string, via: string, outcome: 'ok' | 'lossReported' | 'error'): RegisterState {
  const op = register.inFlight[opId];
  if (op?.kind !== 'flush' || register.ackedVia === undefined) throw new Error(`no FLUSH ${opId} in flight`);
  const inFlight = { ...register.inFlight };
  delete inFlight[opId];
  if (outcome === 'error') return { ...register, inFlight };
  const ok = outcome === 'ok';
  const stillUnflushed = (register.ackedVia[via] ?? []).filter((value) => !op.allowed.includes(value));
  const ackedVia = { ...register.ackedVia, [via]: stillUnflushed };
  if (stillUnflushed.length === 0) delete ackedVia[via];
  if (!ok) return { ...register, inFlight, ackedVia };
  // Each covered write is durable: the values it overwrote can neither be read again nor come back in a cut.
  const overwritten = new Set(op.allowed.flatMap((value) => register.precededBy?.[value] ?? [0]));
  const possible = register.possible.filter((value) => !overwritten.has(value));
  const rollback = (register.rollback ?? []).filter((value) => !overwritten.has(value));
  return { ...register, possible, rollback, inFlight, ackedVia };
}

/** Server `via` crashed: its connection is gone, and no later FLUSH covers the writes acknowledged on it. */
export function connectionLost(register: RegisterState, via: string): RegisterState {
  if (register.ackedVia?.[via] === undefined) return register;
  const ackedVia = { ...register.ackedVia };
  delete ackedVia[via];
  return { ...register, ackedVia };
}

/** A power cut of any server: the block may now hold any value it held since its last durable one. */
export function powerCut(register: RegisterState): RegisterState {
  const rollback = register.rollback;
  if (rollback === undefined) return register;
  const inFlight: Record<string, InFlightOperation> = {};
  for (const [id, op] of Object.entries(register.inFlight)) {
    const cutDuring = union(op.cutDuring ?? [], rollback);
    inFlight[id] = op.kind === 'read' ? { ...op, allowed: union(op.allowed, rollback), cutDuring } : { ...op, cutDuring };
  }
  return { ...register, possible: union(register.possible, rollback), inFlight };
}

/** An operation whose server crashed: a write may or may not take effect, at any later time. */
export function abandon(register: RegisterState, opId: string): RegisterState {
  const inFlight = { ...register.inFlight };
  delete inFlight[opId];
  return { ...register, inFlight };
}

/**
 * An operation answered with an error while its server is up. A read settles
 * nothing. A write may have taken effect at some moment while it was pending,
 * never after its answer: a client told a write failed may write the block
 * again, and the failed write must not land over that later (a forward that
 * timed out used to: it sat in the owner's socket and ran seconds after the
 * EIO). So it leaves `pending`, and its value becomes possible now (it may
 * have taken effect after the last write that completed) and for every
 * operation still in flight (it may have taken effect after them), and is one
 * more value a cut may roll the block back to.
 */
export function fail(register: RegisterState, opId: string): RegisterState {
  const op = register.inFlight[opId];
  if (!op) throw new Error(`no operation ${opId} in flight`);
  if (op.kind === 'flush') throw new Error(`${opId} is a FLUSH: completeFlush`);
  if (op.kind === 'read' || op.effected) return abandon(register, opId);
  const inFlight: Record<string, InFlightOperation> = {};
  for (const [id, other] of Object.entries(register.inFlight)) {
    if (id !== opId) inFlight[id] = { ...other, completedDuring: union(other.completedDuring, [op.value]) };
  }
  const failed: RegisterState = { ...register, possible: union(register.possible, [op.value]), pending: register.pending.filter((value) => value !== op.value), inFlight };
  return register.rollback === undefined ? failed : { ...failed, rollback: union(register.rollback, [op.value]) };
}
