/**
 * The NBD listener: accepts TCP connections and gives each its own
 * `NbdConnection` over a shared backend.
 *
 * The server holds no protocol state of its own. It bounds the number of
 * simultaneous connections, in all and from any one address, and the
 * request payload bytes they hold together (payload-budget.ts), keeps the
 * set of live connections so `close()` can end them, and never lets a
 * connection's failure reach the process: a connection only ever closes
 * itself.
 *
 * Per address. With only the total bounded, one host opening connections
 * (a runaway script, a client that never closes any) took every slot and
 * shut every other client out. A connection beyond
 * `connectionsPerAddressMax` from one address is closed at once, before the
 * greeting (NBD has no way to refuse a connection earlier), and logged once
 * per burst. The default leaves room for what real clients open
 * (nbdcopy's 4 connections, qemu's multi-conn, the kernel client's `-C`, fio
 * jobs) many times over.
 */
import net from 'node:net';
import { DEFAULT_CONNECTION_LIMITS, NbdConnection, type ConnectionLimits } from './connection.js';
import type { NbdBackend } from './nbd-backend.js';
import { PayloadBudget } from './payload-budget.js';

export interface NbdServerOptions {
  host: string;
  /** Zero picks a free port; the chosen one is returned. */
  port: number;
  backend: NbdBackend;
  log: (line: string) => void;
  /** Connections beyond this are refused at accept time. */
  connectionsMax?: number;
  /** Connections from one remote address beyond this are closed at accept time; `connectionsPerAddressMaxDefault` if absent. */
  connectionsPerAddressMax?: number;
  /** Request payload bytes held for all connections at once (payload-budget.ts); `payloadBytesMaxDefault` if absent. */
  payloadBytesMax?: number;
  limits?: Partial<ConnectionLimits>;
}

export interface NbdServerHandle {
  port: number;
  /**
   * Stops listening; every connection stops reading requests, answers the
   * ones in flight for at most `graceMs` (the spec: a server SHOULD wait for
   * in-flight requests before a hard disconnect), then closes.
   */
  close(graceMs?: number): Promise<void>;
}

/** How long a stopping server waits for the requests in flight on its connections. */
export const shutdownGraceMsDefault = 2_000;

export const DEFAULT_CONNECTIONS_MAX = 256;

/** The default of `connectionsPerAddressMax`: a quarter of the total, so no one host can take more than a quarter of the slots. */
export const connectionsPerAddressMaxDefault = 64;

/**
 * The default of `payloadBytesMax`: eight times one connection's share, so a
 * few busy clients never meet it while hundreds of connections cannot add up
 * to more than a host's memory.
 */
export const payloadBytesMaxDefault = 512 * 1024 * 1024;

export async function startNbdServer(options: NbdServerOptions): Promise<NbdServerHandle> {
  const { host, backend, log } = options;
  const limits: ConnectionLimits = { ...DEFAULT_CONNECTION_LIMITS, ...options.limits };
  // Zero would pause every connection for good, turn after turn.
  if (!(Number.isInteger(limits.requestsPerPumpMax) && limits.requestsPerPumpMax >= 1)) throw new Error(`requestsPerPumpMax must be a whole number >= 1, not ${limits.requestsPerPumpMax}`);
  const perAddressMax = options.connectionsPerAddressMax ?? connectionsPerAddressMaxDefault;
  if (!(Number.isInteger(perAddressMax) && perAddressMax >= 1)) throw new Error(`connectionsPerAddressMax must be a whole number >= 1, not ${perAddressMax}`);
  const connections = new Set<NbdConnection>();
  /** Live connections per remote address (an entry goes with its last connection, so the map holds at most `maxConnections`). */
  const perAddress = new Map<string, number>();
  /** Addresses whose refusal has been logged since they last had room: one line per burst, not per connection. */
  const refusalLogged = new Set<string>();
  let connectionCount = 0;
  const budget = new PayloadBudget(options.payloadBytesMax ?? payloadBytesMaxDefault);

  // Half-open: a client that shuts down its sending side (libnbd does, after NBD_CMD_DISC) still gets its replies.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const address = socket.remoteAddress ?? '?';
    const fromAddress = perAddress.get(address) ?? 0;
    if (fromAddress >= perAddressMax) {
      if (!refusalLogged.has(address)) {
        refusalLogged.add(address);
        log(`nbd: ${address} already has ${fromAddress} connections, the most one address may (connectionsPerAddressMax); closing its new ones`);
      }
      socket.destroy();
      return;
    }
    perAddress.set(address, fromAddress + 1);
    connectionCount += 1;
    const label = `#${connectionCount} ${address}:${socket.remotePort ?? '?'}`;
    let connection: NbdConnection | null = null;
    // Before anything can throw: a counted socket is always uncounted when it closes.
    socket.on('close', () => {
      if (connection !== null) connections.delete(connection);
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left > 0) perAddress.set(address, left);
      else perAddress.delete(address);
      refusalLogged.delete(address);
    });
    try {
      connection = new NbdConnection(socket, backend, log, label, limits, budget);
      connections.add(connection);
      connection.start();
    } catch (error) {
      log(`nbd ${label}: failed to start: ${error instanceof Error ? error.message : String(error)}`);
      socket.destroy();
    }
  });
  server.maxConnections = options.connectionsMax ?? DEFAULT_CONNECTIONS_MAX;
  server.on('error', (error) => log(`nbd server error: ${error.message}`));

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen(options.port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('NBD server has no TCP address');
  log(`nbd listening on ${host}:${address.port}`);

  return {
    port: address.port,
    close: (graceMs = shutdownGraceMsDefault) =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const connection of connections) connection.shutdown(graceMs);
      }),
  };
}
