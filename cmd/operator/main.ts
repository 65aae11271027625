import { hostname } from 'node:os';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { DriverJobRunner, Operator, createPlanner } from '../../pkg/operator/index.js';
import { USAGE, UsageError, parseOperatorFlags } from './config.js';

/**
 * tessera-operator: reads its configuration from the environment the chart sets
 * (charts/tessera/templates/operator.yaml), once, here.
 */

const env = process.env;
let flags;
try {
  flags = parseOperatorFlags(process.argv.slice(2), env);
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`tessera-operator: ${err.message}\n${USAGE}`);
  process.exit(2);
}
if (flags === 'help') {
  process.stdout.write(USAGE);
  process.exit(0);
}
const planner = createPlanner(flags.planner, flags.plannerConfig);
const kc = new KubeConfig();
kc.loadFromDefault();

// With NATS the operator runs training itself (one pipeline Driver per running job, see
// docs/ARCHITECTURE.md); without it, jobs are planned and placed but stop at phase Planned.
const log = (l: string): void => console.error(l);
const runner = env.TESSERA_NATS_URL
  ? new DriverJobRunner({ core: kc.makeApiClient(CoreV1Api), natsUrl: env.TESSERA_NATS_URL, checkpointStore: env.TESSERA_CHECKPOINT_STORE ?? 'jetstream', checkpointRoot: env.TESSERA_CHECKPOINT_ROOT, log })
  : undefined;

const operator = new Operator({
  kubeConfig: kc,
  namespace: env.TESSERA_NAMESPACE ?? 'tessera-system',
  identity: env.TESSERA_POD_NAME ?? hostname(),
  leaderElection: env.TESSERA_LEADER_ELECTION !== 'false',
  httpPort: Number(env.TESSERA_HTTP_PORT ?? 9090),
  resyncMs: flags.resyncMs,
  template: {
    ...(env.TESSERA_WORKER_IMAGE ? { image: env.TESSERA_WORKER_IMAGE } : {}),
    ...(env.TESSERA_WORKER_IMAGE_PULL_POLICY ? { imagePullPolicy: env.TESSERA_WORKER_IMAGE_PULL_POLICY } : {}),
    natsUrl: env.TESSERA_NATS_URL ?? '',
    schedulerAddr: flags.plannerConfig.scheduler ?? env.TESSERA_SCHEDULER_ADDR ?? '',
    priorityClass: { local: env.TESSERA_PRIORITY_CLASS_LOCAL ?? 'tessera-local', network: env.TESSERA_PRIORITY_CLASS_NETWORK ?? 'tessera-network' },
    resources: flags.workerResources,
  },
  planner,
  runner,
  log,
});

await operator.start();
console.error(`tessera-operator: started, http on :${operator.port}, planner ${flags.planner}${flags.plannerConfig.scheduler ? ` (scheduler ${flags.plannerConfig.scheduler})` : ''}`);
const shutdown = (): void => {
  void operator.stop().then(() => {
    planner.close?.();
    process.exit(0);
  });
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
