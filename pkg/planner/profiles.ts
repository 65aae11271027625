import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { Precision } from './catalog.js';
import type { Device } from './types.js';

/**
 * Device profiles (profiles.yaml) and fleet files: raw YAML parsed into typed values once, at the
 * boundary (STYLE 10). Parsing is pure (text in, values out); only readBundledProfiles touches
 * the file system.
 */

/** How the device holds memory: its own (gpu), shared with the host CPU (unified), or host RAM (cpu). */
export const DeviceKind = { Gpu: 'gpu', Unified: 'unified', Cpu: 'cpu' } as const;
export type DeviceKind = (typeof DeviceKind)[keyof typeof DeviceKind];

export interface DeviceProfile {
  name: string;
  kind: DeviceKind;
  /** Peak dense FLOP/s per numeric path; null where the device has none. */
  peak: { fp32: number; tf32: number | null; bf16: number | null; fp16: number | null };
  /** Device memory (for unified and cpu: the RAM the planner may count), bytes. */
  memoryBytes: number;
  /** Memory bandwidth, bytes/s. */
  memoryBandwidth: number;
  /** Typical per-device share of the scale-out network: bytes/s per direction, one-way latency in s. */
  network: { kind: string; bandwidth: number; latency: number };
  /** Patterns for the nvidia.com/gpu.product node label (case-insensitive). */
  kubernetesProducts: readonly RegExp[];
  /** Where the numbers come from (datasheet names). */
  source: string;
}

/** A profile entry is malformed: names the entry and the field. */
export class ProfileError extends Error {
  override name = 'ProfileError';
  constructor(
    readonly entry: string,
    readonly field: string,
    message: string,
  ) {
    super(`profile "${entry}": ${field}: ${message}`);
  }
}

/** A fleet file is malformed: `path` locates the field, e.g. "devices[2].overrides.flops". */
export class FleetFileError extends Error {
  override name = 'FleetFileError';
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`fleet file: ${path}: ${message}`);
  }
}

/** A node's tessera.dev/device-profile label names no known profile. */
export class NodeProfileError extends Error {
  override name = 'NodeProfileError';
  constructor(
    readonly node: string,
    readonly profile: string,
    known: readonly string[],
  ) {
    super(`node "${node}": label ${PROFILE_LABEL}="${profile}" names no known profile (known: ${known.join(', ')})`);
  }
}

const TERA = 1e12;
const GiB = 2 ** 30;
const PROFILE_FIELDS = new Set(['kind', 'fp32TFlops', 'tf32TFlops', 'bf16TFlops', 'fp16TFlops', 'memoryGiB', 'memoryBandwidthGBps', 'network', 'kubernetes', 'source']);

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses profiles.yaml text (`profiles: { NAME: {...} }`) into typed profiles, in file order. */
export function parseProfiles(text: string): Map<string, DeviceProfile> {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ProfileError('*', 'yaml', (err as Error).message.split('\n')[0]!);
  }
  if (!isRecord(doc) || !isRecord(doc.profiles)) throw new ProfileError('*', 'profiles', 'expected a mapping of profile name to entry');
  const out = new Map<string, DeviceProfile>();
  for (const [name, raw] of Object.entries(doc.profiles)) out.set(name, parseProfile(name, raw));
  return out;
}

