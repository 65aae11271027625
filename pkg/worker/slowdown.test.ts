import { jest } from '@jest/globals';
import { buildGpt } from '../models/index.js';
import { parseOptimizerConfig } from '../optim/index.js';
import { splitStages } from '../pipeline/index.js';
import { OrtSession, type SessionOptions } from '../runtime/index.js';
import { StageCompute, stagePlan } from './index.js';

// The worker's --slowdown reaches every ORT session of its stage (forward, backward, optimizer)
// through the stage plan; the throttling itself is the runtime's (timings belong in bench/).
test.each([
  { slowdown: undefined, expected: undefined },
  { slowdown: 3, expected: 3 },
])('stage sessions get slowdown $expected', async ({ slowdown, expected }) => {
  const split = splitStages(buildGpt({ vocab: 16, layers: 1, dModel: 8, heads: 2, context: 4, seed: 1 }), { cuts: 'auto', stages: 1, bindings: { batch: 1 } });
  const plan = { ...stagePlan(split, 0, parseOptimizerConfig({ kind: 'sgd', lr: 0.1 })), slowdown };
  const create = jest.spyOn(OrtSession, 'create');
  const c = new StageCompute(plan, StageCompute.initialParams(split, plan));
  try {
    await c.warm(['F', 'BW']);
    await c.update(1, 1, 0.1, []);
    const opts = create.mock.calls.map((call) => (call[1] as SessionOptions | undefined)?.slowdown);
    expect(opts).toEqual([expected, expected, expected]); // F, BW, optimizer
  } finally {
    create.mockRestore();
    await c.close();
  }
});
