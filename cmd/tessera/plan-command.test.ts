import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGpt } from '../../pkg/models/index.js';
import { encodeModel } from '../../pkg/onnx/index.js';
import { costChain } from '../../pkg/costmodel/index.js';
import { PlanInfeasibleError, parseFleet, planPipeline, readProfiles, type Plan } from '../../pkg/planner/index.js';
import { UsageError } from './errors.js';
import { bestEvenSplit, makePlanCommand } from './plan-command.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-plan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const gpt = buildGpt({ vocab: 128, layers: 6, dModel: 64, heads: 4, context: 32, seed: 3 });
const modelPath = join(dir, 'gpt.onnx');
writeFileSync(modelPath, encodeModel(gpt));

// Measured-looking overrides keep the numbers independent of catalog edits; slow enough that
// compute dominates the links, so the best plan uses several stages.
const fleetYaml = `devices:
  - { profile: L4-24GB, id: fast, overrides: { flops: 1e10, bandwidth: 1.25e9, latency: 3e-5 } }
  - { profile: T4-16GB, id: slow, count: 2, overrides: { flops: 2.5e9, bandwidth: 1.25e9, latency: 3e-5 } }
`;
const fleetPath = join(dir, 'fleet.yaml');
writeFileSync(fleetPath, fleetYaml);
const tinyPath = join(dir, 'tiny.yaml');
writeFileSync(tinyPath, '- { profile: T4-16GB, count: 2, overrides: { memory: 1000 } }\n');
const badPath = join(dir, 'bad.yaml');
writeFileSync(badPath, '- { profile: B300 }\n');

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await makePlanCommand({ out: (t) => (out += t), err: (t) => (err += t) }).run(argv);
  return { code, out, err };
}

/** The same plan computed directly, to check the command prints what the planner decided. */
function expected(batch: number, microBatches: number, stages: 'auto' | number = 'auto'): { plan: Plan; even: Plan | undefined } {
  const chain = costChain(gpt, { bindings: {}, microBatchSize: batch / microBatches, optimizer: 'adamw' });
  const fleet = parseFleet(fleetYaml, readProfiles());
  const opts = { microBatches, stages, schedule: '1f1b' } as const;
  return { plan: planPipeline(chain, fleet, opts), even: bestEvenSplit(chain, fleet, opts) };
}

describe('tessera plan', () => {
  test('prints one row per stage with the bottleneck starred, then step, lower bound, gap and even split', async () => {
    const r = await run('--model', modelPath, '--fleet', fleetPath, '--batch', '16', '--micro-batches', '8');
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    const { plan, even } = expected(16, 8);
    expect(plan.stages.length).toBeGreaterThan(1);
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^stage\s+device\s+layers\s+memory GB used\/avail\s+compute ms\s+comm ms\s+stage ms$/);
    const rows = lines.slice(1, 1 + plan.stages.length);
    expect(rows.filter((l) => l.endsWith(' *'))).toHaveLength(1);
    plan.stages.forEach((s, i) => {
      expect(rows[i]).toContain(`${s.deviceId} (${s.deviceName})`);
      expect(rows[i]).toContain(s.layers[1] - s.layers[0] === 1 ? ` ${s.layers[0]} ` : ` ${s.layers[0]}-${s.layers[1] - 1} `);
      expect(rows[i]).toContain(s.stageMs.toFixed(3));
      expect(rows[i]!.endsWith(' *')).toBe(i === plan.bottleneckStage);
    });
    expect(r.out).toContain(`predicted step: ${plan.predictedStepMs.toFixed(3)} ms`);
    expect(r.out).toContain(`lower bound:    ${plan.lowerBoundMs.toFixed(3)} ms (gap ${plan.gap.toFixed(2)}x)`);
    expect(even).toBeDefined();
    expect(r.out).toContain(`best even split: ${even!.predictedStepMs.toFixed(3)} ms`);
    // The planner searches every split the even baseline could pick, so its objective, (m + p - 1) x
    // bottleneck, is never worse (predictedStepMs is each plan's schedule simulated).
    const objective = (pl: Plan): number => (pl.microBatches + pl.stages.length - 1) * pl.bottleneckMs;
    expect(objective(plan)).toBeLessThanOrEqual(objective(even!) * (1 + 1e-12));
  });

  test('layers name the segments: blocks h.i.out, then the head ending in loss', async () => {
    const r = await run('--model', modelPath, '--fleet', fleetPath, '--stages', '1');
    expect(r.code).toBe(0);
    expect(r.out.split('\n')[1]).toContain('0-6 h.0.out..loss');
  });

  test('--stages N forces N stages', async () => {
    const r = await run('--model', modelPath, '--fleet', fleetPath, '--stages', '3', '--json');
    expect(r.code).toBe(0);
    expect((JSON.parse(r.out) as Plan).stages).toHaveLength(3);
  });

  test('--json prints the plan object', async () => {
    const r = await run('--model', modelPath, '--fleet', fleetPath, '--batch', '16', '--micro-batches', '8', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual(JSON.parse(JSON.stringify(expected(16, 8).plan)));
  });

  test('an infeasible fleet prints the planner message on one line and exits 3', async () => {
    const r = await run('--model', modelPath, '--fleet', tinyPath);
    expect(r.code).toBe(3);
    expect(r.out).toBe('');
    const chain = costChain(gpt, { bindings: {}, microBatchSize: 1, optimizer: 'adamw' });
    let message = '';
    try {
      planPipeline(chain, parseFleet(await import('node:fs').then((fs) => fs.readFileSync(tinyPath, 'utf8')), readProfiles()), { microBatches: 8 });
    } catch (e) {
      expect(e).toBeInstanceOf(PlanInfeasibleError);
      message = (e as Error).message;
    }
    expect(message).not.toBe('');
    expect(r.err).toBe(`tessera plan: infeasible (fleet-memory): ${message}\n`);
  });

  test('a bad fleet file exits 3 naming the field', async () => {
    const r = await run('--model', modelPath, '--fleet', badPath);
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/^tessera plan: FleetFileError: fleet file: devices\[0\]\.profile: unknown profile "B300"/);
    expect(r.err.trimEnd().split('\n')).toHaveLength(1);
  });

  test.each([
    [['--fleet', 'f'], /--model is required/],
    [['--model', 'm', '--fleet', 'f', '--batch', '10', '--micro-batches', '4'], /multiple of --micro-batches/],
    [['--model', 'm', '--fleet', 'f', '--schedule', 'zb'], /--schedule must be one of 1f1b, gpipe/],
    [['--model', 'm', '--fleet', 'f', '--stages', 'many'], /--stages must be an integer/],
  ])('usage error %#', async (argv, message) => {
    await expect(run(...argv)).rejects.toThrow(UsageError);
    await expect(run(...argv)).rejects.toThrow(message);
  });
});
