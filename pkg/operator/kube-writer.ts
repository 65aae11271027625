import type { CoreV1Api, CustomObjectsApi, V1Pod } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION, type TrainingJobStatus } from '../k8s/index.js';
import { FINALIZER, type Action, type RawJob, type Writer } from './trainingjob-reconciler.js';

/** HTTP status of a client-node ApiException, if any. */
export const statusCodeOf = (err: unknown): number | undefined => (err as { code?: number } | null)?.code;

/** A write the apiserver refused with 409: the cache was stale; the watch will bring the new object. */
export class ConflictError extends Error {
  override name = 'ConflictError';
  constructor(readonly key: string, readonly action: Action['type'], options?: { cause?: unknown }) {
    super(`${key}: ${action} conflicted with a newer version`, options);
  }
}

/** Commits reconciler actions to the apiserver. 404 is success (the object is gone already). */
export class KubeWriter implements Writer {
  constructor(
    private readonly core: CoreV1Api,
    private readonly custom: CustomObjectsApi,
    /** @default "tessera-operator" */
    private readonly component = 'tessera-operator',
  ) {}

  async apply(job: RawJob, a: Action): Promise<void> {
    const { name, namespace } = job.metadata;
    try {
      switch (a.type) {
        case 'addFinalizer':
        case 'removeFinalizer': {
          const finalizers = (job.metadata.finalizers ?? []).filter((f) => f !== FINALIZER);
          if (a.type === 'addFinalizer') finalizers.push(FINALIZER);
          await this.custom.replaceNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body: { ...job, metadata: { ...job.metadata, finalizers } } });
          return;
        }
        case 'updateStatus':
          await this.custom.replaceNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body: { ...job, status: a.status as TrainingJobStatus } });
          return;
        case 'createPod':
          await this.core.createNamespacedPod({ namespace, body: a.pod as V1Pod });
          return;
        case 'deletePod':
          // Grace 0: a stage pod on a lost node would otherwise wait for a kubelet that is gone.
          await this.core.deleteNamespacedPod({ name: a.name, namespace, gracePeriodSeconds: 0 });
          return;
        case 'event': {
          const now = new Date();
          await this.core.createNamespacedEvent({
            namespace,
            body: {
              metadata: { generateName: `${name}.`, namespace },
              involvedObject: { apiVersion: job.apiVersion, kind: job.kind, name, namespace, uid: job.metadata.uid, resourceVersion: job.metadata.resourceVersion },
              type: a.eventType, reason: a.reason, message: a.message, count: 1,
              firstTimestamp: now, lastTimestamp: now, source: { component: this.component }, reportingComponent: this.component,
            },
          });
          return;
        }
        case 'release':
          return;
      }
    } catch (err) {
      const code = statusCodeOf(err);
      if (code === 404) return;
      if (code === 409 && a.type !== 'createPod') throw new ConflictError(`${namespace}/${name}`, a.type, { cause: err });
      if (code === 409) return; // the pod exists already: the pod watch will show it
      throw err;
    }
  }
}
