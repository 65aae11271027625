import { parseArgs } from 'node:util';
import { plannerNames, type PlannerConfig } from '../../pkg/operator/index.js';

/** tessera-operator flags (and env), parsed into typed config once (STYLE 10). */

export const USAGE = `usage: tessera-operator [flags]

  --scheduler <host:port>   the scheduler's gRPC address: plan and reserve through it
                            (env TESSERA_SCHEDULER_ADDR; default: none, plan in-process)
  --planner <name>          planning adapter: in-process | grpc
                            (env TESSERA_PLANNER; default: grpc with a scheduler address, else in-process)
  --scheduler-deadline-ms <n>  deadline of each scheduler call (default 10000)
  --resync-ms <n>           reconcile every job this often without a change, e.g. to notice a
                            restarted scheduler's lost holds; 0: off (env TESSERA_RESYNC_MS; default 60000)

Everything else comes from the environment the chart sets (TESSERA_NAMESPACE, TESSERA_HTTP_PORT, ...),
e.g. TESSERA_WORKER_RESOURCES: JSON {"requests": {...}, "limits": {...}} for each stage container
(a whole GPU is always added).
`;

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface OperatorFlags {
  planner: string;
  plannerConfig: PlannerConfig;
  /** OperatorOptions.resyncMs. */
  resyncMs: number;
  /** PodTemplateConfig.resources, from TESSERA_WORKER_RESOURCES. */
  workerResources: WorkerResources;
}

export interface WorkerResources {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

/** TESSERA_WORKER_RESOURCES (the chart's `toJson .Values.worker.resources`): only requests/limits maps of quantities. */
export function parseWorkerResources(raw: string | undefined): WorkerResources {
  if (raw === undefined || raw.trim() === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (err) {
    throw new UsageError(`TESSERA_WORKER_RESOURCES is not JSON: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new UsageError('TESSERA_WORKER_RESOURCES must be a JSON object with "requests" and/or "limits"');
  const out: WorkerResources = {};
  for (const [k, m] of Object.entries(v)) {
    if (k !== 'requests' && k !== 'limits') throw new UsageError(`TESSERA_WORKER_RESOURCES: unknown key "${k}" (requests, limits)`);
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new UsageError(`TESSERA_WORKER_RESOURCES.${k} must be an object of quantities`);
    out[k] = Object.fromEntries(Object.entries(m).map(([r, q]) => {
      if ((typeof q !== 'string' || q === '') && typeof q !== 'number') throw new UsageError(`TESSERA_WORKER_RESOURCES.${k}.${r} must be a quantity, got ${JSON.stringify(q)}`);
      return [r, String(q)];
    }));
  }
  return out;
}

export function parseOperatorFlags(argv: readonly string[], env: NodeJS.ProcessEnv): OperatorFlags | 'help' {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: [...argv],
      strict: true,
      options: { scheduler: { type: 'string' }, planner: { type: 'string' }, 'scheduler-deadline-ms': { type: 'string' }, 'resync-ms': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return 'help';
  const scheduler = ((values.scheduler as string | undefined) ?? env.TESSERA_SCHEDULER_ADDR ?? '').trim();
  if (scheduler && !/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(scheduler)) throw new UsageError(`--scheduler must be host:port, got "${scheduler}"`);
  const planner = (values.planner as string | undefined) ?? env.TESSERA_PLANNER ?? (scheduler ? 'grpc' : 'in-process');
  if (!plannerNames().includes(planner)) throw new UsageError(`--planner must be one of ${plannerNames().join(', ')}, got "${planner}"`);
  if (planner === 'grpc' && !scheduler) throw new UsageError('--planner grpc needs --scheduler host:port (or TESSERA_SCHEDULER_ADDR)');
  const rawDeadline = values['scheduler-deadline-ms'] as string | undefined;
  const deadlineMs = rawDeadline === undefined ? undefined : Number(rawDeadline);
  if (deadlineMs !== undefined && !(Number.isInteger(deadlineMs) && deadlineMs > 0)) throw new UsageError(`--scheduler-deadline-ms must be an integer > 0, got "${rawDeadline}"`);
  const rawResync = (values['resync-ms'] as string | undefined) ?? env.TESSERA_RESYNC_MS;
  const resyncMs = rawResync === undefined ? 60_000 : Number(rawResync);
  if (!(Number.isInteger(resyncMs) && resyncMs >= 0)) throw new UsageError(`--resync-ms must be an integer >= 0, got "${rawResync}"`);
  return { planner, plannerConfig: { ...(scheduler ? { scheduler } : {}), ...(deadlineMs ? { deadlineMs } : {}) }, resyncMs, workerResources: parseWorkerResources(env.TESSERA_WORKER_RESOURCES) };
}
