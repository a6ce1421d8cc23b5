/**
 * The NBD front end's public surface: start a server over any `NbdBackend`.
 * Everything else in this folder is internal to the protocol implementation.
 */
export { startNbdServer, DEFAULT_CONNECTIONS_MAX, type NbdServerOptions, type NbdServerHandle } from './nbd-server.js';
export type { ExportInfo, NbdBackend } from './nbd-backend.js';
export { NbdError } from './nbd-error.js';
export { MemoryBackend, type MemoryBackendOptions, type MemoryExportSpec, type MemoryOperation } from './memory-backend.js';
export { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from './connection.js';
export { DEFAULT_HANDSHAKE_LIMITS, type HandshakeLimits } from './handshake.js';
export { exportInfoProblem, assertExportInfo } from './export-info-check.js';
export * as nbdConstants from './protocol-constants.js';
