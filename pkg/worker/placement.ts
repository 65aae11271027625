import type { ModelChain, Plan } from '../planner/index.js';

/** Where a planned job runs, in the driver's terms: one worker per stage and the cut values between stages. */
export interface Placement {
  stages: number;
  /** Worker id of stage i (a scheduler device id is the worker's id). */
  workers: string[];
  /** cuts[i]: the values ending stage i (Driver / splitStages `cuts`); stages - 1 entries. */
  cuts: string[][];
  /** Layer range [start, end) of the cost chain per stage, as planned. */
  layers: [number, number][];
}

/** A plan that cannot be turned into a placement (names the stage and what is wrong). */
export class PlacementError extends Error {
  override name = 'PlacementError';
  constructor(message: string, readonly stage?: number) {
    super(message);
  }
}

/**
 * The driver's placement of a plan over `chain` (pure): the plan's stage i covers chain layers
 * [start, end), and a chain layer is named by the cut value that ends it (pkg/costmodel costChain),
 * so stage i ends at the value named by layer end - 1.
 */
export function placementFromPlan(plan: Plan, chain: ModelChain): Placement {
  const stages = plan.stages.length;
  if (stages === 0) throw new PlacementError('the plan has no stages');
  let next = 0;
  const cuts: string[][] = [];
  plan.stages.forEach((s, i) => {
    const [start, end] = s.layers;
    if (start !== next || !(end > start)) throw new PlacementError(`stage ${i} covers layers [${start}, ${end}), expected a non-empty range from ${next}`, i);
    next = end;
    if (i === stages - 1) return;
    const cut = chain.layers[end - 1]?.name;
    if (!cut) throw new PlacementError(`stage ${i} ends at chain layer ${end - 1}, which names no cut value (chain of ${chain.layers.length} layers)`, i);
    cuts.push([cut]);
  });
  if (next !== chain.layers.length) throw new PlacementError(`the plan covers layers [0, ${next}) of a chain of ${chain.layers.length}`);
  return { stages, workers: plan.stages.map((s) => s.deviceId), cuts, layers: plan.stages.map((s) => [s.layers[0], s.layers[1]]) };
}
