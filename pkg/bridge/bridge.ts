/**
 * The bridge daemon's core loop, one tick at a time (STYLE 6: the caller sleeps between ticks).
 *   register()  registers the supplier with the cluster's capacity, or updates it.
 *   poll()      reads JobPosted logs from the cursor, evaluates each unhandled job (evaluate.ts)
 *               and accepts the ones that fit; each handled event is recorded before the next.
 *   step()      one non-blocking tick: poll(), then one step of every job in flight (job-task.ts);
 *               each job trains as its own task, so a preempted or long job never holds up
 *               intake, other jobs' commits, finalize or claim. Returns a pace (STYLE 6).
 *   work()      steps every job until none has work in flight here: train + commit roots +
 *               submit; after the challenge window, finalize and claim (one-shot runs, tests).
 * All persisted state lives in the StateStore file, so a new instance with the same file resumes.
 */
import { status as grpcStatus } from '@grpc/grpc-js';
import { EventLog, type Log, type Provider, type Signer, type TransactionReceipt } from 'ethers';
import { JobState, PriceUnit, ReleaseReason, type Capacity, type JobMarketClient, type SupplierRegistryClient } from '../chain/index.js';
import { DEFAULT_MEMORY_PER_MODEL_BYTE, idleCapacity, type CapacitySource, type ClusterCapacity, type HeldResources, type LoadSource } from './capacity.js';
import { ActivePhase, advance, initialState, markHandled, unhandled, type ActiveJob, type BridgeState, type StateStore } from './cursor.js';
import { evaluateJob, SkipReason, type PricePolicy } from './evaluate.js';
import { JobAbandonedError, JobInputError, JobSpecError, RunPendingError } from './errors.js';
import { parseJobSpec, type JobIntake } from './intake.js';
import { isBusy, type BridgePace, type JobTask, type RunOutcome, type RunTask } from './job-task.js';
import type { BridgeSnapshot } from './metrics.js';
import { SchedulerLease, clipDetail, networkJobSpec, type LeaseClient } from './lease.js';
import type { JobRunner, RunControl, RunProgress, RunnableJob, YieldOutcome } from './runner.js';

/** Predicts seconds per optimizer step of a model on the idle capacity (e.g. pkg/costmodel). */
export interface StepTimePredictor {
  stepSeconds(modelBytes: bigint, idle: ClusterCapacity): number;
}

/** Everything the bridge reports; `skipped` carries the reason. Never holds secrets. */
export type BridgeEvent =
  | { type: 'registered'; supplier: string; stake: bigint }
  | { type: 'capacity-updated'; supplier: string }
  | { type: 'skipped'; jobId: bigint; reason: SkipReason; detail: string }
  | { type: 'accepted'; jobId: bigint; predictedSeconds: number }
  | { type: 'root-committed'; jobId: bigint; index: number; root: string }
  | { type: 'submitted'; jobId: bigint; finalTraceRoot: string; resultDigest: string; challengeEndsAt: bigint }
  | { type: 'released'; jobId: bigint; code: ReleaseReason; reason: string }
  /** A local job took the capacity: checkpoint written at `step`, capacity yielded. */
  | { type: 'preempted'; jobId: bigint; byJobId: string; step: number; steps: number }
  | { type: 'resumed'; jobId: bigint; step: number; waitedMs: number }
  | { type: 'dropped'; jobId: bigint; detail: string }
  | { type: 'finalized'; jobId: bigint; gasPaid: bigint }
  | { type: 'claimed'; amount: bigint; gasPaid: bigint };

export interface BridgeDeps {
  signer: Signer;
  provider: Provider;
  registry: SupplierRegistryClient;
  market: JobMarketClient;
  store: StateStore;
  capacity: CapacitySource;
  load: LoadSource;
  runner: JobRunner;
  predictor: StepTimePredictor;
  /**
   * The cluster scheduler (pkg/scheduler SchedulerClient). With it, each network job holds its
   * capacity as a scheduler job of source `network`, so local jobs preempt it (lease.ts); without
   * it, the bridge trains without asking anyone.
   * @default undefined
   */
  scheduler?: LeaseClient;
  /** @default ignore */
  log?: (e: BridgeEvent) => void;
}

