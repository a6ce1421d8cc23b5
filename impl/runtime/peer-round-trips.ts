/**
 * How long this server's requests to its peers take, and how long it takes
 * to answer theirs: a histogram per (peer, kind) that only grows, read
 * through `GET /latency` beside the client paths (request-path-latency.ts).
 *
 * Theory of operation. Three peer messages ask for an answer keyed by the
 * asker's request id: a forwarded request (`request.forward` →
 * `request.answer`), a move's dual write (`block.write` → `block.written`) and
 * a move's read part (`block.read` → `block.readDone`). On the asking side a
 * *round trip* runs from the send of the latest try to the answer; on the
 * answering side the *service* runs from the request's arrival to the send
 * of its answer. A round trip minus the peer's service is what the two event
 * loops and the network added: on a host with fewer cores than busy
 * processes, the time each side waited for a core (bench:nbd prints both
 * during moves). Kinds: `forward`, `write`, `read`.
 *
 * Bounds: at most `exchangesFollowedMax` exchanges followed at once on each
 * side (an answer that never comes, its peer gone, is forgotten oldest first
 * once the bound is reached), and a fixed set of buckets per (peer, kind).
 */
import type { ServerId } from '../../machines/identifiers.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import { countLatency, emptyLatencyCounts } from './request-path-latency.js';

export type PeerExchangeKind = 'forward' | 'write' | 'read';

/** Exchanges followed at once on each side; past it the oldest is forgotten. */
export const exchangesFollowedMax = 16_384;

export interface PeerExchangeSeries {
  readonly peer: ServerId;
  readonly kind: PeerExchangeKind;
  /** Exchanges per bucket of `latencyBucketUpperUs`; the last bucket also holds everything slower. */
  readonly counts: readonly number[];
}

export interface PeerExchangeReport {
  /** This server's requests to each peer, from the send of the latest try to the answer. */
  readonly roundTrips: readonly PeerExchangeSeries[];
  /** Each peer's requests to this server, from their arrival to the send of the answer. */
  readonly served: readonly PeerExchangeSeries[];
}

const askKinds: Readonly<Record<string, PeerExchangeKind>> = { 'request.forward': 'forward', 'block.write': 'write', 'block.read': 'read' };
const answerKinds: Readonly<Record<string, PeerExchangeKind>> = { 'request.answer': 'forward', 'block.written': 'write', 'block.readDone': 'read' };

interface Exchange { readonly startedMs: number }

/** One side's exchanges in flight and its histograms. */
class ExchangeSide {
  readonly #inFlight = new Map<string, Exchange>();
  readonly #counts = new Map<string, { peer: ServerId; kind: PeerExchangeKind; counts: number[] }>();

  begin(peer: ServerId, requestId: string, kind: PeerExchangeKind, nowMs: number): void {
    const key = `${peer}|${kind}|${requestId}`;
    // A later try of the same request restarts its clock (Map order: it becomes the newest).
    this.#inFlight.delete(key);
    if (this.#inFlight.size >= exchangesFollowedMax) this.#inFlight.delete(this.#inFlight.keys().next().value!);
    this.#inFlight.set(key, { startedMs: nowMs });
  }

  end(peer: ServerId, requestId: string, kind: PeerExchangeKind, nowMs: number): void {
    const key = `${peer}|${kind}|${requestId}`;
    const exchange = this.#inFlight.get(key);
    if (!exchange) return;
    this.#inFlight.delete(key);
    const seriesKey = `${peer}|${kind}`;
    let series = this.#counts.get(seriesKey);
    if (!series) this.#counts.set(seriesKey, series = { peer, kind, counts: emptyLatencyCounts() });
    countLatency(series.counts, (nowMs - exchange.startedMs) * 1000);
  }

  get inFlightCount(): number {
    return this.#inFlight.size;
  }

  report(): PeerExchangeSeries[] {
    return [...this.#counts.values()].map(({ peer, kind, counts }) => ({ peer, kind, counts: [...counts] }))
      .sort((a, b) => a.peer.localeCompare(b.peer) || a.kind.localeCompare(b.kind));
  }
}

export class PeerRoundTrips {
  readonly #asked = new ExchangeSide();
  readonly #answering = new ExchangeSide();

  /** This server sent `message` to `to`: an ask begins one of its round trips, an answer ends its service of one. */
  sent(to: ServerId, message: PeerMessage, nowMs: number): void {
    this.#note(to, message, nowMs, this.#asked, this.#answering);
  }

  /** This server received `message` from `from`: an ask begins its service of one, an answer ends one of its round trips. */
  received(from: ServerId, message: PeerMessage, nowMs: number): void {
    this.#note(from, message, nowMs, this.#answering, this.#asked);
  }

  /** An ask in `message` begins an exchange on `asks`; an answer ends one on `answers`. */
  #note(peer: ServerId, message: PeerMessage, nowMs: number, asks: ExchangeSide, answers: ExchangeSide): void {
    if (!('requestId' in message)) return;
    const ask = askKinds[message.type];
    if (ask !== undefined) return asks.begin(peer, message.requestId, ask, nowMs);
    const answer = answerKinds[message.type];
    if (answer !== undefined) answers.end(peer, message.requestId, answer, nowMs);
  }

  /** Exchanges followed now on each side (for tests of the bound). */
  get inFlight(): { asked: number; answering: number } {
    return { asked: this.#asked.inFlightCount, answering: this.#answering.inFlightCount };
  }

  report(): PeerExchangeReport {
    return { roundTrips: this.#asked.report(), served: this.#answering.report() };
  }
}
