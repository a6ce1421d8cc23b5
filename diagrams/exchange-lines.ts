import { pageKeyText } from '../machines/identifiers.js';
import type { PeerMessage } from '../machines/node/messages.js';
import type { NodeEffect } from '../machines/node/node-io.js';
import type { ExchangeStep } from '../model-tests/membership/dead-source-takeover-scenario.js';

/**
 * The mermaid lines of a membership exchange run on pure nodes
 * (model-tests/membership/*-scenario.ts), shared by the sequence diagrams
 * drawn from one: the administrator's asks and answers, the messages, the
 * awaited metadata commits and page deletions, and what is sent to `dead`
 * (lost: drawn `-x`).
 */
export function exchangeLines(steps: readonly ExchangeStep[], dead: string): string[] {
  return steps.flatMap((step) => stepLines(step, dead));
}

function stepLines(step: ExchangeStep, dead: string): string[] {
  const lines: string[] = [];
  const { input } = step;
  if (input.type === 'admin.changeMembership') {
    const { change } = input;
    const what = change.kind === 'forget' ? `${change.ids.join(', ')}${change.declareLost === true ? ' --declare-lost' : ''}` : change.kind === 'add' ? change.member.id : change.id;
    lines.push(`  Admin->>${step.at}: ${change.kind} ${what}`);
  }
  else if (input.type === 'peer.message') lines.push(`  ${input.from}->>${step.at}: ${messageText(input.message)}`);
  else if (input.type === 'io.done') lines.push(`  Note over ${step.at}: ${step.at} makes its ${isDeletion(step) ? 'deletion' : 'metadata commit'} durable`);
  for (const effect of step.effects) lines.push(...effectLines(step.at, effect, dead));
  return lines;
}

/** Whether the completion `step` took was a page deletion's (its effects then commit the declared page's records). */
function isDeletion(step: ExchangeStep): boolean {
  return step.effects.some((effect) => effect.type === 'meta.commit' && effect.writes.some((write) => write.kind === 'replica' && write.record.status === 'valid'));
}

function effectLines(at: string, effect: NodeEffect, dead: string): string[] {
  if (effect.type === 'admin.reply') return [`  ${at}-->>Admin: ${effect.ok ? 'ok' : 'refused'}: ${words(effect.message)}`];
  // Only the commits someone waits for: a takeover's or a declaration's route goes in one of them.
  if (effect.type === 'meta.commit' && effect.completionId !== null) {
    const routes = effect.writes.flatMap((write) => (write.kind === 'route' ? [`route ${pageKeyText(write.pageKey)} owner ${write.route.owner} epoch ${write.route.epoch}`] : []));
    const replicas = effect.writes.flatMap((write) => (write.kind === 'replica' ? [`copy ${pageKeyText(write.pageKey)} ${write.record.status} epoch ${write.record.epoch}`] : []));
    const claims = effect.writes.flatMap((write) => (write.kind === 'lostClaim' ? [`claim by ${write.claim.claimant}`] : []));
    const kinds = [...new Set(effect.writes.map((write) => write.kind))].filter((kind) => kind !== 'route' && kind !== 'replica' && kind !== 'lostClaim');
    return [`  Note over ${at}: ${at} commits ${[...kinds, ...claims, ...replicas, ...routes].join(' and ')}`];
  }
  if (effect.type === 'data.delete') return [`  Note over ${at}: ${at} deletes its data of ${pageKeyText(effect.pageKey)} (${effect.reason})`];
  if (effect.type === 'peer.send' && effect.to === dead) return [`  ${at}-x ${dead}: ${messageText(effect.message)}`];
  return [];
}

function messageText(message: PeerMessage): string {
  switch (message.type) {
    case 'route.update': return `route.update ${pageKeyText(message.pageKey)} owner ${message.owner} epoch ${message.epoch}`;
    case 'route.query': return `route.query ${pageKeyText(message.pageKey)}`;
    case 'forget.check': return `forget.check ${message.servers.join(', ')} (record epoch ${message.membership.epoch})`;
    case 'forget.answer': return `forget.answer ${message.clear ? 'clear' : `not clear: ${words(message.reason ?? '')}`}`;
    case 'membership.update': return `membership.update (record epoch ${message.membership.epoch})`;
    case 'lost.check': return `lost.check ${message.servers.join(', ')}: ${message.pages.map(pageKeyText).join(', ')}`;
    case 'lost.answer': return message.pages === null
      ? `lost.answer refused: ${words(message.refusal ?? '')}`
      : `lost.answer ${message.pages.map((report) => `${pageKeyText(report.pageKey)} route ${report.route ? `${report.route.owner}@${report.route.epoch}` : 'none'}, copy ${report.copy ? `${report.copy.status}@${report.copy.epoch}` : 'none'}`).join('; ')}`;
    default: return message.type;
  }
}

/** A reply's or a refusal's words, cut for a diagram line, without what mermaid reads as syntax. */
export function words(text: string): string {
  const cut = text.replace(/[;#{}"]/g, ' ');
  return cut.length > 110 ? `${cut.slice(0, 107)}...` : cut;
}
