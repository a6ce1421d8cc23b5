import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { piecewiseMoveMachine } from '../machines/migration/piecewise-move.machine.js';
import { unitMoveMachine } from '../machines/migration/unit-move.machine.js';
import { replicaMachine } from '../machines/replica/replica.machine.js';
import { requestRoutingMachine } from '../machines/routing/request-routing.machine.js';
import { abandonSequenceText } from './abandon-sequence.js';
import { crashRestartSequenceText } from './sequence-diagram.js';
import { incarnationFenceSequenceText } from './incarnation-fence-sequence.js';
import { deadSourceTakeoverSequenceText } from './dead-source-takeover-sequence.js';
import { declareLostSequenceText } from './declare-lost-sequence.js';
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
export const abandonFileName = 'piecewise-move-abandon.sequence.mmd';
export const incarnationFenceFileName = 'incarnation-fence.sequence.mmd';
export const deadSourceTakeoverFileName = 'dead-source-takeover.sequence.mmd';
export const declareLostFileName = 'declare-lost.sequence.mmd';

export function diagramFiles(): DiagramFile[] {
  const stateDiagrams = Object.entries(stateDiagramMachines).map(([fileName, machine]) => ({ fileName, text: stateDiagramText(machine) }));
  return [...stateDiagrams, { fileName: crashRestartFileName, text: crashRestartSequenceText() }, { fileName: abandonFileName, text: abandonSequenceText() },
    { fileName: incarnationFenceFileName, text: incarnationFenceSequenceText() }, { fileName: deadSourceTakeoverFileName, text: deadSourceTakeoverSequenceText() },
    { fileName: declareLostFileName, text: declareLostSequenceText() }];
}

/** The committed files that differ from what the machines generate now (missing ones included). */
export function staleDiagrams(files: readonly DiagramFile[], directory: string): string[] {
  const stale: string[] = [];
  for (const file of files) {
    const path = join(directory, file.fileName);
    if (!existsSync(path)) stale.push(`${file.fileName} (missing)`);
    else if (readFileSync(path, 'utf8') !== file.text) stale.push(`${file.fileName} (differs)`);
    const svgPath = path.replace(/\.mmd$/, '.svg');
    const svgName = file.fileName.replace(/\.mmd$/, '.svg');
    // The picture a reviewer opens is checked too: drawn from this `.mmd`, and not edited since (a review edited an SVG
    // and the check still passed).
    if (!existsSync(svgPath)) stale.push(`${svgName} (missing)`);
    else {
      const problem = svgProblem(readFileSync(svgPath, 'utf8'), file.text);
      if (problem) stale.push(`${svgName} (${problem})`);
    }
  }
  return stale;
}

const markPattern = /\n<!-- blockshift diagram source sha256:([0-9a-f]{64}) drawing sha256:([0-9a-f]{64}) -->\n$/;

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A rendered SVG with its mark appended: the SHA-256 of the `.mmd` text it was drawn from, and of the drawing itself. */
export function markedSvg(svgText: string, mmdText: string): string {
  const drawing = svgText.trimEnd();
  return `${drawing}\n<!-- blockshift diagram source sha256:${sha256(mmdText)} drawing sha256:${sha256(drawing)} -->\n`;
}

/** Why an SVG is not the rendering of this `.mmd` text as it was drawn; null if it is. */
export function svgProblem(svgText: string, mmdText: string): string | null {
  const mark = markPattern.exec(svgText);
  if (!mark) return 'no source mark: not rendered by `npm run diagrams`';
  if (mark[1] !== sha256(mmdText)) return 'drawn from another .mmd';
  if (mark[2] !== sha256(svgText.slice(0, mark.index))) return 'edited since it was drawn';
  return null;
}
