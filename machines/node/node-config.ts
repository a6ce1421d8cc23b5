import type { ServerId } from '../identifiers.js';
import type { NodeMachines } from './node-machines.js';
import { standardMachines } from './node-machines.js';

/** Tunables of one server node; every bound the node keeps is named here. */
export interface NodeConfig {
  readonly self: ServerId;
  /** Every server of the group at start (the membership record takes over once adopted). */
  readonly group: readonly ServerId[];
  /** Optional embodiment: a given-up copy keeps a pointer and forwards late requests. */
  readonly forwardingPointer: boolean;
  readonly routingRetriesMax: number;
  readonly hopCountMax: number;
  readonly forwardTimeoutMs: number;
  readonly moveProgressTimeoutMs: number;
  readonly moveRestartDelayMs: number;
  readonly peerRetryDelayMs: number;
  readonly peerRetriesMax: number;
  readonly requestsInFlightMax: number;
  readonly movesInFlightMax: number;
  /**
   * A piece copy is read, sent, written and acknowledged in chunks of at most
   * this many bytes, all issued at once, so that the source's reads, the
   * transfer and the destination's writes and syncs of one piece overlap
   * instead of running one after another. The piece still counts as copied
   * only once every chunk is durable at the destination.
   */
  readonly copyChunkBytesMax: number;
  /** How many executed forwarded writes a server remembers to refuse their duplicates (at-most-once). */
  readonly forwardedWritesRememberedMax: number;
  /** How many tries of forwarded writes and parts that ended without running a server remembers, to refuse them if they come late. */
  readonly forwardedTriesEndedRememberedMax: number;
  /** Client connections a server tracks for FLUSH's loss reports; a request on a connection beyond them is refused (EAGAIN). */
  readonly clientConnectionsMax: number;
  /** Departed servers whose loss epochs a server remembers; a FLUSH covering writes one held that is forgotten fails (see loss-watch.ts). */
  readonly departedServersRememberedMax: number;
  /** Emit a `trace` effect for every machine transition. */
  readonly traceTransitions: boolean;
  readonly machines: NodeMachines;
}

export function defaultNodeConfig(self: ServerId, group: readonly ServerId[]): NodeConfig {
  return {
    self,
    group,
    forwardingPointer: false,
    routingRetriesMax: 4,
    hopCountMax: 4,
    forwardTimeoutMs: 5_000,
    moveProgressTimeoutMs: 10_000,
    moveRestartDelayMs: 200,
    peerRetryDelayMs: 500,
    peerRetriesMax: 20,
    requestsInFlightMax: 4096,
    movesInFlightMax: 4,
    copyChunkBytesMax: 1024 * 1024,
    forwardedWritesRememberedMax: 4096,
    forwardedTriesEndedRememberedMax: 4096,
    clientConnectionsMax: 4096,
    departedServersRememberedMax: 64,
    traceTransitions: false,
    machines: standardMachines,
  };
}
