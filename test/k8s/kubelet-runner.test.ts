import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { PodSpecUnsupportedError, containerEnv, expandVars } from './kubelet-runner.js';

const pod = (env: V1Container['env']): V1Pod => ({
  metadata: { name: 'job-s1', namespace: 'ns', uid: 'u-1', labels: { 'tessera.dev/stage': '1' } },
  spec: { nodeName: 'gpu-0', containers: [{ name: 'stage', env }] },
  status: { podIP: '10.0.0.7' },
});

describe('kubelet runner: env and args as a kubelet builds them', () => {
  it.each([
    ['$(A) and $(B)', { A: 'x', B: 'y' }, 'x and y'],
    ['--id $(ID)', { ID: 'job-s1' }, '--id job-s1'],
    ['$(MISSING) stays', {}, '$(MISSING) stays'],
    ['$$(A) is escaped', { A: 'x' }, '$(A) is escaped'],
    ['no refs', { A: 'x' }, 'no refs'],
  ])('expandVars(%j)', (s, env, want) => {
    expect(expandVars(s, env)).toBe(want);
  });

  it('plain values (referring to earlier ones) and downward-API fieldRefs', () => {
    const p = pod([
      { name: 'NATS', value: 'nats://h:4222' },
      { name: 'URL', value: '$(NATS)/x' },
      { name: 'ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
      { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'STAGE', valueFrom: { fieldRef: { fieldPath: "metadata.labels['tessera.dev/stage']" } } },
    ]);
    expect(containerEnv(p, p.spec!.containers[0]!)).toEqual({ NATS: 'nats://h:4222', URL: 'nats://h:4222/x', ID: 'job-s1', NS: 'ns', NODE: 'gpu-0', IP: '10.0.0.7', STAGE: '1' });
  });

  it.each([
    [{ name: 'X', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }, /env X: only value and fieldRef are supported/],
    [{ name: 'Y', valueFrom: { fieldRef: { fieldPath: 'spec.nope' } } }, /env Y: fieldRef spec.nope is not a downward API field/],
  ])('refuses what it cannot resolve: %j', (e, msg) => {
    const p = pod([e]);
    expect(() => containerEnv(p, p.spec!.containers[0]!)).toThrow(PodSpecUnsupportedError);
    expect(() => containerEnv(p, p.spec!.containers[0]!)).toThrow(msg);
  });
});
