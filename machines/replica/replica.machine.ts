import { assign, setup } from 'xstate';
import { effectActions } from '../effects.js';
import type { PageKey, ServerId } from '../identifiers.js';
import type { ReplicaRecord } from './replica-record.js';

/**
 * One server's copy of one page.
 *
 * Theory of operation. A copy is `absent` until a volume is created on this
 * server (`replica.create`, straight to `valid`) or a move makes this server
 * its destination (`replica.receive`, to `receiving`). A receiving copy takes
 * piece copies and dual writes of its move attempt only; a restart of the move
 * re-announces it with a newer attempt. `replica.commit` makes it `valid` at
 * the next epoch: the destination holds the page durably before the source
 * gives it up. When the source's routing table flips, its copy turns
 * `invalid` (`replica.invalidate`) and is never served again; it keeps the new
 * owner and epoch to answer late requests. A later move back to this server
 * re-enters `receiving`. A receiving copy whose move was abandoned
 * (`replica.abandon`, with the source's newer epoch) turns `invalid` the same
 * way, naming the source, and its data goes; the source of such a move
 * keeps its copy valid at an epoch past the move's (`replica.reclaim`). A page
 * whose only copy died with its server may be declared lost and served
 * empty by another (`replica.recreate`, from any record but a valid one, at
 * a newer epoch).
 *
 * Every change is persisted (`replica.persist`) before the runtime acts on
 * it, so a crash never forgets that a copy was given up.
 */
export interface ReplicaContext {
  readonly pageKey: PageKey;
  readonly record: ReplicaRecord | null;
}

export type ReplicaEvent =
  | { type: 'replica.create'; epoch: number }
  | { type: 'replica.receive'; source: ServerId; attempt: number; epoch: number }
  | { type: 'replica.commit'; attempt: number; epoch: number }
  | { type: 'replica.invalidate'; epoch: number; owner: ServerId; forwardTo: ServerId | null }
  /** The move this copy was receiving was abandoned: its source serves the page at `epoch`. */
  | { type: 'replica.abandon'; epoch: number; owner: ServerId }
  /** This source abandoned its copy's move: the copy stays valid, at the newer `epoch` (past the move's own). */
  | { type: 'replica.reclaim'; epoch: number }
  /** This server serves a page declared lost, empty, at `epoch` (machines/node/lost-pages.ts): its data is gone, whatever it held. */
  | { type: 'replica.recreate'; epoch: number };

export interface ReplicaInput {
  readonly pageKey: PageKey;
  readonly record: ReplicaRecord | null;
}

const persistRecord = {
  type: 'replica.persist',
  params: ({ context }: { context: ReplicaContext }) => {
    if (context.record === null) throw new Error('replica.persist without a record');
    return { pageKey: context.pageKey, record: context.record };
  },
} as const;

export const replicaMachine = setup({
  types: {} as { context: ReplicaContext; events: ReplicaEvent; input: ReplicaInput },
  actions: {
    ...effectActions(['replica.persist']),
    recordValid: assign(({ event }) => ({ record: { status: 'valid' as const, epoch: 'epoch' in event ? event.epoch : 0 } })),
    recordReceiving: assign(({ event }) =>
      event.type === 'replica.receive' ? { record: { status: 'receiving' as const, source: event.source, attempt: event.attempt, epoch: event.epoch } } : {}),
    recordInvalid: assign(({ event }) =>
      event.type === 'replica.invalidate' || event.type === 'replica.abandon'
        ? { record: { status: 'invalid' as const, epoch: event.epoch, owner: event.owner, forwardTo: event.type === 'replica.invalidate' ? event.forwardTo : null } }
        : {}),
  },
  guards: {
    isAbsent: ({ context }) => context.record === null,
    isReceiving: ({ context }) => context.record?.status === 'receiving',
    isValid: ({ context }) => context.record?.status === 'valid',
    isNewerAttempt: ({ context, event }) =>
      event.type === 'replica.receive' && context.record?.status === 'receiving' &&
      (event.epoch > context.record.epoch || (event.epoch === context.record.epoch && event.attempt > context.record.attempt)),
    isNewerEpoch: ({ context, event }) => 'epoch' in event && context.record !== null && event.epoch > context.record.epoch,
    commitsCurrentAttempt: ({ context, event }) =>
      event.type === 'replica.commit' && context.record?.status === 'receiving' &&
      event.attempt === context.record.attempt && event.epoch === context.record.epoch,
    invalidatesCurrentEpoch: ({ context, event }) =>
      event.type === 'replica.invalidate' && context.record?.status === 'valid' && event.epoch === context.record.epoch + 1,
  },
}).createMachine({
  id: 'replica',
  context: ({ input }) => ({ pageKey: input.pageKey, record: input.record }),
  initial: 'recovering',
  states: {
    recovering: {
      always: [
        { guard: 'isAbsent', target: 'absent' },
        { guard: 'isReceiving', target: 'receiving' },
        { guard: 'isValid', target: 'valid' },
        { target: 'invalid' },
      ],
    },
    absent: {
      on: {
        'replica.create': { target: 'valid', actions: ['recordValid', persistRecord] },
        'replica.receive': { target: 'receiving', actions: ['recordReceiving', persistRecord] },
        'replica.recreate': { target: 'valid', actions: ['recordValid', persistRecord] },
      },
    },
    receiving: {
      on: {
        'replica.receive': { guard: 'isNewerAttempt', target: 'receiving', reenter: true, actions: ['recordReceiving', persistRecord] },
        'replica.commit': { guard: 'commitsCurrentAttempt', target: 'valid', actions: ['recordValid', persistRecord] },
        'replica.abandon': { guard: 'isNewerEpoch', target: 'invalid', actions: ['recordInvalid', persistRecord] },
        'replica.recreate': { guard: 'isNewerEpoch', target: 'valid', actions: ['recordValid', persistRecord] },
      },
    },
    valid: {
      on: {
        'replica.invalidate': { guard: 'invalidatesCurrentEpoch', target: 'invalid', actions: ['recordInvalid', persistRecord] },
        'replica.reclaim': { guard: 'isNewerEpoch', target: 'valid', reenter: true, actions: ['recordValid', persistRecord] },
      },
    },
    invalid: {
      on: {
        'replica.receive': { guard: 'isNewerEpoch', target: 'receiving', actions: ['recordReceiving', persistRecord] },
        'replica.recreate': { guard: 'isNewerEpoch', target: 'valid', actions: ['recordValid', persistRecord] },
      },
    },
  },
});