function parseProfile(name: string, raw: unknown): DeviceProfile {
  const fail = (field: string, message: string): never => {
    throw new ProfileError(name, field, message);
  };
  if (!isRecord(raw)) return fail('*', 'expected a mapping');
  for (const k of Object.keys(raw)) if (!PROFILE_FIELDS.has(k)) fail(k, `unknown field (expected one of ${[...PROFILE_FIELDS].join(', ')})`);
  const positive = (field: string, v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : fail(field, `must be a number > 0, got ${JSON.stringify(v)}`));
  const optional = (field: string): number | null => (raw[field] === null ? null : positive(field, raw[field]));
  const kind = raw.kind;
  if (kind !== 'gpu' && kind !== 'unified' && kind !== 'cpu') fail('kind', `must be gpu, unified or cpu, got ${JSON.stringify(kind)}`);
  if (!isRecord(raw.network)) fail('network', 'expected { kind, gbps, latencyUs }');
  const net = raw.network as Record<string, unknown>;
  if (typeof net.kind !== 'string' || net.kind === '') fail('network.kind', 'must be a non-empty string');
  const latencyUs = net.latencyUs;
  if (!(typeof latencyUs === 'number' && Number.isFinite(latencyUs) && latencyUs >= 0)) fail('network.latencyUs', `must be a number >= 0, got ${JSON.stringify(latencyUs)}`);
  if (typeof raw.source !== 'string' || raw.source.trim() === '') fail('source', 'must name the datasheet the numbers come from');
  let products: RegExp[] = [];
  if (raw.kubernetes !== undefined) {
    const k = raw.kubernetes;
    if (!isRecord(k) || !Array.isArray(k.products) || k.products.some((p) => typeof p !== 'string')) fail('kubernetes.products', 'expected a list of regular expressions');
    products = ((k as { products: string[] }).products).map((p, i) => {
      try {
        return new RegExp(p, 'i');
      } catch (err) {
        return fail(`kubernetes.products[${i}]`, (err as Error).message);
      }
    });
  }
  return {
    name,
    kind: kind as DeviceKind,
    peak: { fp32: positive('fp32TFlops', raw.fp32TFlops) * TERA, tf32: scale(optional('tf32TFlops'), TERA), bf16: scale(optional('bf16TFlops'), TERA), fp16: scale(optional('fp16TFlops'), TERA) },
    memoryBytes: positive('memoryGiB', raw.memoryGiB) * GiB,
    memoryBandwidth: positive('memoryBandwidthGBps', raw.memoryBandwidthGBps) * 1e9,
    network: { kind: net.kind as string, bandwidth: (positive('network.gbps', net.gbps) * 1e9) / 8, latency: (latencyUs as number) / 1e6 },
    kubernetesProducts: products,
    source: raw.source as string,
  };
}

const scale = (v: number | null, k: number): number | null => (v === null ? null : v * k);

/** The catalog shipped beside this file. */
export const BUNDLED_PROFILES_URL = new URL('./profiles.yaml', import.meta.url);
// tsc copies no YAML: compiled to dist/pkg/planner/, the catalog is still in the source tree.
const SOURCE_PROFILES_URL = new URL('../../../pkg/planner/profiles.yaml', import.meta.url);

