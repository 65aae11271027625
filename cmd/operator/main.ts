import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import { Operator } from '../../pkg/operator/index.js';

/**
 * tessera-operator: reads its configuration from the environment the chart sets
 * (charts/tessera/templates/operator.yaml), once, here.
 */

const env = process.env;
const kc = new KubeConfig();
kc.loadFromDefault();

const operator = new Operator({
  kubeConfig: kc,
  namespace: env.TESSERA_NAMESPACE ?? 'tessera-system',
  identity: env.TESSERA_POD_NAME ?? hostname(),
  leaderElection: env.TESSERA_LEADER_ELECTION !== 'false',
  httpPort: Number(env.TESSERA_HTTP_PORT ?? 9090),
  template: {
    ...(env.TESSERA_WORKER_IMAGE ? { image: env.TESSERA_WORKER_IMAGE } : {}),
    ...(env.TESSERA_WORKER_IMAGE_PULL_POLICY ? { imagePullPolicy: env.TESSERA_WORKER_IMAGE_PULL_POLICY } : {}),
    natsUrl: env.TESSERA_NATS_URL ?? '',
    schedulerAddr: env.TESSERA_SCHEDULER_ADDR ?? '',
    priorityClass: { local: env.TESSERA_PRIORITY_CLASS_LOCAL ?? 'tessera-local', network: env.TESSERA_PRIORITY_CLASS_NETWORK ?? 'tessera-network' },
  },
  log: (l) => console.error(l),
});

await operator.start();
console.error(`tessera-operator: started, http on :${operator.port}`);
const shutdown = (): void => {
  void operator.stop().then(() => process.exit(0));
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
