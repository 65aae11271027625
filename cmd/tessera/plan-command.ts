import { readFile } from 'node:fs/promises';
import { costChain, type Optimizer } from '../../pkg/costmodel/index.js';
import { decodeModel } from '../../pkg/onnx/index.js';
import {
  PlanInfeasibleError, evenSplitPlan, parseFleet, planPipeline, readProfiles, parseProfiles,
  type Device, type ModelChain, type Plan, type PlanOptions,
} from '../../pkg/planner/index.js';
import type { Command } from './commands.js';
import { ExitCode, UsageError, formatError } from './errors.js';
import { choiceFlag, intFlag, parseFlags, strFlag } from './flags.js';

const help = `usage: tessera plan --model FILE --fleet FILE [flags]

  --model FILE              ONNX model (cut points from metadata tessera.cuts, else single-tensor boundaries)
  --fleet FILE              fleet YAML: [{ profile, count, id, overrides: { flops, memory, bandwidth, latency } }]
                            or { precision, efficiency, memoryReserve, devices: [...] } (see pkg/planner/profiles.ts)
  --profiles FILE           device profiles YAML (default: the bundled pkg/planner/profiles.yaml)
  --batch B                 samples per optimizer step (default: one per micro-batch)
  --micro-batches M         micro-batches per step; B must be a multiple of M (default 8)
  --stages N|auto           pipeline stages (default auto)
  --schedule 1f1b|gpipe     (default 1f1b)
  --optimizer adamw|sgd|sgd-momentum
                            optimizer state to hold (default adamw; "tessera train --optimizer sgd"
                            keeps momentum 0.9 by default: plan it as sgd-momentum)
  --json                    print the plan object as JSON

Exit codes: 0 planned, 2 usage, 3 bad input or no feasible plan (the reason on one line).
`;

/** Where the command writes; process streams unless a test passes its own (STYLE 3). */
export interface PlanIO {
  out(text: string): void;
  err(text: string): void;
}

const processIO: PlanIO = { out: (t) => void process.stdout.write(t), err: (t) => void process.stderr.write(t) };

/** Errors that mean "fix your input": reported as one line with exit code 3 here, since main's table predates them. */
const BAD_INPUT = new Set([
  'PlanInfeasibleError', 'PlanInputError', 'FleetFileError', 'ProfileError', 'UnknownCutError', 'InvalidCutError', 'CostOptionsError',
  'OnnxDecodeError', 'UnsupportedOpError', 'ShapeInferenceError', 'DynamicShapeError', 'GraphError',
]);

export function makePlanCommand(io: PlanIO = processIO): Command {
  return {
    name: 'plan',
    summary: 'plan a pipeline: split an ONNX model over a fleet of devices and predict the step time',
    async run(argv) {
      const { values } = parseFlags(argv, {
        model: { type: 'string' }, fleet: { type: 'string' }, profiles: { type: 'string' }, batch: { type: 'string' },
        'micro-batches': { type: 'string' }, stages: { type: 'string' }, schedule: { type: 'string' }, optimizer: { type: 'string' },
        json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      });
      if (values.help) { io.out(help); return 0; }
      const modelPath = strFlag(values, 'model');
      const fleetPath = strFlag(values, 'fleet');
      const microBatches = intFlag(values, 'micro-batches', 8);
      const batch = intFlag(values, 'batch', microBatches);
      if (batch % microBatches !== 0) throw new UsageError(`--batch (${batch}) must be a multiple of --micro-batches (${microBatches})`);
      const rawStages = strFlag(values, 'stages', 'auto');
      const stages = rawStages === 'auto' ? 'auto' : intFlag(values, 'stages', undefined);
      const schedule = choiceFlag(values, 'schedule', ['1f1b', 'gpipe'] as const, '1f1b');
      const optimizer: Optimizer = choiceFlag(values, 'optimizer', ['adamw', 'sgd', 'sgd-momentum'] as const, 'adamw');
      const options: PlanOptions = { microBatches, stages, schedule };
      try {
        const profiles = values.profiles === undefined ? readProfiles() : parseProfiles(await readFile(String(values.profiles), 'utf8'));
        const fleet = parseFleet(await readFile(fleetPath, 'utf8'), profiles);
        const model = decodeModel(new Uint8Array(await readFile(modelPath)));
        const chain = costChain(model, { bindings: {}, microBatchSize: batch / microBatches, optimizer });
        const plan = planPipeline(chain, fleet, options);
        if (values.json === true) {
          io.out(`${JSON.stringify(plan, null, 2)}\n`);
        } else {
          io.out(formatPlan(plan, chain, bestEvenSplit(chain, fleet, options)));
        }
        return 0;
      } catch (err) {
        if (!(err instanceof Error) || !BAD_INPUT.has(err.name)) throw err;
        const line = err instanceof PlanInfeasibleError ? `infeasible (${err.reason}): ${err.message}` : formatError(err);
        io.err(`tessera plan: ${line.replace(/\s*\n\s*/g, ' ')}\n`);
        return ExitCode.badInput;
      }
    },
  };
}

