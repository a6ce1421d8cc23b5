/**
 * The history of a run: what each client process asked for and what it was
 * told, in the order it happened.
 *
 * An operation appears as an `invoke` event and, later, one completion: `ok`
 * (it happened; a read carries the value it returned), `fail` (the server
 * answered with an error: a write may have happened before that answer, never
 * after it; a crash the nemesis could not make did not happen) or `info`
 * (unknown: a time-out or a lost connection, so it may have happened at any
 * moment after its invocation, or never). Values are
 * write ids: every write stores a value no other write stores, and 0 is the
 * initial content of every block (all zeroes on the device). A read that
 * returned bytes no write stored (torn, corrupt, or from another block)
 * carries `garbageValue`.
 *
 * Besides reads and writes, the history holds FLUSH (which makes the
 * connection's earlier acknowledged writes durable) and `crash`: a power-loss
 * kill of a server, recorded by the nemesis from the moment it sent SIGKILL to
 * the moment it saw the process exit. Timestamps are monotonic nanoseconds
 * from the start of the run.
 */

export type OperationFunction = 'read' | 'write' | 'flush' | 'crash';
export type Completion = 'ok' | 'fail' | 'info';

export const initialValue = 0;
/** The value of a read whose bytes decode to no write of its block. */
export const garbageValue = -1;
/** Blocks are natural numbers; operations on no block (flush, crash) name this one. */
export const noBlock = -1;

export interface InvokeEvent {
  readonly type: 'invoke';
  readonly id: number;
  readonly process: number;
  /** The NBD connection the operation went over; FLUSH makes only its own connection's writes durable. */
  readonly connection: number;
  readonly f: OperationFunction;
  readonly block: number;
  /** The write id for a write; 0 for anything else. */
  readonly value: number;
  /** A write sent with NBD_CMD_FLAG_FUA: durable once acknowledged. */
  readonly fua: boolean;
  /** A read of the final phase, after every fault was healed. */
  readonly final: boolean;
  /** The server the operation was sent to, when there is one (for reading a violation). */
  readonly server?: string;
  readonly timeNs: number;
}

export interface CompleteEvent {
  readonly type: Completion;
  readonly id: number;
  readonly process: number;
  /** The value a read returned; 0 for anything else. */
  readonly value: number;
  readonly timeNs: number;
  readonly note?: string;
}

export type HistoryEvent = InvokeEvent | CompleteEvent;

/** One operation with its invocation and completion paired up. */
export interface Operation extends Pick<InvokeEvent, 'id' | 'process' | 'connection' | 'f' | 'block' | 'fua' | 'final' | 'server'> {
  /** The write id written, or the value read. */
  readonly value: number;
  readonly outcome: Completion;
  readonly invokeNs: number;
  /** Infinity for an `info` operation: it may take effect at any later moment. */
  readonly completeNs: number;
  readonly note?: string;
}

/**
 * Pairs invocations with completions. An invocation that never completed (the
 * run ended first) is `info`, as is any operation whose completion is `info`.
 */
export function operationsOf(events: readonly HistoryEvent[]): Operation[] {
  const invocations = new Map<number, InvokeEvent>();
  const operations: Operation[] = [];
  for (const event of events) {
    if (event.type === 'invoke') {
      if (invocations.has(event.id)) throw new Error(`operation ${event.id} invoked twice`);
      invocations.set(event.id, event);
      continue;
    }
    const invoke = invocations.get(event.id);
    if (!invoke) throw new Error(`operation ${event.id} completed without an invocation`);
    invocations.delete(event.id);
    operations.push({
      id: invoke.id, process: invoke.process, connection: invoke.connection, f: invoke.f, block: invoke.block,
      value: invoke.f === 'read' ? event.value : invoke.value, fua: invoke.fua, final: invoke.final, outcome: event.type,
      invokeNs: invoke.timeNs, completeNs: event.type === 'info' ? Infinity : event.timeNs, ...(invoke.server === undefined ? {} : { server: invoke.server }), ...(event.note === undefined ? {} : { note: event.note }),
    });
  }
  for (const invoke of invocations.values()) {
    operations.push({
      id: invoke.id, process: invoke.process, connection: invoke.connection, f: invoke.f, block: invoke.block, value: invoke.f === 'read' ? 0 : invoke.value,
      fua: invoke.fua, final: invoke.final, outcome: 'info', invokeNs: invoke.timeNs, completeNs: Infinity, note: 'never completed',
    });
  }
  return operations.sort((left, right) => left.invokeNs - right.invokeNs || left.id - right.id);
}
