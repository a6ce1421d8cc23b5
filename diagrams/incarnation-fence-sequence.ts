import { sequenceDiagram } from '../model-tests/explorer/counterexample.js';
import { fenceScenarioConfig, fenceScenarioPrefix, fenceScenarioStory } from '../model-tests/explorer/incarnation-fence-scenario.js';
import { initialWorld } from '../model-tests/world/world.js';

/**
 * The mermaid `sequenceDiagram` of the incarnation fence
 * (machines/node/incarnation-fence.ts), drawn from a path of the simulated
 * group: the scenario the explorer found the missing fence in
 * (model-tests/explorer/incarnation-fence-scenario.ts), continued by the
 * shortest path in which the write fails, a read answers the old value, and
 * s1's earlier forward then reaches s3 and is dropped. Every arrow is a
 * step the simulator took through the same node code the TCP runtime runs.
 */
export function incarnationFenceSequenceText(): string {
  const actions = [...fenceScenarioPrefix, ...fenceScenarioStory()];
  return sequenceDiagram(fenceScenarioConfig, initialWorld(fenceScenarioConfig), actions,
    'Incarnation fence: s1 restarts while its forward of the write from s2 is still on its way to s3', 'diagrams/generate.ts from a path of the simulated group (model-tests/explorer/incarnation-fence-scenario.ts)');
}
