import type { PeerMessage } from '../machines/node/messages.js';
import type { NodeEffect } from '../machines/node/node-io.js';
import { pageKeyText } from '../machines/identifiers.js';
import { sequenceDiagram } from '../model-tests/explorer/counterexample.js';
import type { ExchangeStep } from '../model-tests/membership/dead-source-takeover-scenario.js';
import { committedWithDeadSource, forgetThroughThirdServer, takeoverConfig } from '../model-tests/membership/dead-source-takeover-scenario.js';
import { initialWorld } from '../model-tests/world/world.js';

/**
 * The mermaid `sequenceDiagram` of a committed destination taking over the
 * page of a source forgotten before it flipped
 * (machines/node/dead-source-takeover.ts). The first part is a path of the
 * simulated group: a write, then a unit move from s1 to s2 up to s2's
 * durable commit, then s1's crash before it reads s2's answer. The second is
 * membership, which the simulated group does not model: the administrator
 * drains and forgets s1 through s3, run on the nodes of s2 and s3
 * (model-tests/membership/dead-source-takeover-scenario.ts); messages to s1
 * are lost. Every arrow is a step of the same node code the TCP runtime runs.
 */
export function deadSourceTakeoverSequenceText(): string {
  const { actions, nodes } = committedWithDeadSource();
  const simulated = sequenceDiagram(takeoverConfig, initialWorld(takeoverConfig), actions,
    "Takeover: s1 dies after s2 committed its move and before s1 flipped, and the administrator forgets s1 through s3",
    'diagrams/generate.ts from a path of the simulated group and the nodes of s2 and s3 (model-tests/membership/dead-source-takeover-scenario.ts)');
  const lines = simulated.trimEnd().split('\n');
  lines.push('  Note over s1: s1 is down for good: what is sent to it is lost');
  for (const step of forgetThroughThirdServer(nodes)) lines.push(...stepLines(step));
  return `${lines.join('\n')}\n`;
}

function stepLines(step: ExchangeStep): string[] {
  const lines: string[] = [];
  const { input } = step;
  if (input.type === 'admin.changeMembership') {
    const { change } = input;
    lines.push(`  Admin->>${step.at}: ${change.kind} ${change.kind === 'forget' ? change.ids.join(', ') : change.kind === 'add' ? change.member.id : change.id}`);
  }
  else if (input.type === 'peer.message') lines.push(`  ${input.from}->>${step.at}: ${messageText(input.message)}`);
  else if (input.type === 'io.done') lines.push(`  Note over ${step.at}: ${step.at} makes its metadata commit durable`);
  for (const effect of step.effects) lines.push(...effectLines(step.at, effect));
  return lines;
}

function effectLines(at: string, effect: NodeEffect): string[] {
  if (effect.type === 'admin.reply') return [`  ${at}-->>Admin: ${effect.ok ? 'ok' : 'refused'}: ${words(effect.message)}`];
  // Only the commits the forget waits for: a takeover's route goes in one of them.
  if (effect.type === 'meta.commit' && effect.completionId !== null) {
    const routes = effect.writes.flatMap((write) => (write.kind === 'route' ? [`route ${pageKeyText(write.pageKey)} owner ${write.route.owner} epoch ${write.route.epoch}`] : []));
    const kinds = [...new Set(effect.writes.map((write) => write.kind))].filter((kind) => kind !== 'route');
    return [`  Note over ${at}: ${at} commits ${[...kinds, ...routes].join(' and ')}`];
  }
  if (effect.type === 'peer.send' && effect.to === 's1') return [`  ${at}-x s1: ${messageText(effect.message)}`];
  return [];
}

function messageText(message: PeerMessage): string {
  switch (message.type) {
    case 'route.update': return `route.update ${pageKeyText(message.pageKey)} owner ${message.owner} epoch ${message.epoch}`;
    case 'route.query': return `route.query ${pageKeyText(message.pageKey)}`;
    case 'forget.check': return `forget.check ${message.servers.join(', ')} (record epoch ${message.membership.epoch})`;
    case 'forget.answer': return `forget.answer ${message.clear ? 'clear' : `not clear: ${words(message.reason ?? '')}`}`;
    case 'membership.update': return `membership.update (record epoch ${message.membership.epoch})`;
    default: return message.type;
  }
}

/** A reply's or a refusal's words, cut for a diagram line, without what mermaid reads as syntax. */
function words(text: string): string {
  const cut = text.replace(/[;#{}"]/g, ' ');
  return cut.length > 110 ? `${cut.slice(0, 107)}...` : cut;
}
