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
 * clients never flush and never write with FUA in that mode, so no write
 * ever becomes durable and the set only grows; that over-approximates and
 * so stays sound.)
 */
export interface InFlightOperation {
  readonly kind: 'read' | 'write';
  readonly value: number;
  /** Reads only: the values this read may return. */
  readonly allowed: readonly number[];
  /** Writes that completed while this operation was pending. */
  readonly completedDuring: readonly number[];
  /**
   * Power cuts with unflushed writes: the values cuts while this operation was pending could roll the block back to.
   * It may have taken effect before such a cut (a write then lost in it, a read of what the cut then undid), so once
   * it completes the block may hold any of them.
   */
  readonly cutDuring?: readonly number[];
}

export interface RegisterState {
  readonly possible: readonly number[];
  readonly pending: readonly number[];
  readonly inFlight: Readonly<Record<string, InFlightOperation>>;
  /** Power cuts with unflushed writes only: the values a cut may roll the block back to. */
  readonly rollback?: readonly number[];
}

export const initialRegister: RegisterState = { possible: [0], pending: [], inFlight: {} };
/** The register of a block whose acknowledged writes a power cut may lose (the initial zeroes are durable). */
export const initialUnflushedRegister: RegisterState = { ...initialRegister, rollback: [0] };

const union = (a: readonly number[], b: readonly number[]) => [...new Set([...a, ...b])].sort((x, y) => x - y);

export function invoke(register: RegisterState, opId: string, kind: 'read' | 'write', value: number): RegisterState {
  const inFlight: Record<string, InFlightOperation> = {};
  for (const [id, op] of Object.entries(register.inFlight)) {
    inFlight[id] = kind === 'write' && op.kind === 'read' ? { ...op, allowed: union(op.allowed, [value]) } : op;
  }
  if (kind === 'write') {
    inFlight[opId] = { kind, value, allowed: [], completedDuring: [] };
    return { ...register, pending: union(register.pending, [value]), inFlight };
  }
  inFlight[opId] = { kind, value: -1, allowed: union(register.possible, register.pending), completedDuring: [] };
  return { ...register, inFlight };
}

/** Completes an operation: the new state, or the reason the history is not linearizable. */
export function complete(register: RegisterState, opId: string, readValue: number | null): RegisterState | string {
  const op = register.inFlight[opId];
  if (!op) throw new Error(`no operation ${opId} in flight`);
  let settled = op.value;
  if (op.kind === 'read') {
    if (readValue === null) throw new Error('a completed read has a value');
    if (!op.allowed.includes(readValue)) return `read returned ${readValue}, but only ${JSON.stringify(op.allowed)} were possible`;
    settled = readValue;
  }
  const pending = op.kind === 'write' ? register.pending.filter((value) => value !== op.value) : register.pending;
  const inFlight: Record<string, InFlightOperation> = {};
  for (const [id, other] of Object.entries(register.inFlight)) {
    if (id === opId) continue;
    inFlight[id] = op.kind === 'write' ? { ...other, completedDuring: union(other.completedDuring, [op.value]) } : other;
  }
  const possible = union(union([settled], op.cutDuring ?? []), union(pending, op.completedDuring));
  // An acknowledged write that is not durable is one more value a later power cut may roll the block back to.
  if (register.rollback === undefined) return { possible, pending, inFlight };
  return { possible, pending, inFlight, rollback: op.kind === 'write' ? union(register.rollback, [op.value]) : register.rollback };
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
