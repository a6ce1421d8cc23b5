import { piecewiseMoveMachine } from '../migration/piecewise-move.machine.js';
import { unitMoveMachine } from '../migration/unit-move.machine.js';
import type { TableRow } from './derive-tables.js';
import { deriveTable } from './derive-tables.js';

/** `npm run tables`: Tables 1 and 2 as the machines walk them, in the patent's columns and wording. */
const columns: [keyof TableRow, string][] = [
  ['stage', 'Stage'], ['restartStage', 'Restart Stage'], ['destination', 'Destination'], ['action', 'Action'], ['read', 'Read'], ['write', 'Write'],
];

function printTable(title: string, rows: readonly TableRow[]): void {
  const widths = columns.map(([key, heading]) => Math.max(heading.length, ...rows.map((row) => row[key].length)));
  const line = (cells: string[]) => cells.map((cell, index) => cell.padEnd(widths[index] ?? 0)).join(' | ');
  console.log(title);
  console.log(line(columns.map(([, heading]) => heading)));
  console.log(widths.map((width) => '-'.repeat(width)).join('-|-'));
  for (const row of rows) console.log(line(columns.map(([key]) => row[key])));
  console.log();
}

printTable('Table 1: unit move from server A to server B', deriveTable(unitMoveMachine, 'unit', 1));
printTable('Table 2: piecewise move of a page of 3 pieces from server A to server B', deriveTable(piecewiseMoveMachine, 'piecewise', 3));
