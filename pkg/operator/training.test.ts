import { hexlify } from 'ethers';
import { CoreV1Api, CustomObjectsApi, Watch, type CoreV1Event, type V1Pod } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION, type TrainingJobStatus } from '../k8s/index.js';
import { buildGpt } from '../models/index.js';
import { decodeModel, encodeModel } from '../onnx/index.js';
import { Trainer, bindBatchDims } from '../train/index.js';
import { NatsBus } from '../transport/index.js';
import { sha256 } from '../verify/index.js';
import { JetStreamCheckpointStore, NatsServer, registerCheckpointStore } from '../worker/index.js';
import { startCluster, type Cluster } from '../../test/k8s/cluster.js';
import { installTrainingJobs, kubectl } from '../../test/k8s/kubectl.js';
import { KubeletRunner } from '../../test/k8s/kubelet-runner.js';
import { DriverJobRunner } from './driver-runner.js';
import { Operator } from './operator.js';
import { until } from './testing.js';
import { JOB_LABEL } from './trainingjob-reconciler.js';

// Slow: a real kube-apiserver, kube-scheduler, garbage collector and kwok GPU nodes (test/k8s), a
// real nats-server with JetStream, and one stage worker process (dist/cmd/worker) per stage pod,
// started by the test-only kubelet runner. Needs `npx tsc -p tsconfig.json` first (dist/).

const NS = 'tj-train';

interface Job {
  metadata: { name: string; uid: string };
  status?: TrainingJobStatus;
}

const CORPUS = Array.from({ length: 40 }, (_, i) => `the quick brown fox ${i % 7} jumps over the lazy dog; pack my box with five dozen liquor jugs. `).join('');

const jobBody = (name: string, steps: number, everySteps: number) => ({
  apiVersion: `${GROUP}/${VERSION}`,
  kind: 'TrainingJob',
  metadata: { name, namespace: NS },
  spec: {
    model: { source: { configMap: { name: 'tiny-gpt', key: 'model.onnx' } }, lossOutput: 'loss' },
    data: { source: { configMap: { name: 'corpus', key: 'corpus.txt' } }, batchSize: 8, microBatches: 2 },
    optimizer: { type: 'adamw', learningRate: 0.01, weightDecay: 0.0, gradClipNorm: 1.0 },
    steps,
    pipeline: { stages: 2, schedule: '1f1b' },
    placement: { maxStages: 2 },
    checkpoint: { everySteps },
  },
});

