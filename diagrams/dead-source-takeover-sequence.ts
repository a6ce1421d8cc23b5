import { sequenceDiagram } from '../model-tests/explorer/counterexample.js';
import { committedWithDeadSource, forgetThroughThirdServer, takeoverConfig } from '../model-tests/membership/dead-source-takeover-scenario.js';
import { initialWorld } from '../model-tests/world/world.js';
import { exchangeLines } from './exchange-lines.js';

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
  lines.push(...exchangeLines(forgetThroughThirdServer(nodes), 's1'));
  return `${lines.join('\n')}\n`;
}