/** Reads and parses profiles.yaml (the bundled catalog unless a path is given). */
export function readProfiles(path?: string | URL): Map<string, DeviceProfile> {
  if (path !== undefined) return parseProfiles(readFileSync(path, 'utf8'));
  try {
    return parseProfiles(readFileSync(BUNDLED_PROFILES_URL, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return parseProfiles(readFileSync(SOURCE_PROFILES_URL, 'utf8'));
  }
}

/** Peak FLOP/s of a profile at a precision: tf32 falls back to fp32; mixed to bf16, fp16, then fp32. */
export function profilePeak(profile: DeviceProfile, precision: Precision): number {
  switch (precision) {
    case 'fp32':
      return profile.peak.fp32;
    case 'tf32':
      return profile.peak.tf32 ?? profile.peak.fp32;
    case 'mixed':
      return profile.peak.bf16 ?? profile.peak.fp16 ?? profile.peak.fp32;
  }
}

/**
 * Measured values that win over the catalog, in base units. Each replaces the derived value
 * outright: `flops` is not scaled by efficiency, `memory` is not cut by the reserve.
 */
export interface DeviceOverrides {
  /** Usable FLOP/s, e.g. from a benchmark. */
  flops?: number;
  /** Usable memory, bytes. */
  memory?: number;
  /** NIC bandwidth, bytes/s per direction. */
  bandwidth?: number;
  /** One-way NIC latency, seconds. */
  latency?: number;
}

export interface FleetFileOptions {
  /**
   * Which peak the devices compute at.
   * @default 'mixed'
   */
  precision?: Precision;
  /**
   * Fraction of peak a training step sustains.
   * @default 0.4
   */
  efficiency?: number;
  /**
   * Fraction of memory kept back for the runtime and fragmentation.
   * @default 0.1
   */
  memoryReserve?: number;
}

const FLEET_TOP = new Set(['devices', 'precision', 'efficiency', 'memoryReserve']);
const FLEET_ENTRY = new Set(['profile', 'count', 'id', 'overrides']);
const OVERRIDES = ['flops', 'memory', 'bandwidth', 'latency'] as const;

/**
 * Parses a fleet file into planner devices. Format (YAML), either a bare list of entries or:
 *
 *   precision: mixed        # fp32 | tf32 | mixed (FleetFileOptions; file values win over `defaults`)
 *   efficiency: 0.4
 *   memoryReserve: 0.1
 *   devices:
 *     - profile: H100-SXM-80GB   # a profile name
 *       count: 2                 # @default 1
 *       id: rack-a               # device id prefix; @default the profile name
 *       overrides: { flops: 3.1e14, memory: 7.5e10, bandwidth: 5e10, latency: 1e-5 }
 *
 * Device ids are `<id>-<k>`, k counting from 0 per prefix across the file, so ids are unique.
 */
export function parseFleet(text: string, profiles: ReadonlyMap<string, DeviceProfile>, defaults: FleetFileOptions = {}): Device[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new FleetFileError('yaml', (err as Error).message.split('\n')[0]!);
  }
  let entries: unknown;
  const opts = { precision: defaults.precision ?? 'mixed', efficiency: defaults.efficiency ?? 0.4, memoryReserve: defaults.memoryReserve ?? 0.1 };
  if (Array.isArray(doc)) {
    entries = doc;
  } else if (isRecord(doc)) {
    for (const k of Object.keys(doc)) if (!FLEET_TOP.has(k)) throw new FleetFileError(k, `unknown field (expected one of ${[...FLEET_TOP].join(', ')})`);
    entries = doc.devices;
    if (doc.precision !== undefined) {
      if (!Object.values(Precision).includes(doc.precision as Precision)) throw new FleetFileError('precision', `must be one of ${Object.values(Precision).join(', ')}, got ${JSON.stringify(doc.precision)}`);
      opts.precision = doc.precision as Precision;
    }
    if (doc.efficiency !== undefined) opts.efficiency = doc.efficiency as number;
    if (doc.memoryReserve !== undefined) opts.memoryReserve = doc.memoryReserve as number;
  } else {
    throw new FleetFileError('*', 'expected a list of devices or a mapping with `devices`');
  }
  if (!(typeof opts.efficiency === 'number' && opts.efficiency > 0 && opts.efficiency <= 1)) throw new FleetFileError('efficiency', `must be in (0, 1], got ${JSON.stringify(opts.efficiency)}`);
  if (!(typeof opts.memoryReserve === 'number' && opts.memoryReserve >= 0 && opts.memoryReserve < 1)) throw new FleetFileError('memoryReserve', `must be in [0, 1), got ${JSON.stringify(opts.memoryReserve)}`);
  if (!Array.isArray(entries) || entries.length === 0) throw new FleetFileError('devices', 'expected a non-empty list');

  const devices: Device[] = [];
  const nextIndex = new Map<string, number>();
  entries.forEach((raw, i) => {
    const at = `devices[${i}]`;
    if (!isRecord(raw)) throw new FleetFileError(at, 'expected a mapping { profile, count, id, overrides }');
    for (const k of Object.keys(raw)) if (!FLEET_ENTRY.has(k)) throw new FleetFileError(`${at}.${k}`, `unknown field (expected one of ${[...FLEET_ENTRY].join(', ')})`);
    const profile = typeof raw.profile === 'string' ? profiles.get(raw.profile) : undefined;
    if (!profile) throw new FleetFileError(`${at}.profile`, `unknown profile ${JSON.stringify(raw.profile)} (known: ${[...profiles.keys()].join(', ')})`);
    const count = raw.count ?? 1;
    if (!(typeof count === 'number' && Number.isInteger(count) && count >= 1)) throw new FleetFileError(`${at}.count`, `must be an integer >= 1, got ${JSON.stringify(count)}`);
    const prefix = raw.id ?? profile.name;
    if (typeof prefix !== 'string' || prefix === '') throw new FleetFileError(`${at}.id`, 'must be a non-empty string');
    const ov = parseOverrides(raw.overrides, `${at}.overrides`);
    for (let k = 0; k < count; k++) {
      const n = nextIndex.get(prefix) ?? 0;
      nextIndex.set(prefix, n + 1);
      devices.push({
        id: `${prefix}-${n}`,
        name: profile.name,
        flops: ov.flops ?? profilePeak(profile, opts.precision) * opts.efficiency,
        memoryBytes: ov.memory ?? Math.floor(profile.memoryBytes * (1 - opts.memoryReserve)),
        linkBandwidth: ov.bandwidth ?? profile.network.bandwidth,
        linkLatency: ov.latency ?? profile.network.latency,
      });
    }
  });
  return devices;
}

function parseOverrides(raw: unknown, at: string): DeviceOverrides {
  if (raw === undefined || raw === null) return {};
  if (!isRecord(raw)) throw new FleetFileError(at, 'expected a mapping { flops, memory, bandwidth, latency }');
  const out: DeviceOverrides = {};
  for (const [k, v] of Object.entries(raw)) {
    if (!(OVERRIDES as readonly string[]).includes(k)) throw new FleetFileError(`${at}.${k}`, `unknown override (expected one of ${OVERRIDES.join(', ')})`);
    const min = k === 'latency' || k === 'memory' ? 0 : Number.MIN_VALUE;
    if (!(typeof v === 'number' && Number.isFinite(v) && v >= min)) throw new FleetFileError(`${at}.${k}`, `must be a number ${min === 0 ? '>= 0' : '> 0'} in base units (FLOP/s, bytes, bytes/s, s), got ${JSON.stringify(v)}`);
    out[k as keyof DeviceOverrides] = v;
  }
  return out;
}

/**
 * Our node label naming a profile outright: `tessera.dev/device-profile: <profile name>`. It wins
 * over GPU discovery labels; use it for nodes discovery cannot describe (Apple, CPU nodes, MIG,
 * PCIe A100s) or to pin a profile with measured overrides.
 */
export const PROFILE_LABEL = 'tessera.dev/device-profile';
/** NVIDIA GPU feature discovery labels and the device plugin's resource. */
export const GPU_PRODUCT_LABEL = 'nvidia.com/gpu.product';
export const GPU_MEMORY_LABEL = 'nvidia.com/gpu.memory';
export const GPU_COUNT_LABEL = 'nvidia.com/gpu.count';
export const GPU_RESOURCE = 'nvidia.com/gpu';

/** The parts of a Kubernetes Node the mapping reads. */
export interface NodeSnapshot {
  name: string;
  labels: Readonly<Record<string, string>>;
  /** status.allocatable. */
  allocatable?: Readonly<Record<string, string>>;
}

export interface NodeProfileMatch {
  profile: string;
  /** Devices of that profile on the node. */
  count: number;
  matchedBy: 'label' | 'gpu-product';
}

/**
 * Which profile a node's devices have, and how many. Pure.
 * 1. Label tessera.dev/device-profile: that profile (an unknown name throws NodeProfileError);
 *    count = allocatable nvidia.com/gpu when > 0, else 1 (a CPU or Apple node is one device).
 * 2. Label nvidia.com/gpu.product matched against each profile's kubernetes.products; several
 *    matches are told apart by memory (nvidia.com/gpu.memory in MiB, else "NNGB" in the product
 *    name), closest wins. count = allocatable nvidia.com/gpu, else nvidia.com/gpu.count, else 1.
 * Returns undefined for a node with no match (no GPU, a MIG slice, an unknown product) or zero
 * allocatable GPUs.
 */
export function profileForNode(node: NodeSnapshot, profiles: ReadonlyMap<string, DeviceProfile>): NodeProfileMatch | undefined {
  const gpus = positiveInt(node.allocatable?.[GPU_RESOURCE]);
  const explicit = node.labels[PROFILE_LABEL];
  if (explicit !== undefined) {
    if (!profiles.has(explicit)) throw new NodeProfileError(node.name, explicit, [...profiles.keys()]);
    return { profile: explicit, count: gpus ?? 1, matchedBy: 'label' };
  }
  const product = node.labels[GPU_PRODUCT_LABEL];
  if (product === undefined) return undefined;
  const matches = [...profiles.values()].filter((p) => p.kubernetesProducts.some((re) => re.test(product)));
  if (matches.length === 0) return undefined;
  const count = node.allocatable?.[GPU_RESOURCE] !== undefined ? gpus : positiveInt(node.labels[GPU_COUNT_LABEL]) ?? 1;
  if (count === undefined) return undefined;
  const mib = positiveInt(node.labels[GPU_MEMORY_LABEL]) ?? gbInName(product);
  const best = mib === undefined ? matches[0]! : matches.reduce((a, b) => (Math.abs(b.memoryBytes / 2 ** 20 - mib) < Math.abs(a.memoryBytes / 2 ** 20 - mib) ? b : a));
  return { profile: best.name, count, matchedBy: 'gpu-product' };
}

function positiveInt(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  const n = Number(v);
  return n > 0 ? n : undefined;
}

/** "NVIDIA-A100-SXM4-80GB" -> 80 GiB in MiB. */
function gbInName(product: string): number | undefined {
  const m = /(\d+)GB/i.exec(product);
  return m ? Number(m[1]) * 1024 : undefined;
}