export interface BridgeOptions {
  /** Stake to hold in the registry, wei (topped up with addStake if below). */
  stake: bigint;
  /** Acceptance price policy. */
  policy: PricePolicy;
  /** First block to read when no state file exists. @default 0 */
  fromBlock?: number;
  /** Training memory per parameter byte. @default 16 */
  memoryPerModelByte?: bigint;
  /** Seconds kept free before a deadline. @default 60 */
  marginSeconds?: number;
  /** Most blocks per eth_getLogs call (public RPC endpoints cap the span). @default 2000 */
  maxBlockRange?: number;
  /** How often a preempted job polls the scheduler. @default 250 */
  leasePollMs?: number;
}

export class Bridge {
  #state: BridgeState | undefined;
  #address: string | undefined;
  /** In-memory lifecycle of each job in flight (job-task.ts); the file holds only accepted / submitted. */
  readonly #tasks = new Map<string, JobTask>();
  /** Counts ticks, so a job running elsewhere is looked at once per tick, not once per pass. */
  #tick = 0;
  #stopping = false;
  constructor(private readonly deps: BridgeDeps, private readonly opts: BridgeOptions) {}

  private emit(e: BridgeEvent): void {
    this.deps.log?.(e);
  }

  async address(): Promise<string> {
    this.#address ??= await this.deps.signer.getAddress();
    return this.#address;
  }

  async state(): Promise<BridgeState> {
    this.#state ??= (await this.deps.store.load()) ?? initialState(this.opts.fromBlock ?? 0);
    return this.#state;
  }

  private async save(s: BridgeState): Promise<void> {
    await this.deps.store.save(s);
    this.#state = s;
  }

  private async chainTime(): Promise<bigint> {
    const b = await this.deps.provider.getBlock('latest');
    return BigInt(b?.timestamp ?? 0);
  }

  /** Registers with the cluster's capacity and the configured stake, or updates capacity and tops up stake. */
  async register(): Promise<void> {
    const me = await this.address();
    const c = await this.deps.capacity.capacity();
    const cap: Capacity = { ...c, price: this.opts.policy.minWeiPerStep, priceUnit: PriceUnit.PerStep };
    const reg = this.deps.registry.connect(this.deps.signer);
    if (!(await reg.isRegistered(me))) {
      await reg.register(cap, this.opts.stake);
      this.emit({ type: 'registered', supplier: me, stake: this.opts.stake });
      return;
    }
    await reg.updateCapacity(cap);
    const info = await reg.getSupplier(me);
    if (info.stake < this.opts.stake) await reg.addStake(this.opts.stake - info.stake);
    this.emit({ type: 'capacity-updated', supplier: me });
  }

  /** Handles new JobPosted events, in block ranges of at most maxBlockRange; returns the job ids handled. */
  async poll(): Promise<bigint[]> {
    const latest = await this.deps.provider.getBlockNumber();
    const range = Math.max(1, this.opts.maxBlockRange ?? 2000);
    const handled: bigint[] = [];
    for (let s = await this.state(); s.nextBlock <= latest; s = await this.state()) {
      handled.push(...(await this.pollRange(s.nextBlock, Math.min(latest, s.nextBlock + range - 1))));
    }
    return handled;
  }

