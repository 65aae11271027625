import { renderMetrics } from '../metrics/index.js';
import { jobProgressFamilies } from './metrics.js';
import type { RawJob } from './trainingjob-reconciler.js';

const job = (name: string, spec: unknown, progress?: NonNullable<RawJob['status']>['progress']): RawJob => ({ metadata: { name, namespace: 'ml' }, spec, ...(progress ? { status: { progress } } : {}) });

test('per-job training progress from status: step of steps, loss, samples/s, last checkpoint; jobs without progress have no series', () => {
  const text = renderMetrics(jobProgressFamilies([
    job('b', { steps: 300 }, { step: 120, loss: '2.0312', samplesPerSecond: 48.5, lastCheckpointStep: 100 }),
    job('a', { steps: 50 }, { step: 0 }),
    job('waiting', { steps: 10 }),
    job('odd', { steps: 'many' }, { step: 3, loss: 'NaN' }),
  ]));
  const lines = text.split('\n').filter((l) => l && !l.startsWith('#'));
  expect(lines).toEqual([
    'tessera_trainingjob_step{name="a",namespace="ml"} 0',
    'tessera_trainingjob_step{name="b",namespace="ml"} 120',
    'tessera_trainingjob_step{name="odd",namespace="ml"} 3',
    'tessera_trainingjob_steps{name="a",namespace="ml"} 50',
    'tessera_trainingjob_steps{name="b",namespace="ml"} 300',
    'tessera_trainingjob_loss{name="b",namespace="ml"} 2.0312',
    'tessera_trainingjob_samples_per_second{name="b",namespace="ml"} 48.5',
    'tessera_trainingjob_last_checkpoint_step{name="b",namespace="ml"} 100',
  ]);
  expect(text).toContain('# TYPE tessera_trainingjob_loss gauge');
});
