import { describe, expect, it } from 'vitest';
import { bootstrapMembership } from '../../machines/membership/membership.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import { isTimerLive, nodeStep } from '../../machines/node/node.js';
import type { NodeState } from '../../machines/node/node-state.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { member, startedNode, threeServers } from '../membership/membership-fixture.js';

/**
 * A volume's name is reserved on the members before it is defined, a
 * majority of them granting it (machines/node/volume-reservation.ts). Two
 * administrators creating one name on two servers at once used to define
 * two different volumes, each spreading to the members it reached first.
 * These tests run three nodes by hand, delivering messages in a chosen order.
 */
const membership = bootstrapMembership(threeServers.map((id) => member(id)));
const volumeA: VolumeDefinition = { name: 'x', pageCount: 4, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1', 's2', 's3'] };
const volumeB: VolumeDefinition = { ...volumeA, pageCount: 8 };

type Sent = { from: string; to: string; message: PeerMessage };

class Group {
  readonly nodes = new Map<string, NodeState>(threeServers.map((id) => [id, startedNode(id, [], membership)]));
  readonly inFlight: Sent[] = [];
  readonly replies: Array<{ server: string; ok: boolean; message: string }> = [];
  readonly timers: Array<{ server: string; timerId: string }> = [];

  step(server: string, input: NodeInput): NodeEffect[] {
    const [next, effects] = nodeStep(this.nodes.get(server)!, input);
    this.nodes.set(server, next);
    for (const effect of effects) {
      if (effect.type === 'peer.send') this.inFlight.push({ from: server, to: effect.to, message: effect.message });
      if (effect.type === 'admin.reply') this.replies.push({ server, ok: effect.ok, message: effect.message });
      if (effect.type === 'timer.set') this.timers.push({ server, timerId: effect.timerId });
      // Commits succeed at once, so an administrator's answer follows its definition.
      if (effect.type === 'meta.commit' && effect.completionId !== null) this.step(server, { type: 'io.done', completionId: effect.completionId, ok: true });
    }
    return effects;
  }

  create(server: string, volume: VolumeDefinition, requestId: string): NodeEffect[] {
    return this.step(server, { type: 'admin.createVolume', requestId, volume });
  }

  /** Delivers the first message in flight that matches. */
  deliver(match: (sent: Sent) => boolean): void {
    const index = this.inFlight.findIndex(match);
    expect(index, 'a matching message is in flight').toBeGreaterThanOrEqual(0);
    const [sent] = this.inFlight.splice(index, 1);
    this.step(sent!.to, { type: 'peer.message', from: sent!.from, message: sent!.message });
  }

  deliverAll(): void {
    while (this.inFlight.length > 0) this.deliver(() => true);
  }

  defined(server: string): VolumeDefinition | undefined {
    return this.nodes.get(server)!.volumes['x'];
  }
}

describe('a volume name reserved on every member before it is defined', () => {
  it('defines the volume once a majority granted its name, and not before', () => {
    const group = new Group();
    const effects = group.create('s1', volumeA, 'create');
    expect(effects.filter((effect) => effect.type === 'meta.commit')).toEqual([]);
    expect(group.defined('s1')).toBeUndefined();
    group.deliver((sent) => sent.message.type === 'volume.reserve' && sent.to === 's2');
    expect(group.defined('s1')).toBeUndefined();
    // s2's grant makes two of three, with s1's own.
    group.deliver((sent) => sent.message.type === 'volume.reserveAnswer');
    expect(group.defined('s1')).toEqual(volumeA);
    group.deliverAll();
    for (const server of threeServers) expect(group.defined(server)).toEqual(volumeA);
    expect(group.replies).toEqual([{ server: 's1', ok: true, message: expect.stringMatching(/^volume x created/) }]);
    // No reservation is left anywhere.
    for (const server of threeServers) expect(group.nodes.get(server)!.volumeReservations).toEqual({});
  });

  it('of two creations of one name at once, never lets both define, and answers each', () => {
    for (const order of ['s1 first at s3', 's2 first at s3']) {
      const group = new Group();
      group.create('s1', volumeA, 'a');
      group.create('s2', volumeB, 'b');
      // s3 hears one creator first; each creator hears the other's reservation while holding its own.
      group.deliver((sent) => sent.to === 's3' && sent.from === (order.startsWith('s1') ? 's1' : 's2'));
      group.deliverAll();
      const definitions = threeServers.map((server) => group.defined(server)).filter((volume) => volume !== undefined);
      // Whatever got defined is one definition everywhere it is.
      expect(new Set(definitions.map((volume) => JSON.stringify(volume))).size).toBeLessThanOrEqual(1);
      expect(group.replies.map((reply) => reply.server).sort()).toEqual(['s1', 's2']);
      expect(group.replies.filter((reply) => reply.ok).length).toBeLessThanOrEqual(1);
      for (const reply of group.replies.filter((answer) => !answer.ok)) expect(reply.message).toMatch(/being created elsewhere|exists otherwise/);
    }
  });

  it('refuses the administrator when too few members answer in time, and frees the name everywhere', () => {
    const group = new Group();
    group.create('s1', volumeA, 'create');
    // s2 and s3 are down: the reservations are never delivered. The creator's time-out fires.
    const reservations = group.inFlight.splice(0);
    const timer = group.timers.find((entry) => entry.server === 's1')!;
    expect(isTimerLive(group.nodes.get('s1')!, timer.timerId)).toBe(true);
    group.step('s1', { type: 'timer.fired', timerId: timer.timerId });
    expect(group.replies).toEqual([{ server: 's1', ok: false, message: 'volume x was not created: too few members granted its name in time (a majority must; no answer from s2, s3); try again' }]);
    // s2 comes back and gets the reservation late, then the release: it holds nothing.
    group.inFlight.unshift(...reservations.filter((sent) => sent.to === 's2'));
    group.deliver((sent) => sent.message.type === 'volume.reserve' && sent.to === 's2');
    group.deliver((sent) => sent.message.type === 'volume.release' && sent.to === 's2');
    expect(group.nodes.get('s2')!.volumeReservations).toEqual({});
    // The name is free again: a second try, with the members up, succeeds.
    group.inFlight.splice(0);
    group.create('s1', volumeA, 'again');
    group.deliverAll();
    expect(group.replies.at(-1)).toMatchObject({ ok: true });
  });

  it('goes ahead with a member down, which learns the volume when it is back', () => {
    const group = new Group();
    group.create('s1', volumeA, 'create');
    group.deliver((sent) => sent.message.type === 'volume.reserve' && sent.to === 's2');
    group.deliver((sent) => sent.message.type === 'volume.reserveAnswer');
    expect(group.replies).toEqual([{ server: 's1', ok: true, message: expect.stringMatching(/^volume x created/) }]);
    expect(group.defined('s3')).toBeUndefined();
    group.deliverAll();
    expect(group.defined('s3')).toEqual(volumeA);
  });

  it('grants a name a member already defines the same way, and refuses one it defines otherwise', () => {
    const group = new Group();
    group.create('s1', volumeA, 'create');
    group.deliverAll();
    group.create('s2', volumeA, 'same');
    expect(group.replies.at(-1)).toEqual({ server: 's2', ok: false, message: 'volume x exists' });
    const answers: PeerMessage[] = [];
    for (const volume of [volumeA, volumeB]) {
      const effects = group.step('s3', { type: 'peer.message', from: 's2', message: { type: 'volume.reserve', volume, reservationId: 'vr:s2.1.99' } });
      for (const effect of effects) if (effect.type === 'peer.send') answers.push(effect.message);
    }
    expect(answers).toEqual([
      { type: 'volume.reserveAnswer', name: 'x', reservationId: 'vr:s2.1.99', granted: true, reason: null },
      { type: 'volume.reserveAnswer', name: 'x', reservationId: 'vr:s2.1.99', granted: false, reason: 's3 defines x otherwise' },
    ]);
  });
});