  private async pollRange(from: number, to: number): Promise<bigint[]> {
    let s = await this.state();
    const logs = await this.deps.market.contract.queryFilter(this.deps.market.contract.filters.JobPosted!(), from, to);
    const events = logs.map((l) => ({ blockNumber: l.blockNumber, jobId: BigInt(l.topics[1] ?? 0), intake: parsePosted(l) }));
    const handled: bigint[] = [];
    for (const e of unhandled(s, events)) {
      let active: ActiveJob | undefined;
      if (e.intake instanceof JobSpecError) {
        // Malformed metadata: skipped before any fetch; marked handled like any other event, so
        // neither the next poll nor a restart evaluates it again.
        this.emit({ type: 'skipped', jobId: e.jobId, reason: SkipReason.Spec, detail: e.intake.message });
      } else {
        active = await this.handle(e.intake.job, e.intake.reward, e.intake.deadline);
      }
      s = markHandled(s, e);
      if (active) s = { ...s, active: { ...s.active, [active.jobId]: active } };
      await this.save(s);
      handled.push(e.jobId);
    }
    await this.save(advance(s, to));
    return handled;
  }

  /** Idempotent: re-reads the job on chain, so a replayed event never accepts twice. */
  private async handle(job: RunnableJob, reward: bigint, deadline: bigint): Promise<ActiveJob | undefined> {
    const me = (await this.address()).toLowerCase();
    const onChain = await this.deps.market.getJob(job.jobId);
    const record = (modelBytes?: bigint): ActiveJob => ({
      jobId: job.jobId.toString(), phase: ActivePhase.Accepted, modelURI: job.modelURI, dataURI: job.dataURI,
      modelDigest: job.modelDigest, dataDigest: job.dataDigest, steps: job.steps.toString(), reward: reward.toString(),
      ...(modelBytes !== undefined ? { modelBytes: modelBytes.toString() } : {}),
    });
    if (onChain.state !== JobState.Open) {
      if (onChain.state === JobState.Accepted && onChain.supplier.toLowerCase() === me) return record();
      this.emit({ type: 'skipped', jobId: job.jobId, reason: SkipReason.NotOpen, detail: `job is in state ${onChain.state}` });
      return undefined;
    }
    let modelBytes: bigint;
    try {
      modelBytes = (await this.deps.runner.inspect(job)).modelBytes;
    } catch (err) {
      if (!(err instanceof JobInputError)) throw err;
      this.emit({ type: 'skipped', jobId: job.jobId, reason: SkipReason.Input, detail: err.message });
      return undefined;
    }
    const idle = idleCapacity(await this.deps.capacity.capacity(), await this.held());
    const decision = evaluateJob(
      { jobId: job.jobId, reward, steps: job.steps, deadline, modelBytes, stepSeconds: this.deps.predictor.stepSeconds(modelBytes, idle) },
      { now: await this.chainTime(), idle, policy: this.opts.policy, memoryPerModelByte: this.opts.memoryPerModelByte, marginSeconds: this.opts.marginSeconds },
    );
    if (decision.type === 'skip') {
      await this.dropReservation(job.jobId); // one taken before a crash, between reserve and accept
      this.emit({ type: 'skipped', jobId: job.jobId, reason: decision.reason, detail: decision.detail });
      return undefined;
    }
    // With a scheduler, capacity is reserved before it is sold: the job is accepted on chain only
    // once the scheduler has placed it, so the next job of the same intake batch already sees the
    // reservation, and a job the fleet cannot place (e.g. no single device holds it) is not sold.
    const lease = this.deps.scheduler ? await this.lease(job, deadline, modelBytes) : undefined;
    if (lease && (await lease.submit()) === 'pending') {
      const why = (await this.deps.scheduler!.getJob(lease.id)).reason;
      await this.dropReservation(job.jobId, lease.id);
      this.emit({ type: 'skipped', jobId: job.jobId, reason: SkipReason.Capacity, detail: `the scheduler cannot place it now: ${why}` });
      return undefined;
    }
    try {
      await this.deps.market.connect(this.deps.signer).accept(job.jobId);
    } catch (err) {
      if (lease) await this.dropReservation(job.jobId, lease.id);
      throw err;
    }
    this.emit({ type: 'accepted', jobId: job.jobId, predictedSeconds: decision.predictedSeconds });
    return record(modelBytes);
  }

