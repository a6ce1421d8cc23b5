/**
 * An HTML timeline of one block's history, for a violation: one row per
 * process, one bar per operation from invocation to completion (an `info`
 * operation's bar runs to the right edge), coloured by outcome, labelled
 * with what it wrote or read; nemesis actions are shaded bands across all
 * rows. The checker's blocked operation is outlined in red. Only a window of
 * operations around it is drawn, so the page stays small.
 */
import type { Operation } from '../history/history-event.js';
import type { BlockVerdict } from '../history/linearizability-checker.js';
import type { NemesisEvent } from './nemesis.js';

const windowOperationsMax = 300;

export function timelineHtml(seed: number, verdicts: readonly BlockVerdict[], operations: readonly Operation[], nemesis: readonly NemesisEvent[]): string {
  const sections = verdicts.map((verdict) => blockSection(verdict, operations, nemesis)).join('\n');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>blockshift jepsen seed ${seed}</title>
<style>
body { font: 12px sans-serif; margin: 16px; }
.lane { position: relative; height: 22px; border-bottom: 1px solid #eee; }
.label { position: absolute; left: 0; width: 90px; color: #555; }
.op { position: absolute; height: 16px; top: 3px; overflow: hidden; white-space: nowrap; font-size: 10px; border-radius: 2px; }
.ok { background: #9fd89f; } .fail { background: #ddd; } .info { background: #f5d77f; }
.write { border: 1px solid #2a7; } .read { border: 1px solid #27a; } .crash { background: #f99; }
.blocked { outline: 2px solid red; }
.band { position: absolute; top: 0; bottom: 0; background: rgba(255, 80, 80, 0.08); border-left: 1px dashed #c66; }
.canvas { position: relative; margin-left: 90px; }
</style></head><body>
<h1>blockshift jepsen: seed ${seed}</h1>
<p>Replay: <code>npm run jepsen -- --seed ${seed}</code> with the same options. Bars run from invocation to completion; yellow bars have an unknown outcome.</p>
${sections}
</body></html>
`;
}

function blockSection(verdict: BlockVerdict, operations: readonly Operation[], nemesis: readonly NemesisEvent[]): string {
  const all = operations.filter((operation) => operation.block === verdict.block || operation.f === 'crash').sort((left, right) => left.invokeNs - right.invokeNs);
  const blockedIndex = Math.max(0, all.findIndex((operation) => operation.id === verdict.blockedOperationId));
  const start = Math.max(0, blockedIndex - windowOperationsMax / 2);
  const shown = all.slice(start, start + windowOperationsMax);
  if (shown.length === 0) return `<h2>block ${verdict.block}</h2><p>${escape(verdict.reason ?? '')}</p>`;
  const fromNs = Math.min(...shown.map((operation) => operation.invokeNs));
  const finiteEnds = shown.map((operation) => (Number.isFinite(operation.completeNs) ? operation.completeNs : operation.invokeNs));
  const toNs = Math.max(...finiteEnds) + 1;
  const widthPx = Math.max(1200, shown.length * 12);
  const x = (timeNs: number) => ((Math.min(timeNs, toNs) - fromNs) / (toNs - fromNs)) * widthPx;
  const processes = [...new Set(shown.map((operation) => operation.process))].sort((left, right) => left - right);
  const lanes = processes.map((process) => {
    const bars = shown.filter((operation) => operation.process === process).map((operation) => {
      const left = x(operation.invokeNs);
      const width = Math.max(3, x(operation.completeNs) - left);
      const text = operation.f === 'crash' ? 'crash' : `${operation.f === 'write' ? 'w' : 'r'} ${operation.value}`;
      const title = `${operation.f} id ${operation.id} value ${operation.value} ${operation.outcome} [${(operation.invokeNs / 1e6).toFixed(3)} ms, ${(operation.completeNs / 1e6).toFixed(3)} ms]${operation.server ? ` via ${operation.server}` : ''}${operation.fua ? ' FUA' : ''}${operation.final ? ' final' : ''}${operation.note ? ` (${operation.note})` : ''}`;
      const classes = ['op', operation.outcome, operation.f, operation.id === verdict.blockedOperationId ? 'blocked' : ''].join(' ');
      return `<div class="${classes}" style="left:${left.toFixed(1)}px;width:${width.toFixed(1)}px" title="${escape(title)}">${escape(text)}</div>`;
    }).join('');
    return `<div class="lane"><span class="label">${process < 0 ? 'nemesis' : `process ${process}`}</span><div class="canvas">${bars}</div></div>`;
  }).join('\n');
  const bands = nemesis.filter((event) => event.endNs >= fromNs && event.startNs <= toNs).map((event) => {
    const left = x(Math.max(event.startNs, fromNs));
    return `<div class="band" style="left:${(90 + left).toFixed(1)}px;width:${Math.max(2, x(event.endNs) - left).toFixed(1)}px" title="${escape(event.description)}"></div>`;
  }).join('');
  return `<h2>block ${verdict.block}: ${verdict.verdict}</h2>
<p>${escape(verdict.reason ?? '')}. Showing ${shown.length} of ${all.length} operations.</p>
<div style="position:relative;width:${widthPx + 100}px">${bands}
${lanes}
</div>`;
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
