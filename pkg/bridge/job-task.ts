/**
 * The lifecycle of one accepted job inside a running bridge (STYLE 9: a union told apart by
 * `state`). Each job advances by its own step function (Bridge.stepJob) once per pass of the
 * bridge loop, so no job blocks another: training runs as the job's own task (a promise), and
 * whatever the task needs of the chain (a trace root to commit) or of the scheduler (re-admission
 * after preemption) it asks for by entering a state that the loop serves on its next pass. Every
 * chain write happens in the loop, one at a time (one signer, one nonce sequence).
 *
 * Persisted (cursor.ts ActivePhase) vs in memory: accepted, admitting, training, committing,
 * preempted, finished and elsewhere are all `accepted` on disk; submitted and finalizing are
 * `submitted`; claimed and released jobs leave the file. A restarted bridge starts every
 * `accepted` job again from the top: the runner resumes from its checkpoint files, deterministic
 * training reproduces the roots, and the loop skips indices already on chain.
 */
import type { JobResult, RunProgress, RunnableJob, YieldOutcome } from './runner.js';
import type { SchedulerLease } from './lease.js';

/** The job's training task: the run's promise and what it holds. */
export interface RunTask {
  job: RunnableJob;
  lease: SchedulerLease | undefined;
  /** Settles when the runner returns or throws (never rejects). */
  ended: Promise<void>;
}

export type RunOutcome = { type: 'done'; result: JobResult } | { type: 'failed'; error: unknown };

export type JobTask =
  /** On disk, nothing running here yet (or again, after a restart or a pending run elsewhere). */
  | { state: 'accepted' }
  /** Submitted to the scheduler, which has not admitted it yet; nothing trains. */
  | { state: 'admitting'; job: RunnableJob; lease: SchedulerLease; since: number; steps: number }
  /** The run task trains. */
  | { state: 'training'; run: RunTask }
  /** The run waits for the loop to commit trace root `index` on chain. */
  | { state: 'committing'; run: RunTask; index: number; root: string; settle: () => void }
  /** Checkpointed and yielded to a local job; the loop polls for re-admission and the deadline. */
  | { state: 'preempted'; run: RunTask; progress: RunProgress; since: number; settle: (o: YieldOutcome) => void }
  /** The run returned or threw; the loop submits, releases or re-raises. */
  | { state: 'finished'; run: RunTask; outcome: RunOutcome }
  /** Runs outside this process (a TrainingJob) and has not finished: looked at again next tick. */
  | { state: 'elsewhere'; tick: number }
  /** Result on chain; waits for the challenge window to end. */
  | { state: 'submitted' }
  /** Finalize and claim in progress (or waiting while the job is Disputed). */
  | { state: 'finalizing' }
  /** Paid and gone from the state file (kept only for the log). */
  | { state: 'claimed' }
  /** Handed back on chain; the run task, if any, is ending. */
  | { state: 'released'; run?: RunTask };

export type JobState = JobTask['state'];

/**
 * What a step of the loop asks of its caller (STYLE 6: the caller sleeps). `busy`: some job works
 * in this process (training, committing, waiting for re-admission): come back after `afterMs`.
 * `idle`: every job waits on the outside world (chain time, a TrainingJob): the caller's own poll
 * interval is fine.
 */
export type BridgePace = { type: 'busy'; afterMs: number } | { type: 'idle' };

/** True for states in which this process has work in flight for the job. */
export function isBusy(t: JobTask): boolean {
  switch (t.state) {
    case 'admitting':
    case 'training':
    case 'committing':
    case 'preempted':
    case 'finished':
      return true;
    case 'released':
      return t.run !== undefined;
    default:
      return false;
  }
}