  /** Cancels the job's scheduler job (`id`, or the lease's first id), if it has one; gone already is fine. */
  private async dropReservation(jobId: bigint, id = `network-${jobId}`): Promise<void> {
    if (!this.deps.scheduler) return;
    try {
      await this.deps.scheduler.cancelJob(id);
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code !== grpcStatus.NOT_FOUND && code !== grpcStatus.FAILED_PRECONDITION) throw err;
    }
  }

  /**
   * Advances every job in flight until none has work in flight in this process (each may still
   * wait on chain time or a TrainingJob): one tick's worth, for one-shot runs and tests. Between
   * passes it sleeps the pace the jobs ask for. The daemon calls step() instead.
   */
  async work(): Promise<void> {
    this.#tick++;
    for (;;) {
      const pace = await this.pass();
      if (pace.type === 'idle') return;
      await new Promise((r) => setTimeout(r, pace.afterMs));
    }
  }

  /**
   * One non-blocking tick of the daemon: intake, then one step of every job in flight. Returns
   * when each job has taken its step, never waiting for training or a preempted job; the pace
   * says when to call again (STYLE 6: the caller sleeps).
   */
  async step(): Promise<BridgePace> {
    await this.poll();
    this.#tick++;
    return this.pass();
  }

  /** Jobs in flight by lifecycle state (job-task.ts; the state file's phase for jobs not stepped yet) and wei earned: for /metrics. */
  async snapshot(): Promise<BridgeSnapshot> {
    const s = await this.state();
    const jobs: Record<string, number> = {};
    for (const a of Object.values(s.active)) {
      const state = this.#tasks.get(a.jobId)?.state ?? a.phase;
      jobs[state] = (jobs[state] ?? 0) + 1;
    }
    return { jobs, earnedWei: BigInt(s.earned) };
  }

  /**
   * Stops the jobs training in this process: each checkpoints after its current step and ends;
   * the state file keeps them accepted, so the next start resumes them from their checkpoints.
   * Resolves when every run task has ended. Call no other method afterwards.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (;;) {
      // Runs blocked on the loop are served: a root is committed (the checkpoint that follows must
      // not pass an uncommitted root), a preempted run (checkpoint on disk) ends where it waits.
      for (const [id, t] of [...this.#tasks]) {
        if (t.state === 'committing') await this.commitStep(id, t);
        else if (t.state === 'preempted') t.settle({ type: 'abandon', reason: 'the bridge is stopping' });
      }
      const running = [...this.#tasks.values()].flatMap((t) => (t.state === 'training' || t.state === 'committing' || t.state === 'preempted' || (t.state === 'released' && t.run) ? [t.run!.ended] : []));
      if (running.length === 0) break;
      await Promise.race([...running, new Promise((r) => setTimeout(r, 50))]);
    }
    this.#tasks.clear();
  }

  /** One step of every job in flight, in job order. */
  private async pass(): Promise<BridgePace> {
    let busy = false;
    let failed: { error: unknown } | undefined;
    for (const a of Object.values((await this.state()).active)) {
      try {
        await this.stepJob(a);
      } catch (error) {
        failed ??= { error }; // one job's failure does not hold up the others' steps; the tick still fails
      }
      const t = this.#tasks.get(a.jobId);
      if (t && isBusy(t)) busy = true;
    }
    if (failed) throw failed.error;
    // jobs gone from the file whose run task is still ending (released while training)
    for (const t of this.#tasks.values()) if (isBusy(t)) busy = true;
    return busy ? { type: 'busy', afterMs: this.opts.leasePollMs ?? 250 } : { type: 'idle' };
  }

  private task(jobId: string): JobTask {
    return this.#tasks.get(jobId) ?? { state: 'accepted' };
  }

  /** The job's step function: looks at its state once, does what that state needs now, never waits on the run. */
  private async stepJob(a: ActiveJob): Promise<void> {
    if (a.phase === ActivePhase.Submitted) return this.finalizeStep(a);
    const t = this.task(a.jobId);
    switch (t.state) {
      case 'accepted':
        return this.startStep(a);
      case 'elsewhere':
        if (t.tick < this.#tick) return this.startStep(a);
        return;
      case 'admitting': {
        const progress = { step: 0, steps: t.steps, secondsPerStep: 0 };
        const s = await t.lease.checkAdmission(progress, t.since);
        if (s.type === 'wait') return;
        if (s.type === 'give-up') return this.giveUp(a.jobId, t.lease, progress, s);
        this.startRun(a, t.job, t.lease);
        return;
      }
      case 'training':
        return;
      case 'committing':
        return this.commitStep(a.jobId, t);
      case 'preempted': {
        const lease = t.run.lease!;
        const s = await lease.checkAdmission(t.progress, t.since);
        if (s.type === 'wait') return;
        if (s.type === 'resume') {
          this.#tasks.set(a.jobId, { state: 'training', run: t.run });
          t.settle({ type: 'resume' });
          return;
        }
        const out = await lease.giveUp(t.progress, s);
        this.#tasks.set(a.jobId, { state: 'released', run: t.run });
        await this.dropActive(a.jobId);
        t.settle(out); // the runner ends with JobAbandonedError; the task entry goes when it has
        return;
      }
      case 'finished':
        return this.finishStep(a, t.run, t.outcome);
      case 'submitted':
      case 'finalizing':
      case 'claimed':
      case 'released':
        return; // a stale entry: the file says accepted; nothing to do until the run ends
    }
  }

  /** Commits the root the run waits on; idempotent: an index already on chain (an earlier instance, a lost answer) is not sent again. */
  private async commitStep(id: string, t: Extract<JobTask, { state: 'committing' }>): Promise<void> {
    const jobId = BigInt(id);
    const market = this.deps.market.connect(this.deps.signer);
    if (t.index >= (await market.getJob(jobId)).checkpointCount) {
      await market.commitTraceRoot(jobId, BigInt(t.index), t.root);
      this.emit({ type: 'root-committed', jobId, index: t.index, root: t.root });
    }
    this.#tasks.set(id, { state: 'training', run: t.run });
    t.settle();
  }

  /** An accepted job with nothing running here: check it is still ours and still fits, hold capacity, start the run. */
  private async startStep(a: ActiveJob): Promise<void> {
    const jobId = BigInt(a.jobId);
    const market = this.deps.market.connect(this.deps.signer);
    const onChain = await market.getJob(jobId);
    const ours = onChain.supplier.toLowerCase() === (await this.address()).toLowerCase();
    if (ours && onChain.state === JobState.Submitted) {
      // submitResult landed but its answer (or the state write) was lost: carry on from there.
      this.#tasks.set(a.jobId, { state: 'submitted' });
      await this.setActive({ ...a, phase: ActivePhase.Submitted, challengeEndsAt: onChain.challengeEndsAt.toString() });
      return;
    }
    if (onChain.state !== JobState.Accepted || !ours) {
      this.emit({ type: 'dropped', jobId, detail: `job is in state ${onChain.state}, no longer ours to run` });
      this.#tasks.delete(a.jobId);
      await this.dropActive(a.jobId);
      return;
    }
    if ((await this.chainTime()) >= onChain.deadline) {
      this.emit({ type: 'dropped', jobId, detail: 'deadline passed before it ran; the submitter can reclaim it' });
      this.#tasks.delete(a.jobId);
      await this.dropActive(a.jobId);
      return;
    }
    const job = jobOf(a);
    // a job already running elsewhere is past the point of handing it back for fit or time
    const started = (await this.deps.runner.started?.(job)) === true;
    if (this.deps.scheduler) {
      // It holds the capacity reserved at accept (submit finds it; a restarted scheduler is asked
      // again). Admitted: the deadline is checked and the run starts; else it waits for admission.
      const lease = await this.lease(job, onChain.deadline);
      if ((await lease.submit()) === 'pending') {
        this.#tasks.set(a.jobId, { state: 'admitting', job, lease, since: Date.now(), steps: Number(job.steps) });
        return;
      }
      const progress = { step: 0, steps: Number(job.steps), secondsPerStep: 0 };
      const late = started ? undefined : await lease.checkDeadline(progress, 'not started');
      if (late) return this.giveUp(a.jobId, lease, progress, late);
      this.startRun(a, job, lease);
      return;
    }
    const recheck = started ? undefined : await this.recheck(a, onChain.deadline);
    if (recheck !== undefined) {
      // Local work took the capacity (or time ran short) since accept: hand the job back now,
      // free before the deadline, rather than time out and lose the bond.
      await this.release(jobId, ReleaseReason.CapacityTaken, recheck);
      this.#tasks.delete(a.jobId);
      await this.dropActive(a.jobId);
      return;
    }
    this.startRun(a, job, undefined);
  }

  /** A job that never ran here is released on chain (lease.giveUp) and forgotten. */
  private async giveUp(jobId: string, lease: SchedulerLease, progress: RunProgress, g: Parameters<SchedulerLease['giveUp']>[1]): Promise<void> {
    await lease.giveUp(progress, g);
    this.#tasks.delete(jobId);
    await this.dropActive(jobId);
  }

  /** Starts the job's run as its own task; the task talks to the loop only through its state. */
  private startRun(a: ActiveJob, job: RunnableJob, lease: SchedulerLease | undefined): void {
    const id = a.jobId;
    const run: RunTask = { job, lease, ended: Promise.resolve() };
    const commit = (index: number, root: string): Promise<void> =>
      new Promise((settle) => this.#tasks.set(id, { state: 'committing', run, index, root, settle }));
    // Yields to a preempting local job (with a lease), or to stop(): then the checkpoint is on
    // disk and the run ends; the job stays accepted in the file and a restart resumes from it.
    const control: RunControl = {
      shouldYield: async (p) => this.#stopping || (lease !== undefined && (await lease.shouldYield(p))),
      yielded: async (p) => {
        if (this.#stopping || lease === undefined) return { type: 'abandon', reason: 'the bridge is stopping' };
        if ((await lease.confirmCheckpoint(p)) === 'resume') return { type: 'resume' };
        return new Promise<YieldOutcome>((settle) => this.#tasks.set(id, { state: 'preempted', run, progress: p, since: Date.now(), settle }));
      },
    };
    const end = (outcome: RunOutcome): void => {
      const t = this.#tasks.get(id);
      if (t?.state === 'released' && t.run === run) this.#tasks.delete(id); // given up by the loop: nothing left to do
      else this.#tasks.set(id, { state: 'finished', run, outcome });
    };
    this.#tasks.set(id, { state: 'training', run });
    run.ended = this.deps.runner.run(job, commit, control).then((result) => end({ type: 'done', result }), (error: unknown) => end({ type: 'failed', error }));
  }

  /** The run returned or threw: submit, release, look again next tick, or re-raise. */
  private async finishStep(a: ActiveJob, run: RunTask, outcome: RunOutcome): Promise<void> {
    const jobId = BigInt(a.jobId);
    const market = this.deps.market.connect(this.deps.signer);
    this.#tasks.delete(a.jobId);
    if (outcome.type === 'failed') {
      const err = outcome.error;
      if (err instanceof RunPendingError) {
        this.#tasks.set(a.jobId, { state: 'elsewhere', tick: this.#tick }); // runs elsewhere (Kubernetes): look again next tick
        return;
      }
      if (err instanceof JobAbandonedError) {
        await this.dropActive(a.jobId); // released on chain with its reason
        return;
      }
      await run.lease?.finish('failed', err instanceof Error ? err.message : String(err));
      if (!(err instanceof JobInputError)) throw err; // the next tick starts it again (from its checkpoint)
      // Release is free before the deadline; a silent timeout slashes the bond.
      await this.release(jobId, ReleaseReason.InputUnusable, err.message);
      await this.dropActive(a.jobId);
      return;
    }
    const result = outcome.result;
    await run.lease?.finish('complete', `trained ${run.job.steps} steps`);
    await market.submitResult(jobId, result.finalTraceRoot, result.resultDigest);
    const challengeEndsAt = (await market.getJob(jobId)).challengeEndsAt;
    this.emit({ type: 'submitted', jobId, finalTraceRoot: result.finalTraceRoot, resultDigest: result.resultDigest, challengeEndsAt });
    this.#tasks.set(a.jobId, { state: 'submitted' });
    await this.setActive({ ...a, phase: ActivePhase.Submitted, challengeEndsAt: challengeEndsAt.toString() });
  }

  /** A submitted job: after the challenge window, finalize (unless disputed) and claim. */
  private async finalizeStep(a: ActiveJob): Promise<void> {
    const jobId = BigInt(a.jobId);
    const market = this.deps.market.connect(this.deps.signer);
    if ((await this.chainTime()) < BigInt(a.challengeEndsAt ?? '0')) {
      this.#tasks.set(a.jobId, { state: 'submitted' });
      return;
    }
    this.#tasks.set(a.jobId, { state: 'finalizing' });
    const job = await market.getJob(jobId);
    if (job.state === JobState.Submitted) {
      const r = await market.finalize(jobId);
      this.emit({ type: 'finalized', jobId, gasPaid: r.fee });
    } else if (job.state === JobState.Disputed) {
      return; // the dispute game decides; the bridge waits
    }
    await this.claim();
    const s = await this.state();
    const { [a.jobId]: _done, ...rest } = s.active;
    await this.save({ ...s, active: rest, earned: job.state === JobState.Submitted || job.state === JobState.Finalized ? (BigInt(s.earned) + BigInt(a.reward)).toString() : s.earned });
    this.#tasks.delete(a.jobId); // claimed
  }

  /** Hands the job back on chain (free before the deadline) with the reason in JobReleased, and logs it. */
  private async release(jobId: bigint, code: ReleaseReason, reason: string): Promise<void> {
    await this.deps.market.connect(this.deps.signer).release(jobId, code, clipDetail(reason));
    this.emit({ type: 'released', jobId, code, reason });
  }

  /** The job's hold on capacity through the scheduler; releases on chain when it must give up. */
  private async lease(job: RunnableJob, deadline: bigint, inspected?: bigint): Promise<SchedulerLease> {
    const modelBytes = inspected ?? (await this.deps.runner.inspect(job)).modelBytes;
    const idle = idleCapacity(await this.deps.capacity.capacity(), await this.held(job.jobId.toString()));
    return new SchedulerLease({
      client: this.deps.scheduler!,
      schedulerJobId: `network-${job.jobId}`,
      spec: networkJobSpec(`network-${job.jobId}`, modelBytes, this.opts.memoryPerModelByte ?? DEFAULT_MEMORY_PER_MODEL_BYTE),
      deadline,
      chainTime: () => this.chainTime(),
      predictedSecondsPerStep: this.deps.predictor.stepSeconds(modelBytes, idle),
      marginSeconds: this.opts.marginSeconds ?? 60,
      release: (code, detail) => this.release(job.jobId, code, detail),
      pollMs: this.opts.leasePollMs,
      log: (e) => {
        if (e.type === 'preempted') this.emit({ type: 'preempted', jobId: job.jobId, byJobId: e.byJobId, step: e.step, steps: e.steps });
        else if (e.type === 'resumed') this.emit({ type: 'resumed', jobId: job.jobId, step: e.step, waitedMs: e.waitedMs });
      },
    });
  }

  /** Re-evaluates an accepted job against the capacity idle now; a reason to release it, or undefined. */
  private async recheck(a: ActiveJob, deadline: bigint): Promise<string | undefined> {
    const job = jobOf(a);
    let modelBytes: bigint;
    try {
      modelBytes = (await this.deps.runner.inspect(job)).modelBytes;
    } catch (err) {
      if (err instanceof JobInputError) return err.message;
      throw err;
    }
    const idle = idleCapacity(await this.deps.capacity.capacity(), await this.held(job.jobId.toString()));
    const d = evaluateJob(
      { jobId: job.jobId, reward: BigInt(a.reward), steps: job.steps, deadline, modelBytes, stepSeconds: this.deps.predictor.stepSeconds(modelBytes, idle) },
      // the price was agreed at accept; only fit and time are re-checked
      { now: await this.chainTime(), idle, policy: { minWeiPerStep: 0n }, memoryPerModelByte: this.opts.memoryPerModelByte, marginSeconds: this.opts.marginSeconds },
    );
    return d.type === 'skip' ? `${d.reason}: ${d.detail}` : undefined;
  }

  /**
   * What the load source reports, plus this bridge's own accepted jobs that it cannot see, so the
   * capacity the policy sells is sold once: concurrent jobs are bounded by it. With a scheduler
   * each job holds its capacity as a scheduler job from before it is accepted (reserve, then sell),
   * counted by a scheduler load source (SchedulerLoadSource), so nothing is added. `except`: the
   * job being re-checked.
   */
  private async held(except?: string): Promise<HeldResources> {
    const h = await this.deps.load.held();
    if (this.deps.scheduler) return h;
    let memory = h.memoryBytes;
    for (const a of Object.values((await this.state()).active)) {
      if (a.phase !== ActivePhase.Accepted || a.jobId === except) continue;
      const modelBytes = a.modelBytes !== undefined ? BigInt(a.modelBytes) : (await this.deps.runner.inspect(jobOf(a)).catch(() => ({ modelBytes: 0n }))).modelBytes; // unusable input: released at its next step
      memory += modelBytes * (this.opts.memoryPerModelByte ?? DEFAULT_MEMORY_PER_MODEL_BYTE);
    }
    return { ...h, memoryBytes: memory };
  }

  /** Withdraws the supplier's credits, if any. */
  async claim(): Promise<{ amount: bigint; receipt?: TransactionReceipt }> {
    const market = this.deps.market.connect(this.deps.signer);
    const amount = await market.credits(await this.address());
    if (amount === 0n) return { amount };
    const receipt = await market.claim();
    this.emit({ type: 'claimed', amount, gasPaid: receipt.fee });
    return { amount, receipt };
  }

  async tick(): Promise<void> {
    await this.poll();
    await this.work();
  }

  private async dropActive(jobId: string): Promise<void> {
    const s = await this.state();
    const { [jobId]: _gone, ...rest } = s.active;
    await this.save({ ...s, active: rest });
  }

  private async setActive(a: ActiveJob): Promise<void> {
    const s = await this.state();
    await this.save({ ...s, active: { ...s.active, [a.jobId]: a } });
  }
}

function jobOf(a: ActiveJob): RunnableJob {
  return { jobId: BigInt(a.jobId), modelURI: a.modelURI, dataURI: a.dataURI, modelDigest: a.modelDigest, dataDigest: a.dataDigest, steps: BigInt(a.steps) };
}

/** A JobPosted log as a typed intake, or the JobSpecError that says which field is wrong. */
function parsePosted(l: Log): JobIntake | JobSpecError {
  const jobId = BigInt(l.topics[1] ?? 0);
  if (!(l instanceof EventLog)) return new JobSpecError(jobId, 'log', 'JobPosted log does not decode with this market\'s ABI');
  try {
    const spec = l.args[4] as { toObject?: () => unknown } | undefined;
    return parseJobSpec(jobId, l.args[2] as bigint, spec?.toObject?.() ?? spec);
  } catch (err) {
    if (err instanceof JobSpecError) return err;
    throw err;
  }
}