export const planCommand: Command = makePlanCommand();

/**
 * The baseline a plan is compared with: layers split evenly over natural device orders (fastest
 * first, slowest first, most memory first, as listed), each truncated to its first k devices for
 * every k (k = the forced stage count when --stages is a number); the fastest feasible one wins.
 * undefined when no even split fits.
 */
export function bestEvenSplit(chain: ModelChain, fleet: readonly Device[], options: PlanOptions): Plan | undefined {
  const orders = [
    [...fleet].sort((a, b) => b.flops - a.flops),
    [...fleet].sort((a, b) => a.flops - b.flops),
    [...fleet].sort((a, b) => b.memoryBytes - a.memoryBytes),
    [...fleet],
  ];
  const forced = typeof options.stages === 'number' ? options.stages : undefined;
  let best: Plan | undefined;
  for (const order of orders) {
    for (let k = forced ?? 1; k <= (forced ?? Math.min(order.length, chain.layers.length)); k++) {
      try {
        const plan = evenSplitPlan(chain, order.slice(0, k), options);
        if (!best || plan.predictedStepMs < best.predictedStepMs) best = plan;
      } catch (e) {
        if (!(e instanceof PlanInfeasibleError)) throw e;
      }
    }
  }
  return best;
}

const ms = (v: number): string => v.toFixed(3);
const gb = (b: number): string => (b / 1e9).toFixed(2);

/**
 * The human-readable plan: one row per stage (the bottleneck marked '*'), then the predicted
 * step, the lower bound and the gap, and the best even split for comparison.
 */
export function formatPlan(plan: Plan, chain: ModelChain, even: Plan | undefined): string {
  const name = (i: number): string => chain.layers[i]?.name ?? String(i);
  const rows = plan.stages.map((s) => [
    String(s.index),
    `${s.deviceId} (${s.deviceName})`,
    s.layers[1] - s.layers[0] === 1 ? `${s.layers[0]} ${name(s.layers[0])}` : `${s.layers[0]}-${s.layers[1] - 1} ${name(s.layers[0])}..${name(s.layers[1] - 1)}`,
    `${gb(s.memoryBytes)}/${gb(s.memoryAvailable)}`,
    ms(s.computeMs),
    ms(Math.max(s.sendMs, s.recvMs)),
    ms(s.stageMs),
  ]);
  const header = ['stage', 'device', 'layers', 'memory GB used/avail', 'compute ms', 'comm ms', 'stage ms'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]): string => cells.map((v, c) => (c >= 3 ? v.padStart(widths[c]!) : v.padEnd(widths[c]!))).join('  ').trimEnd();
  const out = [line(header), ...rows.map((r, i) => line(r) + (i === plan.bottleneckStage ? ' *' : '')), ''];
  out.push(`predicted step: ${ms(plan.predictedStepMs)} ms (${plan.stages.length} stage(s), ${plan.microBatches} micro-batches, ${plan.schedule}, ${plan.method}; * bottleneck stage ${plan.bottleneckStage})`);
  out.push(`lower bound:    ${ms(plan.lowerBoundMs)} ms (gap ${plan.gap.toFixed(2)}x)`);
  out.push(
    even
      ? `best even split: ${ms(even.predictedStepMs)} ms over ${even.stages.length} device(s) (${(even.predictedStepMs / plan.predictedStepMs).toFixed(2)}x this plan)`
      : 'best even split: none fits in memory',
  );
  return `${out.join('\n')}\n`;
}
