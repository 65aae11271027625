#!/usr/bin/env node
// tessera-scheduler: a thin entry point around SchedulerServer. Flags (or env) are parsed into
// typed options once, here; every scheduler event is logged as one line on stdout. /metrics
// (Prometheus text) and /healthz (the chart's probes) are served on the HTTP port.
import { parseArgs } from 'node:util';
import { serveHttp } from '../../pkg/metrics/index.js';
import { SchedulerServer } from '../../pkg/scheduler/index.js';

const USAGE = `usage: tessera-scheduler [flags]

  --host <addr>                 bind address (env TESSERA_SCHEDULER_HOST; default 0.0.0.0)
  --port <n>                    gRPC port, 0 = any free port (env TESSERA_SCHEDULER_PORT; default 7070)
  --http-port <n>               /metrics and /healthz, 0 = any free port (env TESSERA_HTTP_PORT; default 9090)
  --heartbeat-timeout-ms <n>    declare a silent worker lost after this long (default 10000)
  --tick-ms <n>                 how often to check heartbeats and preemption grace periods (default 1000)
  --preemption-grace-ms <n>     how long a preempted job has to confirm its checkpoint before its
                                capacity is released anyway (default 30000)
`;

interface Config {
  host: string;
  port: number;
  httpPort: number;
  heartbeatTimeoutMs: number;
  tickIntervalMs: number;
  preemptionGraceMs: number;
}

class UsageError extends Error {
  override name = 'UsageError';
}

function intValue(raw: string | undefined, name: string, fallback: number, min: number): number {
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) throw new UsageError(`${name} must be an integer >= ${min}, got "${raw}"`);
  return v;
}

function parseConfig(argv: string[], env: NodeJS.ProcessEnv): Config | 'help' {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      options: { host: { type: 'string' }, port: { type: 'string' }, 'http-port': { type: 'string' }, 'heartbeat-timeout-ms': { type: 'string' }, 'tick-ms': { type: 'string' }, 'preemption-grace-ms': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return 'help';
  const str = (k: string): string | undefined => values[k] as string | undefined;
  return {
    host: str('host') ?? env.TESSERA_SCHEDULER_HOST ?? '0.0.0.0',
    port: intValue(str('port') ?? env.TESSERA_SCHEDULER_PORT, '--port', 7070, 0),
    httpPort: intValue(str('http-port') ?? env.TESSERA_HTTP_PORT, '--http-port', 9090, 0),
    heartbeatTimeoutMs: intValue(str('heartbeat-timeout-ms'), '--heartbeat-timeout-ms', 10_000, 1),
    tickIntervalMs: intValue(str('tick-ms'), '--tick-ms', 1000, 1),
    preemptionGraceMs: intValue(str('preemption-grace-ms'), '--preemption-grace-ms', 30_000, 0),
  };
}

async function main(): Promise<number> {
  let config: Config | 'help';
  try {
    config = parseConfig(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`tessera-scheduler: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (config === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const log = (line: string): void => void process.stdout.write(`${new Date().toISOString()} ${line}\n`);
  const server = new SchedulerServer({ ...config, log });
  await server.start();
  const http = await serveHttp(config.httpPort, () => server.metricsText(), () => server.isServing).catch(async (err: unknown) => {
    await server.stop(0); // the gRPC server would keep the process alive
    throw new Error(`--http-port ${config.httpPort}: ${(err as Error).message}`);
  });
  log(`metrics and health on port ${http.port}, all interfaces (/metrics, /healthz)`);
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log(`received ${signal}, shutting down`);
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await server.stop();
  http.server.close();
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`tessera-scheduler: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