describe('training through the operator: apply to Succeeded on stage worker processes (slow)', () => {
  let cluster: Cluster;
  let nats: NatsServer;
  let core: CoreV1Api;
  let custom: CustomObjectsApi;
  let kubelet: KubeletRunner;
  let op: Operator;
  const log = (l: string): void => { if (process.env.TESSERA_TEST_LOG) process.stderr.write(`${l}\n`); };
  const getJob = async (name: string): Promise<Job> => (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, name })) as Job;
  const podsOf = async (name: string): Promise<V1Pod[]> => (await core.listNamespacedPod({ namespace: NS, labelSelector: `${JOB_LABEL}=${name}` })).items;
  const eventsOf = async (name: string): Promise<CoreV1Event[]> => (await core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name}` })).items;
  const patchSuspend = (name: string, suspend: boolean) => custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, name, body: [{ op: 'replace', path: '/spec/suspend', value: suspend }] });
  /**
   * An operator replica that runs training (a DriverJobRunner); a lost stage is noticed after 3 s of
   * silence, and status is written up to 4 times a second (default 1) so that a run of a few
   * seconds still shows its loss falling.
   */
  const operator = (identity: string): Operator => {
    const runner = new DriverJobRunner({ core, natsUrl: nats.url, checkpointStore: 'jetstream', checkpointRoot: 'e2e', livenessTimeoutMs: 3000, publishIntervalMs: 250, log });
    return new Operator({
      kubeConfig: cluster.kubeConfig(), namespace: NS, identity, watchNamespace: NS, template: { natsUrl: nats.url }, runner, log,
      leaseDurationMs: 4000, renewDeadlineMs: 3000, retryPeriodMs: 500, releaseOnStop: true,
    });
  };
  const startedFrom = async (name: string): Promise<number[]> =>
    (await eventsOf(name)).filter((e) => e.reason === 'TrainingStarted').sort((a, b) => Number(a.metadata?.resourceVersion) - Number(b.metadata?.resourceVersion)).map((e) => Number(/from step (\d+)/.exec(e.message ?? '')?.[1]));
  /** The operator writes a transition's events after the status that shows it: wait for the last (Completed). */
  const completedEvent = (name: string) => until(`${name} Completed event`, async () => (await eventsOf(name)).find((e) => e.reason === 'Completed'), 30_000, 100);
  /** Polls the job, keeping every distinct (phase, step, loss) it showed. */
  const watchJob = (name: string) => {
    const seen: Array<{ phase?: string; step?: number; loss?: string }> = [];
    const poll = async (): Promise<Job> => {
      const j = await getJob(name);
      const s = { phase: j.status?.phase, step: j.status?.progress?.step, loss: j.status?.progress?.loss };
      const prev = seen.at(-1);
      if (!prev || prev.phase !== s.phase || prev.step !== s.step || prev.loss !== s.loss) seen.push(s);
      return j;
    };
    return { seen, poll };
  };

  beforeAll(async () => {
    cluster = await startCluster({ nodes: [{ name: 'gpu-0' }, { name: 'gpu-1' }, { name: 'gpu-2' }] });
    nats = await NatsServer.start({ jetstream: true });
    core = cluster.kubeConfig().makeApiClient(CoreV1Api);
    custom = cluster.kubeConfig().makeApiClient(CustomObjectsApi);
    installTrainingJobs(cluster, NS);
    const gpt = buildGpt({ vocab: 256, layers: 2, dModel: 32, heads: 2, context: 16, seed: 1 });
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'tiny-gpt' }, binaryData: { 'model.onnx': Buffer.from(encodeModel(gpt)).toString('base64') } } });
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'corpus' }, data: { 'corpus.txt': CORPUS } } });
    kubelet = new KubeletRunner({ kubeConfig: cluster.kubeConfig(), namespace: NS, log });
    await kubelet.start();
    op = operator('op-train');
    await op.start();
    await until('op-train leads', async () => op.isLeader);
  }, 45 * 60_000);

  afterAll(async () => {
    await op?.stop();
    await kubelet?.stop();
    await nats?.stop();
    await cluster?.stop();
  }, 60_000);

  it('a TrainingJob goes Planned -> Running -> Succeeded, the loss falls in its status, kubectl shows step and loss', async () => {
    await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, body: jobBody('tiny', 120, 40) });
    const w = watchJob('tiny');
    const done = await until('tiny Succeeded', async () => {
      const j = await w.poll();
      if (j.status?.phase === 'Failed') throw new Error(`failed: ${JSON.stringify(j.status.conditions)}`);
      return j.status?.phase === 'Succeeded' ? j : undefined;
    }, 240_000, 100).catch((e: unknown) => {
      process.stderr.write(`seen ${JSON.stringify(w.seen)}\n`);
      throw e;
    });
    const phases = w.seen.map((s) => s.phase).filter((p, i, a) => p !== a[i - 1]);
    expect(phases.indexOf('Running')).toBeGreaterThanOrEqual(0);
    expect(phases.indexOf('Running')).toBeLessThan(phases.indexOf('Succeeded'));
    expect(kubelet.started).toEqual(expect.arrayContaining([`${NS}/tiny-s0`, `${NS}/tiny-s1`]));
    log(`tiny: seen ${JSON.stringify(w.seen)}`);
    const losses = w.seen.filter((s) => s.loss !== undefined).map((s) => Number(s.loss));
    expect(losses.length).toBeGreaterThanOrEqual(2);
    expect(losses.at(-1)!).toBeLessThan(losses[0]!);
    const s = done.status!;
    expect(s.progress).toMatchObject({ step: 120, lastCheckpointStep: 120 });
    expect(s.progress!.samplesPerSecond).toBeGreaterThan(0);
    expect(s.trace).toMatchObject({ stepsCovered: 120, root: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(s.conditions?.find((c) => c.type === 'Complete')).toMatchObject({ status: 'True', reason: 'Completed' });

    await completedEvent('tiny');
    const reasons = (await eventsOf('tiny')).map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['Planned', 'TrainingStarted', 'Checkpointed', 'Completed']));

    const [head, row] = kubectl(cluster, ['get', 'tj', 'tiny', '-n', NS]).trim().split('\n').map((l) => l.trim().split(/\s+/));
    expect(head!.slice(0, 5)).toEqual(['NAME', 'PHASE', 'STAGES', 'STEP', 'LOSS']);
    expect(row!.slice(0, 5)).toEqual(['tiny', 'Succeeded', '2', '120', s.progress!.loss]);
    // ... and /metrics, per job, from its status (the informer may lag the status read above by a moment)
    const series = `{name="tiny",namespace="${NS}"}`;
    const m = await until('tiny in /metrics', async () => (op.metricsText().includes(`tessera_trainingjob_step${series} 120`) ? op.metricsText() : undefined));
    expect(m).toContain(`tessera_trainingjob_steps${series} 120`);
    expect(m).toContain(`tessera_trainingjob_loss${series} ${Number(s.progress!.loss)}`);
    expect(m).toContain(`tessera_trainingjob_last_checkpoint_step${series} 120`);

    // The workers are idle once training ended: their pods go, and the kubelet stops their processes.
    await until('stage pods gone', async () => (await podsOf('tiny')).length === 0 && kubelet.running.length === 0);
  }, 300_000);

  it('a network job (source network) ends with status.result: the trained model stored beside its checkpoints, digested as the standalone bridge runner does', async () => {
    await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, body: { ...jobBody('net', 30, 20), spec: { ...jobBody('net', 30, 20).spec, source: 'network' } } });
    const done = await until('net Succeeded', async () => {
      const j = await getJob('net');
      if (j.status?.phase === 'Failed') throw new Error(`failed: ${JSON.stringify(j.status.conditions)}`);
      return j.status?.phase === 'Succeeded' ? j : undefined;
    }, 240_000, 100);
    const s = done.status!;
    const area = `e2e/${NS}/net/${done.metadata.uid}`;
    // the final root is the trace's; the model lies in the job's checkpoint area of the JetStream store
    expect(s.result).toEqual({ digest: expect.stringMatching(/^0x[0-9a-f]{64}$/), step: 30, finalTraceRoot: s.trace!.root, model: { store: 'jetstream', bucket: 'tessera-checkpoints', location: `${area}/model.onnx` } });
    expect(s.trace!.stepsCovered).toBe(30);
    const bus = await NatsBus.connect({ servers: nats.url });
    try {
      const store = new JetStreamCheckpointStore(bus.connection);
      const stored = await store.readArtifact(s.result!.model.location);
      expect(hexlify(sha256(stored))).toBe(s.result!.digest);
      // The standalone path (pkg/bridge LocalTrainRunner: a Trainer's trainedModel(), encoded and
      // hashed) over the final checkpoint's parameters gives the same digest.
      const ck = await store.read(`${area}/step-30`);
      const gpt = decodeModel(stored);
      const trainer = await Trainer.create(gpt, { bindings: bindBatchDims(gpt, 8), optimizer: { kind: 'adamw', lr: 0.01 } });
      try {
        trainer.restore({ ...trainer.snapshot(), step: ck.step, params: ck.params });
        expect(hexlify(sha256(encodeModel(trainer.trainedModel())))).toBe(s.result!.digest);
      } finally {
        await trainer.close();
      }
      // and the stored model is the source model with those parameters, nothing else changed
      const source = decodeModel(new Uint8Array(Buffer.from((await core.readNamespacedConfigMap({ name: 'tiny-gpt', namespace: NS })).binaryData!['model.onnx']!, 'base64')));
      expect([...gpt.graph.initializers.keys()].sort()).toEqual([...source.graph.initializers.keys()].sort());
      expect(Object.keys(ck.params).length).toBeGreaterThan(0);
      const bytesOf = (d: ArrayBufferView): Buffer => Buffer.from(d.buffer, d.byteOffset, d.byteLength);
      for (const [name, t] of Object.entries(ck.params)) expect(bytesOf(gpt.graph.initializers.get(name)!.data).equals(bytesOf(t.data))).toBe(true);
    } finally {
      await bus.close();
    }
    const completed = await completedEvent('net');
    expect(completed?.message).toContain(s.result!.digest);
  }, 300_000);

  it('a result that cannot be stored ends the run restartably: the next run resumes from the final checkpoint, takes no step and stores it', async () => {
    // This process's 'jetstream' store (the operator's; the workers are other processes with their
    // own) refuses the first artifact write, as a JetStream outage at that moment would.
    let refused = 0;
    registerCheckpointStore('jetstream', ({ bus }) => {
      const store = new JetStreamCheckpointStore((bus as NatsBus).connection);
      const write = store.writeArtifact.bind(store);
      store.writeArtifact = async (dir, name, bytes) => {
        if (refused++ === 0) throw new Error('object store unavailable');
        return write(dir, name, bytes);
      };
      return store;
    });
    try {
      await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, body: jobBody('unstored', 30, 20) });
      const done = await until('unstored Succeeded', async () => {
        const j = await getJob('unstored');
        if (j.status?.phase === 'Failed') throw new Error(`failed: ${JSON.stringify(j.status.conditions)}`);
        return j.status?.phase === 'Succeeded' ? j : undefined;
      }, 240_000, 100);
      expect(refused).toBe(2);
      // Events follow the status write that showed Succeeded; Completed is the last of them.
      await completedEvent('unstored');
      // two runs: from 0, then from the final checkpoint (step 30), which took no step
      expect(await startedFrom('unstored')).toEqual([0, 30]);
      const s = done.status!;
      expect(s.result).toMatchObject({ step: 30, finalTraceRoot: s.trace!.root, model: { location: `e2e/${NS}/unstored/${done.metadata.uid}/model.onnx` } });
      expect(s.trace!.stepsCovered).toBe(30);
      const bus = await NatsBus.connect({ servers: nats.url });
      try {
        expect(hexlify(sha256(await new JetStreamCheckpointStore(bus.connection).readArtifact(s.result!.model.location)))).toBe(s.result!.digest);
      } finally {
        await bus.close();
      }
    } finally {
      registerCheckpointStore('jetstream', ({ bus, bucket }) => new JetStreamCheckpointStore((bus as NatsBus).connection, { bucket })); // as pkg/worker registers it
    }
  }, 300_000);

  it('suspend while Running checkpoints and removes the pods; resume continues from that checkpoint to the end', async () => {
    await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, body: jobBody('pausable', 400, 1000) });
    const w = watchJob('pausable');
    await until('pausable Running at step >= 5', async () => {
      const j = await w.poll();
      if (j.status?.phase === 'Succeeded') throw new Error('finished before the test could suspend it');
      return j.status?.phase === 'Running' && (j.status.progress?.step ?? 0) >= 5;
    }, 240_000, 100);
    await patchSuspend('pausable', true);
    const suspended = await until('Suspended without pods', async () => {
      const j = await w.poll();
      return j.status?.phase === 'Suspended' && (await podsOf('pausable')).length === 0 ? j : undefined;
    }, 120_000);
    const at = suspended.status!.progress!;
    // everySteps 1000: the only checkpoint is the one the suspend took, at the step training stopped.
    expect(at.step).toBeGreaterThanOrEqual(5);
    expect(at.step).toBeLessThan(400);
    expect(at.lastCheckpointStep).toBe(at.step);
    await until('processes gone', async () => kubelet.running.length === 0);

    await patchSuspend('pausable', false);
    const done = await until('pausable Succeeded', async () => {
      const j = await w.poll();
      if (j.status?.phase === 'Failed') throw new Error(`failed: ${JSON.stringify(j.status.conditions)}`);
      return j.status?.phase === 'Succeeded' ? j : undefined;
    }, 240_000);
    // After the resume, no step below the checkpoint's was ever reported: training did not restart from 0.
    const after = w.seen.slice(w.seen.findIndex((s) => s.phase === 'Suspended') + 1).filter((s) => s.step !== undefined);
    expect(after.every((s) => s.step! >= at.step!)).toBe(true);
    // TrainingStarted names the step each run began at: 0, then the suspend's checkpoint.
    await completedEvent('pausable');
    expect(await startedFrom('pausable')).toEqual([0, at.step]);
    expect(done.status!.progress).toMatchObject({ step: 400, lastCheckpointStep: 400 });
    // The trace continues the suspended run's (its step roots come back from the checkpoint).
    expect(done.status!.trace!.stepsCovered).toBe(400);
  }, 480_000);

  it('a lost stage pod, then a leader hand-over: each new run resumes from the last checkpoint, and the job completes', async () => {
    await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, body: jobBody('resilient', 800, 20) });
    const w = watchJob('resilient');
    const notDone = (j: Job): void => {
      if (j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed') throw new Error(`${j.status.phase} before the test could interrupt it`);
    };
    const c1 = await until('a checkpoint', async () => {
      const j = await w.poll();
      notDone(j);
      return j.status?.phase === 'Running' && (j.status.progress?.lastCheckpointStep ?? 0) >= 20 ? j.status.progress!.lastCheckpointStep! : undefined;
    }, 240_000, 100);
    // The stage 1 pod goes (its worker process with it): the run loses the stage, the pod comes back.
    const old = (await podsOf('resilient')).find((p) => p.metadata?.name === 'resilient-s1')!;
    await core.deleteNamespacedPod({ name: 'resilient-s1', namespace: NS, gracePeriodSeconds: 0 });
    await until('a second run', async () => {
      notDone(await w.poll());
      return (await startedFrom('resilient')).length === 2;
    }, 120_000);
    expect((await podsOf('resilient')).find((p) => p.metadata?.name === 'resilient-s1')!.metadata?.uid).not.toBe(old.metadata?.uid);
    const c2 = (await getJob('resilient')).status!.progress!.lastCheckpointStep!;

    // Leader hand-over: the leader stops (its runs are aborted, its Lease released); the standby
    // leads and takes the job over from its status and the checkpoint store.
    const standby = operator('op-train-2');
    await standby.start();
    expect(standby.isLeader).toBe(false);
    await op.stop();
    op = standby;
    await until('op-train-2 leads', async () => op.isLeader, 15_000);
    const done = await until('resilient Succeeded', async () => {
      const j = await w.poll();
      if (j.status?.phase === 'Failed') throw new Error(`failed: ${JSON.stringify(j.status.conditions)}`);
      return j.status?.phase === 'Succeeded' ? j : undefined;
    }, 300_000);
    await completedEvent('resilient');
    const from = await startedFrom('resilient');
    expect(from).toHaveLength(3);
    expect(from[0]).toBe(0);
    // Each new run began at a checkpoint (every 20 steps) at or after the last one seen before the interruption.
    expect(from[1]! % 20).toBe(0);
    expect(from[1]).toBeGreaterThanOrEqual(c1);
    expect(from[2]! % 20).toBe(0);
    expect(from[2]).toBeGreaterThanOrEqual(Math.max(c2, from[1]!));
    expect(from[2]).toBeGreaterThan(0);
    expect(done.status!.progress).toMatchObject({ step: 800, lastCheckpointStep: 800 });
    expect(done.status!.trace!.stepsCovered).toBe(800);
  }, 600_000);

  /** Runs `name` until its first checkpoint, interrupts it with `interrupt`, and expects it to finish from a checkpoint. */
  async function interruptedRun(name: string, interrupt: (j: Job) => Promise<void>): Promise<Job> {
    await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, body: jobBody(name, 400, 20) });
    const w = watchJob(name);
    const running = await until(`${name} checkpointed`, async () => {
      const j = await w.poll();
      if (j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed') throw new Error(`${j.status.phase} before the test could interrupt it`);
      return j.status?.phase === 'Running' && (j.status.progress?.lastCheckpointStep ?? 0) >= 20 ? j : undefined;
    }, 240_000, 100);
    const c = running.status!.progress!.lastCheckpointStep!;
    await interrupt(running);
    const done = await until(`${name} Succeeded`, async () => {
      const j = await w.poll();
      if (j.status?.phase === 'Failed') throw new Error(`failed: ${JSON.stringify(j.status.conditions)}`);
      return j.status?.phase === 'Succeeded' ? j : undefined;
    }, 300_000);
    const from = await startedFrom(name);
    expect(from).toHaveLength(2);
    expect(from[0]).toBe(0);
    expect(from[1]! % 20).toBe(0);
    expect(from[1]).toBeGreaterThanOrEqual(c);
    expect(done.status!.progress).toMatchObject({ step: 400, lastCheckpointStep: 400 });
    expect(done.status!.trace!.stepsCovered).toBe(400);
    return done;
  }

  it('a worker process that dies: its pod is marked Failed (as a kubelet would), replaced, and training resumes from the last checkpoint', async () => {
    let old: V1Pod | undefined;
    await interruptedRun('crashy', async () => {
      old = (await podsOf('crashy')).find((p) => p.metadata?.name === 'crashy-s0')!;
      // Watched, not polled: the operator deletes the Failed pod right after it turns Failed.
      let failed: V1Pod | undefined;
      const watching = await new Watch(cluster.kubeConfig()).watch(`/api/v1/namespaces/${NS}/pods`, { fieldSelector: 'metadata.name=crashy-s0', resourceVersion: old.metadata?.resourceVersion }, (_type, obj: V1Pod) => {
        if (obj.metadata?.uid === old!.metadata?.uid && obj.status?.phase === 'Failed') failed ??= obj;
      }, () => {});
      process.kill(kubelet.pid(`${NS}/crashy-s0`)!, 'SIGKILL');
      // The pod's status says what became of its container, as a kubelet reports it.
      await until('crashy-s0 Failed', async () => failed, 30_000, 50).finally(() => watching.abort());
      expect(failed!.status!.containerStatuses![0]!.state!.terminated).toMatchObject({ exitCode: 137, reason: 'Error', message: 'killed by SIGKILL' });
      await until('crashy-s0 replaced', async () => (await podsOf('crashy')).some((p) => p.metadata?.name === 'crashy-s0' && p.metadata?.uid !== old!.metadata?.uid));
    });
  }, 600_000);

  it('a lost node: the job is re-planned onto the nodes left and resumes from the last checkpoint', async () => {
    let lost = '';
    const done = await interruptedRun('nodeloss', async (j) => {
      lost = j.status!.plan!.stages![1]!.node;
      await core.deleteNode({ name: lost });
    });
    expect(done.status!.plan!.stages!.map((s) => s.node)).not.toContain(lost);
    expect(done.status!.conditions!.find((c) => c.type === 'Degraded')).toMatchObject({ status: 'False', reason: 'Recovered' });
  }, 600_000);

  it('a lost node of a 2-node fleet: stages auto re-plans 2 stages onto 1, and the 1-stage run resumes the 2-stage checkpoint to Succeeded', async () => {
    // Two nodes of its own (nodeSelector) with a slow device profile, and a GPT the planner splits in 2
    // on them (on A100 profiles, or smaller, it keeps a model this size whole).
    const node = (name: string) => ({ name, labels: { pool: 'resplit' }, deviceProfile: 'CPU-32core' });
    await cluster.createNodes([node('gpu-r0'), node('gpu-r1')]);
    const gpt = buildGpt({ vocab: 256, layers: 4, dModel: 64, heads: 2, context: 32, seed: 1 });
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'small-gpt' }, binaryData: { 'model.onnx': Buffer.from(encodeModel(gpt)).toString('base64') } } });
    const body = jobBody('resplit', 30, 10);
    await custom.createNamespacedCustomObject({
      group: GROUP, version: VERSION, namespace: NS, plural: PLURAL,
      body: { ...body, spec: { ...body.spec, model: { ...body.spec.model, source: { configMap: { name: 'small-gpt', key: 'model.onnx' } } }, pipeline: { stages: 'auto', schedule: '1f1b' }, placement: { maxStages: 2, nodeSelector: { pool: 'resplit' } } } },
    });
    const w = watchJob('resplit');
    const running = await until('resplit checkpointed on 2 stages', async () => {
      const j = await w.poll();
      if (j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed') throw new Error(`${j.status.phase} before the test could interrupt it`);
      return j.status?.phase === 'Running' && (j.status.progress?.lastCheckpointStep ?? 0) >= 10 ? j : undefined;
    }, 240_000, 100);
    expect(running.status!.plan!.stages!).toHaveLength(2);
    const c = running.status!.progress!.lastCheckpointStep!;
    await core.deleteNode({ name: running.status!.plan!.stages![1]!.node });
    const done = await until('resplit Succeeded', async () => {
      const j = await w.poll();
      if (j.status?.phase === 'Failed') throw new Error(`failed: ${JSON.stringify(j.status.conditions)}`);
      return j.status?.phase === 'Succeeded' ? j : undefined;
    }, 300_000);
    expect(done.status!.plan!.stages!).toHaveLength(1);
    await completedEvent('resplit');
    const started = (await eventsOf('resplit')).filter((e) => e.reason === 'TrainingStarted').sort((a, b) => Number(a.metadata?.resourceVersion) - Number(b.metadata?.resourceVersion)).map((e) => e.message ?? '');
    expect(started).toHaveLength(2);
    expect(started[0]).toMatch(/from step 0 on 2 stage worker/);
    const from = Number(/from step (\d+)/.exec(started[1]!)?.[1]);
    expect(from % 10).toBe(0);
    expect(from).toBeGreaterThanOrEqual(c);
    expect(started[1]).toMatch(/on 1 stage worker/);
    expect(done.status!.progress).toMatchObject({ step: 30, lastCheckpointStep: 30 });
    expect(done.status!.trace!.stepsCovered).toBe(30); // the trace goes on across the re-split
  }, 600_000);
});
