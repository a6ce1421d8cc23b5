/**
 * Collects the run's history as it happens: each operation gets an id, an
 * invoke event when it is sent and one completion event. Timestamps are
 * monotonic nanoseconds since the recorder was made. The history is bounded
 * (`eventsMax`); once full the workload is told to stop rather than the
 * history silently losing events.
 */
import type { Completion, HistoryEvent, InvokeEvent } from '../history/history-event.js';

export class HistoryRecorder {
  readonly events: HistoryEvent[] = [];
  readonly #startNs = process.hrtime.bigint();
  #nextId = 1;

  constructor(readonly eventsMax = 4_000_000) {}

  get full(): boolean {
    return this.events.length >= this.eventsMax;
  }

  nowNs(): number {
    return Number(process.hrtime.bigint() - this.#startNs);
  }

  invoke(fields: Omit<InvokeEvent, 'type' | 'id' | 'timeNs' | 'fua' | 'final' | 'value'> & Partial<Pick<InvokeEvent, 'fua' | 'final' | 'value' | 'server'>>): number {
    const id = this.#nextId++;
    this.events.push({ type: 'invoke', id, fua: false, final: false, value: 0, ...fields, timeNs: this.nowNs() });
    return id;
  }

  complete(id: number, process: number, type: Completion, value = 0, note?: string): void {
    this.events.push({ type, id, process, value, timeNs: this.nowNs(), ...(note === undefined ? {} : { note }) });
  }
}
