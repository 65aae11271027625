import { request } from 'node:https';
import {
  ApiException, ApiextensionsV1Api, CoordinationV1Api, CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api,
  V1MicroTime, VersionApi, type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { startCluster, type Cluster } from './cluster.js';

// Real kube-apiserver + etcd + kube-scheduler + kwok (built once by test/k8s/build.sh; the first
// build takes many minutes, later runs start in seconds).

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

function statusOf(e: unknown): number | undefined {
  return e instanceof ApiException ? e.code : undefined;
}

async function expectStatus(p: Promise<unknown>, code: number): Promise<ApiException<unknown>> {
  try {
    await p;
  } catch (e) {
    expect(statusOf(e)).toBe(code);
    return e as ApiException<unknown>;
  }
  throw new Error(`expected HTTP ${code}, the call succeeded`);
}

const NS = 'tessera-test';
const GPU_NODE = 'gpu-a100-0';

describe('k8s test cluster (slow: real kube-apiserver, kube-scheduler, kwok)', () => {
  let cluster: Cluster;
  let core: CoreV1Api;

  beforeAll(async () => {
    cluster = await startCluster({
      nodes: [{ name: GPU_NODE, gpus: 8, gpuProduct: 'NVIDIA-A100-SXM4-80GB', gpuMemoryMiB: 81920, deviceProfile: 'A100-SXM-80GB' }],
    });
    core = cluster.kubeConfig().makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
  }, 45 * 60_000); // a first run builds the binaries

  afterAll(async () => {
    await cluster?.stop();
  });

  test('serves /readyz over TLS signed by the generated CA', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      const req = request(`${cluster.server}/readyz`, { ca: cluster.caPem }, (res) => {
        let s = '';
        res.on('data', (d: Buffer) => { s += d.toString(); });
        res.on('end', () => resolve(`${res.statusCode} ${s}`));
      });
      req.on('error', reject);
      req.end();
    });
    expect(body).toBe('200 ok');
    const version = await cluster.kubeConfig().makeApiClient(VersionApi).getCode();
    expect(version.gitVersion).toBe('v1.36.1');
    const ns = await core.readNamespace({ name: NS });
    expect(ns.status?.phase).toBe('Active');
  });

  test('a CRD CEL validation rule rejects a bad object with its message and admits a good one', async () => {
    const crd: V1CustomResourceDefinition = {
      metadata: { name: 'widgets.test.tessera.dev' },
      spec: {
        group: 'test.tessera.dev',
        names: { kind: 'Widget', plural: 'widgets', singular: 'widget', listKind: 'WidgetList' },
        scope: 'Namespaced',
        versions: [{
          name: 'v1', served: true, storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: {
                spec: {
                  type: 'object',
                  properties: { minStages: { type: 'integer' }, maxStages: { type: 'integer' } },
                  x_kubernetes_validations: [{ rule: 'self.minStages <= self.maxStages', message: 'minStages must not exceed maxStages' }],
                },
              },
            },
          },
        }],
      },
    };
    const ext = cluster.kubeConfig().makeApiClient(ApiextensionsV1Api);
    await ext.createCustomResourceDefinition({ body: crd });
    await until('CRD Established', async () => {
      const c = await ext.readCustomResourceDefinition({ name: crd.metadata!.name! });
      return c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True') ? true : undefined;
    });

    const custom = cluster.kubeConfig().makeApiClient(CustomObjectsApi);
    const widget = (name: string, minStages: number, maxStages: number) => ({
      group: 'test.tessera.dev', version: 'v1', namespace: NS, plural: 'widgets',
      body: { apiVersion: 'test.tessera.dev/v1', kind: 'Widget', metadata: { name }, spec: { minStages, maxStages } },
    });
    // The new resource can take a moment to appear in the handler chain: retry on 404 only.
    const bad = await until('bad Widget rejected', async () => {
      try {
        await custom.createNamespacedCustomObject(widget('bad', 4, 2));
        return 'accepted';
      } catch (e) {
        if (statusOf(e) === 404) return undefined;
        return e;
      }
    });
    expect(statusOf(bad)).toBe(422);
    expect(String((bad as ApiException<unknown>).body)).toContain('minStages must not exceed maxStages');

    const good = await custom.createNamespacedCustomObject(widget('good', 2, 4)) as { metadata: { uid?: string } };
    expect(good.metadata.uid).toBeTruthy();
  });

  test('RBAC is enforced: unbound users and service-account tokens are forbidden until a RoleBinding grants access', async () => {
    await expectStatus(cluster.kubeConfig(cluster.nobodyToken).makeApiClient(CoreV1Api).listNamespacedPod({ namespace: NS }), 403);

    await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'bot' } } });
    const tr = await core.createNamespacedServiceAccountToken({
      name: 'bot', namespace: NS, body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const saToken = tr.status?.token;
    expect(saToken).toBeTruthy();
    const asBot = cluster.kubeConfig(saToken).makeApiClient(CoreV1Api);
    const denied = await expectStatus(asBot.listNamespacedPod({ namespace: NS }), 403);
    expect(String(denied.body)).toContain(`system:serviceaccount:${NS}:bot`);

    const rbac = cluster.kubeConfig().makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({ namespace: NS, body: {
      metadata: { name: 'pod-reader' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }],
    } });
    await rbac.createNamespacedRoleBinding({ namespace: NS, body: {
      metadata: { name: 'bot-reads-pods' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pod-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'bot', namespace: NS }],
    } });
    await until('RoleBinding takes effect', async () => (await asBot.listNamespacedPod({ namespace: NS })).items);
    await expectStatus(asBot.listNamespacedPod({ namespace: 'default' }), 403); // the Role is namespaced
  });

  test('a kwok GPU node is Ready and a pod requesting nvidia.com/gpu is scheduled onto it and Running', async () => {
    const node = await core.readNode({ name: GPU_NODE });
    expect(node.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(node.status?.allocatable?.['nvidia.com/gpu']).toBe('8');
    expect(node.metadata?.labels?.['nvidia.com/gpu.product']).toBe('NVIDIA-A100-SXM4-80GB');
    expect(node.metadata?.labels?.['tessera.dev/device-profile']).toBe('A100-SXM-80GB');

    await core.createNamespacedPod({ namespace: NS, body: {
      metadata: { name: 'stage-0' },
      spec: {
        nodeSelector: { 'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-80GB' },
        containers: [{ name: 'worker', image: 'tessera/worker:test', resources: { limits: { 'nvidia.com/gpu': '1' } } }],
      },
    } });
    const running = await until('pod Running', async () => {
      const p = await core.readNamespacedPod({ name: 'stage-0', namespace: NS });
      return p.status?.phase === 'Running' ? p : undefined;
    });
    expect(running.spec?.nodeName).toBe(GPU_NODE); // bound by kube-scheduler, not preset

    // A request no node can satisfy stays Pending with an Unschedulable condition from the scheduler.
    await core.createNamespacedPod({ namespace: NS, body: {
      metadata: { name: 'too-big' },
      spec: { containers: [{ name: 'worker', image: 'tessera/worker:test', resources: { limits: { 'nvidia.com/gpu': '9' } } }] },
    } });
    const pending = await until('too-big Unschedulable', async () => {
      const p = await core.readNamespacedPod({ name: 'too-big', namespace: NS });
      return p.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.reason === 'Unschedulable') ? p : undefined;
    });
    expect(pending.spec?.nodeName).toBeUndefined();
  });

  test('kube-controller-manager creates default ServiceAccounts and garbage-collects owned objects', async () => {
    await until('default ServiceAccount', async () => (await core.readNamespacedServiceAccount({ name: 'default', namespace: NS })).metadata?.name);
    const owner = await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'owner' } } });
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: {
      name: 'dependent', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata!.uid! }],
    } } });
    await core.deleteNamespacedConfigMap({ name: 'owner', namespace: NS });
    await until('dependent garbage-collected', async () => {
      try {
        await core.readNamespacedConfigMap({ name: 'dependent', namespace: NS });
        return undefined;
      } catch (e) {
        return statusOf(e) === 404 ? true : undefined;
      }
    });
  });

  // MicroTime fields need V1MicroTime: a plain Date serializes with milliseconds, which the apiserver rejects (400).
  test('Leases can be created and updated, with optimistic concurrency', async () => {
    const coord = cluster.kubeConfig().makeApiClient(CoordinationV1Api);
    const created = await coord.createNamespacedLease({ namespace: NS, body: {
      metadata: { name: 'tessera-operator' },
      spec: { holderIdentity: 'operator-a', leaseDurationSeconds: 15, acquireTime: new V1MicroTime(), renewTime: new V1MicroTime() },
    } });
    const renewed = await coord.replaceNamespacedLease({ name: 'tessera-operator', namespace: NS, body: {
      ...created, spec: { ...created.spec, holderIdentity: 'operator-b', renewTime: new V1MicroTime() },
    } });
    expect(renewed.spec?.holderIdentity).toBe('operator-b');
    expect(renewed.metadata?.resourceVersion).not.toBe(created.metadata?.resourceVersion);
    // A writer holding the stale resourceVersion loses.
    await expectStatus(coord.replaceNamespacedLease({ name: 'tessera-operator', namespace: NS, body: {
      ...created, spec: { ...created.spec, holderIdentity: 'operator-c' },
    } }), 409);
  });
});
