import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { piecewiseMoveMachine } from '../machines/migration/piecewise-move.machine.js';
import { unitMoveMachine } from '../machines/migration/unit-move.machine.js';
import { replicaMachine } from '../machines/replica/replica.machine.js';
import { requestRoutingMachine } from '../machines/routing/request-routing.machine.js';
import { crashRestartSequenceText } from './sequence-diagram.js';
import { stateDiagramText } from './state-diagram.js';

/**
 * Every generated diagram, by the file name it is committed under in
 * `diagrams/`. The texts are computed in memory from the machines, so the
 * `--check` mode and the tests compare exactly what `--render` would write.
 * Adding a machine diagram here is all it takes to generate, check and
 * render it.
 */
export interface DiagramFile {
  readonly fileName: string;
  readonly text: string;
}

export const stateDiagramMachines = {
  'unit-move.mmd': unitMoveMachine,
  'piecewise-move.mmd': piecewiseMoveMachine,
  'replica.mmd': replicaMachine,
  'request-routing.mmd': requestRoutingMachine,
} as const;

export const crashRestartFileName = 'piecewise-move-crash-restart.sequence.mmd';

export function diagramFiles(): DiagramFile[] {
  const stateDiagrams = Object.entries(stateDiagramMachines).map(([fileName, machine]) => ({ fileName, text: stateDiagramText(machine) }));
  return [...stateDiagrams, { fileName: crashRestartFileName, text: crashRestartSequenceText() }];
}

/** The committed files that differ from what the machines generate now (missing ones included). */
export function staleDiagrams(files: readonly DiagramFile[], directory: string): string[] {
  const stale: string[] = [];
  for (const file of files) {
    const path = join(directory, file.fileName);
    if (!existsSync(path)) stale.push(`${file.fileName} (missing)`);
    else if (readFileSync(path, 'utf8') !== file.text) stale.push(`${file.fileName} (differs)`);
  }
  return stale;
}
