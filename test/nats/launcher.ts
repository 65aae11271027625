/**
 * Test harness entry for a real nats-server (free loopback port, generated config, stop by PID).
 * The launcher itself lives in pkg/worker/nats-server.ts, where `tessera up` uses it too; tests and
 * benchmarks import it from here so they keep one stable path.
 */
export { NatsServer, NatsServerNotFoundError, NatsServerStartError, findNatsServer, freePort } from '../../pkg/worker/nats-server.js';
export type { NatsServerOptions } from '../../pkg/worker/nats-server.js';
