import { PlanInputError } from './errors.js';
import type { Device } from './types.js';

/**
 * Device catalog: vendor peak numbers, for planning before anything is measured. Measured
 * throughput (pkg/bench) should replace `peak x efficiency` as soon as it exists.
 *
 * FLOP/s are DENSE (NVIDIA datasheets often headline 2:4-sparse figures, twice these).
 * `network` is a typical per-GPU share of the scale-out NIC in a common node type, since a
 * heterogeneous pipeline crosses nodes; `intraNode` is the GPU's own peer link, for reference.
 */
export interface CatalogEntry {
  /** Peak dense FP32 (non-tensor) FLOP/s. */
  fp32: number;
  /** Peak dense TF32 tensor FLOP/s; null where the GPU has none (Turing). */
  tf32: number | null;
  /** Peak dense BF16 tensor FLOP/s; null where unsupported (Turing). */
  bf16: number | null;
  /** Peak dense FP16 tensor FLOP/s (FP32 accumulate where the datasheet says so). */
  fp16: number;
  memoryBytes: number;
  /** Memory bandwidth, bytes/s. */
  memoryBandwidth: number;
  /** Peer link of the GPU (NVLink / PCIe), bytes/s per direction. */
  intraNode: { kind: string; bandwidth: number };
  /** Typical per-GPU share of the node's network, bytes/s per direction, and one-way latency, s. */
  network: { kind: string; bandwidth: number; latency: number };
}

const T = 1e12;
const GB = 1e9;
const GiB = 2 ** 30;
const gbit = (g: number): number => (g * 1e9) / 8;

export const CATALOG = {
  // NVIDIA H100 Tensor Core GPU datasheet (SXM5): FP32 67 TF, TF32 989 TF sparse / 494.7 dense,
  // BF16/FP16 1979 TF sparse / 989.4 dense, 80 GB HBM3 at 3.35 TB/s, NVLink 900 GB/s (both directions).
  // Network: DGX H100 user guide, 8x ConnectX-7 400 Gb/s NDR InfiniBand, one per GPU.
  'H100-SXM-80GB': {
    fp32: 67 * T,
    tf32: 494.7 * T,
    bf16: 989.4 * T,
    fp16: 989.4 * T,
    memoryBytes: 80 * GiB,
    memoryBandwidth: 3350 * GB,
    intraNode: { kind: 'NVLink 4', bandwidth: 450 * GB },
    network: { kind: 'NDR InfiniBand 400 Gb/s', bandwidth: gbit(400), latency: 5e-6 },
  },
  // NVIDIA A100 Tensor Core GPU datasheet (40GB SXM): FP32 19.5 TF, TF32 156 TF dense,
  // BF16/FP16 312 TF dense, 40 GB HBM2 at 1555 GB/s, NVLink 600 GB/s (both directions).
  // Network: DGX A100 user guide, 8x ConnectX-6 200 Gb/s HDR InfiniBand for 8 GPUs.
  'A100-SXM-40GB': {
    fp32: 19.5 * T,
    tf32: 156 * T,
    bf16: 312 * T,
    fp16: 312 * T,
    memoryBytes: 40 * GiB,
    memoryBandwidth: 1555 * GB,
    intraNode: { kind: 'NVLink 3', bandwidth: 300 * GB },
    network: { kind: 'HDR InfiniBand 200 Gb/s', bandwidth: gbit(200), latency: 5e-6 },
  },
  // NVIDIA L4 Tensor Core GPU datasheet: FP32 30.3 TF, TF32 120 TF sparse / 60 dense,
  // BF16/FP16 242 TF sparse / 121 dense, 24 GB GDDR6 at 300 GB/s, PCIe Gen4 x16 (32 GB/s per direction).
  // Network: AWS g6.48xlarge, 8x L4 behind 100 Gb/s ENA, 12.5 Gb/s per GPU.
  'L4-24GB': {
    fp32: 30.3 * T,
    tf32: 60 * T,
    bf16: 121 * T,
    fp16: 121 * T,
    memoryBytes: 24 * GiB,
    memoryBandwidth: 300 * GB,
    intraNode: { kind: 'PCIe Gen4 x16', bandwidth: 32 * GB },
    network: { kind: 'Ethernet (ENA) 100 Gb/s per 8 GPUs', bandwidth: gbit(12.5), latency: 30e-6 },
  },
  // NVIDIA T4 Tensor Core GPU datasheet: FP32 8.1 TF, FP16 mixed precision 65 TF, no TF32/BF16,
  // 16 GB GDDR6 at 320 GB/s, PCIe Gen3 x16 (16 GB/s per direction).
  // Network: AWS g4dn.metal, 8x T4 behind 100 Gb/s ENA, 12.5 Gb/s per GPU.
  'T4-16GB': {
    fp32: 8.1 * T,
    tf32: null,
    bf16: null,
    fp16: 65 * T,
    memoryBytes: 16 * GiB,
    memoryBandwidth: 320 * GB,
    intraNode: { kind: 'PCIe Gen3 x16', bandwidth: 16 * GB },
    network: { kind: 'Ethernet (ENA) 100 Gb/s per 8 GPUs', bandwidth: gbit(12.5), latency: 30e-6 },
  },
} as const satisfies Record<string, CatalogEntry>;
export type CatalogModel = keyof typeof CATALOG;

/** Numeric formats a training run computes in. */
export const Precision = {
  FP32: 'fp32',
  TF32: 'tf32',
  /** BF16 tensor cores, falling back to FP16 where BF16 is missing (T4). */
  Mixed: 'mixed',
} as const;
export type Precision = (typeof Precision)[keyof typeof Precision];

export interface CatalogFleetOptions {
  /**
   * Which peak to use.
   * @default 'mixed'
   */
  precision?: Precision;
  /**
   * Fraction of peak a training step sustains (model FLOPs utilisation); 0.4 is typical for
   * transformer training on a single GPU.
   * @default 0.4
   */
  efficiency?: number;
  /**
   * Fraction of memory kept back for the runtime, CUDA context and fragmentation.
   * @default 0.1
   */
  memoryReserve?: number;
}

/** Usable FLOP/s of a catalog GPU at a precision (peak dense, before efficiency). */
export function peakFlops(entry: CatalogEntry, precision: Precision): number {
  switch (precision) {
    case 'fp32':
      return entry.fp32;
    case 'tf32':
      return entry.tf32 ?? entry.fp32;
    case 'mixed':
      return entry.bf16 ?? entry.fp16;
  }
}

/** Builds planner devices from catalog models: ids are `<model>-<k>` in the order given. */
export function catalogFleet(spec: readonly { model: CatalogModel; count: number }[], options: CatalogFleetOptions = {}): Device[] {
  const precision = options.precision ?? 'mixed';
  const efficiency = options.efficiency ?? 0.4;
  const reserve = options.memoryReserve ?? 0.1;
  if (!(efficiency > 0 && efficiency <= 1)) throw new PlanInputError('must be in (0, 1]', 'efficiency');
  if (!(reserve >= 0 && reserve < 1)) throw new PlanInputError('must be in [0, 1)', 'memoryReserve');
  const out: Device[] = [];
  for (const { model, count } of spec) {
    const e: CatalogEntry = CATALOG[model];
    for (let k = 0; k < count; k++) {
      out.push({
        id: `${model}-${k}`,
        name: model,
        flops: peakFlops(e, precision) * efficiency,
        memoryBytes: Math.floor(e.memoryBytes * (1 - reserve)),
        linkBandwidth: e.network.bandwidth,
        linkLatency: e.network.latency,
      });
    }
  }
  return out;
}
