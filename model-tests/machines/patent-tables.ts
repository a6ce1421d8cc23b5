import type { TableRow } from '../../machines/tables/derive-tables.js';

/**
 * The patent's Tables 1 and 2 (../shared/seed/block-data-migration.txt),
 * copied row by row. Two readings are made explicit rather than hidden:
 *
 * - Table 2 prints its "Destination" cell blank for stages 2, 4 and 5. The
 *   text says the page "is considered initially owned by the originating
 *   server ... while the move is in progress", so those cells read "Server A".
 * - Table 2 elides the middle ("... repeat as needed for all pieces"). For a
 *   page of 3 pieces, stages 6 and 7 repeat the pattern of stages 4 and 5 for
 *   piece 3; with no piece left at the source, "server A for others" has no
 *   others to name, and when every piece is at B the cell reads "Server B".
 *   Stage n is the patent's final row, numbered 8.
 */
const row = (stage: string, restartStage: string, destination: string, action: string, read: string, write: string): TableRow =>
  ({ stage, restartStage, destination, action, read, write });

export const patentTable1: TableRow[] = [
  row('1', 'N/A', 'Server A', 'Not started', 'Server A', 'Server A'),
  row('2', '2', 'Server A', 'Start move', 'Server A', 'Servers A and B'),
  row('3', '2', 'Server A', 'Finish Move', 'Server A', 'Servers A and B'),
  row('4', 'N/A', 'Server B', 'Routing Table updated', 'Server B', 'Server B'),
];

export const patentTable2ThreePieces: TableRow[] = [
  row('1', 'N/A', 'Server A', 'Not started', 'Server A', 'Server A'),
  row('2', '2', 'Server A', 'Start move, piece 1', 'Server A', 'Servers A and B for piece 1, server A for others'),
  row('3', '2', 'Server A', 'Finish move, piece 1', 'Server B for piece 1, server A for others', 'Server B for piece 1, server A for others'),
  row('4', '4', 'Server A', 'Start move, piece 2', 'Server B for piece 1, server A for others', 'Server B for piece 1, servers A and B for piece 2, server A for others'),
  row('5', '4', 'Server A', 'Finish move, piece 2', 'Server B for pieces 1 and 2, server A for others', 'Server B for pieces 1 and 2, server A for others'),
  // Extrapolated by the table's own rule ("repeat as needed for all pieces"):
  row('6', '6', 'Server A', 'Start move, piece 3', 'Server B for pieces 1 and 2, server A for others', 'Server B for pieces 1 and 2, servers A and B for piece 3'),
  row('7', '6', 'Server A', 'Finish move, piece 3', 'Server B', 'Server B'),
  row('8', 'N/A', 'Server B', 'Routing Table updated', 'Server B', 'Server B'),
];
