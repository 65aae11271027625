/**
 * Preemption targets, computed over a snapshot (Kueue's preemption.go split: this file says whom
 * to preempt; SchedulerCore applies it by sending notices and releasing holds later).
 *
 * Pure: no ledger, no clock. The caller passes each candidate's holds and the devices' free bytes;
 * whether the preemptor fits is the one outside capability (`FitCheck`, STYLE 3), because only the
 * planner knows how a job's stages spread over devices.
 */
import type { JobSource, JobSpec } from './types.js';

/** A job's rank: higher priority first, then local above network at equal priority. */
export interface PriorityClass {
  priority: number;
  source: JobSource;
}

export function priorityClassOf(spec: Pick<JobSpec, 'priority' | 'source'>): PriorityClass {
  return { priority: spec.priority ?? 0, source: spec.source ?? 'local' };
}

/** > 0 when `a` ranks above `b`, < 0 below, 0 equal. Admission order and preemption share it. */
export function compareClass(a: PriorityClass, b: PriorityClass): number {
  if (a.priority !== b.priority) return a.priority - b.priority;
  return (a.source === 'local' ? 1 : 0) - (b.source === 'local' ? 1 : 0);
}

/** A job that holds capacity and might be preempted. */
export interface PreemptionCandidate {
  jobId: string;
  class: PriorityClass;
  /** Admission order (larger = admitted later); among equals the most recent goes first. */
  seq: number;
  /** deviceId -> bytes held: the whole gang, released all together or not at all. */
  holds: ReadonlyMap<string, number>;
}

/** Would the preemptor's plan fit if each device had this much free? */
export interface FitCheck {
  fits(free: ReadonlyMap<string, number>): boolean;
}

export interface PreemptionOptions {
  /**
   * Up to this many candidates the search is exact (fewest victims, all subsets by size: up to
   * 2^n - 1 planner calls); above it, greedy removal in candidate order then fill-back (Kueue's
   * minimalPreemptions: at most 2n calls, minimal but not always smallest).
   * @default 6
   */
  exactMaxCandidates?: number;
}

/**
 * Who may preempt whom: local jobs preempt network jobs (which run on capacity sold while idle),
 * whatever their priorities; priorities among local jobs, or among network jobs, only order
 * admission and never evict a running job.
 */
export function mayPreempt(preemptor: PriorityClass, victim: PriorityClass): boolean {
  return preemptor.source === 'local' && victim.source === 'network';
}

/** Candidates `preemptor` may preempt, lowest class first, then most recently admitted first. */
export function orderCandidates(preemptor: PriorityClass, all: readonly PreemptionCandidate[]): PreemptionCandidate[] {
  return all
    .filter((c) => mayPreempt(preemptor, c.class))
    .sort((a, b) => compareClass(a.class, b.class) || b.seq - a.seq);
}

function freeWithout(free: ReadonlyMap<string, number>, victims: readonly PreemptionCandidate[]): Map<string, number> {
  const out = new Map(free);
  for (const v of victims) for (const [d, bytes] of v.holds) out.set(d, (out.get(d) ?? 0) + bytes);
  return out;
}

/**
 * The jobs to preempt so that the preemptor fits ([] when it fits already), or undefined when
 * preempting every candidate would still not make room (then nobody is preempted). Never returns a victim whose release
 * is not needed: with few candidates the set is a smallest one (ties: the earliest in candidate
 * order, i.e. lowest class and most recent first); with many it is minimal (no victim can be
 * given back), as in Kueue.
 */
export function preemptionTargets(
  preemptor: PriorityClass,
  candidates: readonly PreemptionCandidate[],
  free: ReadonlyMap<string, number>,
  fit: FitCheck,
  options: PreemptionOptions = {},
): string[] | undefined {
  if (fit.fits(free)) return [];
  const ordered = orderCandidates(preemptor, candidates);
  if (ordered.length === 0 || !fit.fits(freeWithout(free, ordered))) return undefined;
  const exactMax = options.exactMaxCandidates ?? 6;
  const chosen = ordered.length <= exactMax ? smallestSet(ordered, free, fit) : greedyFillBack(ordered, free, fit);
  return chosen.map((c) => c.jobId);
}

/** Subsets by increasing size, each size in lexicographic index order; the first that fits. */
function smallestSet(ordered: readonly PreemptionCandidate[], free: ReadonlyMap<string, number>, fit: FitCheck): PreemptionCandidate[] {
  for (let k = 1; k <= ordered.length; k++) {
    const idx = Array.from({ length: k }, (_, i) => i);
    for (;;) {
      const set = idx.map((i) => ordered[i]!);
      if (fit.fits(freeWithout(free, set))) return set;
      let i = k - 1;
      while (i >= 0 && idx[i] === ordered.length - k + i) i--;
      if (i < 0) break;
      idx[i]!++;
      for (let j = i + 1; j < k; j++) idx[j] = idx[j - 1]! + 1;
    }
  }
  return [...ordered]; // unreachable: the caller checked that all of them fit
}

function greedyFillBack(ordered: readonly PreemptionCandidate[], free: ReadonlyMap<string, number>, fit: FitCheck): PreemptionCandidate[] {
  const chosen: PreemptionCandidate[] = [];
  for (const c of ordered) {
    chosen.push(c);
    if (fit.fits(freeWithout(free, chosen))) break;
  }
  // Give back, latest-added first (skipping the one that made it fit), any victim not needed.
  for (let i = chosen.length - 2; i >= 0; i--) {
    const without = chosen.filter((_, j) => j !== i);
    if (fit.fits(freeWithout(free, without))) chosen.splice(i, 1);
  }
  return chosen;
}
