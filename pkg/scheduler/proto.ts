import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** The proto/ folder: two levels up from source (pkg/scheduler), three from dist/pkg/scheduler. */
function protoRoot(): string {
  for (const rel of ['../../proto/', '../../../proto/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}tessera/v1/scheduler.proto`)) return dir;
  }
  throw new Error(`proto/tessera/v1/scheduler.proto not found above ${fileURLToPath(import.meta.url)}`);
}

/** How messages look in JS; codec.ts relies on exactly these options. */
export const LOADER_OPTIONS: protoLoader.Options = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true };

export const SCHEDULER_SERVICE = 'tessera.v1.Scheduler';
export const HEALTH_SERVICE = 'grpc.health.v1.Health';
export const REFLECTION_SERVICES = ['grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection'] as const;

/** The proto files loaded, by path under proto/, with their package (reflection serves both names). */
export const PROTO_FILES: Readonly<Record<string, string>> = {
  'tessera/v1/scheduler.proto': 'tessera.v1',
  'grpc/health/v1/health.proto': 'grpc.health.v1',
  'grpc/reflection/v1/reflection.proto': 'grpc.reflection.v1',
  'grpc/reflection/v1alpha/reflection.proto': 'grpc.reflection.v1alpha',
};

let cached: { definition: protoLoader.PackageDefinition; grpcObject: grpc.GrpcObject } | undefined;

/** Loads PROTO_FILES once per process. */
export function loadProtos(): { definition: protoLoader.PackageDefinition; grpcObject: grpc.GrpcObject } {
  if (!cached) {
    const definition = protoLoader.loadSync(Object.keys(PROTO_FILES), { ...LOADER_OPTIONS, includeDirs: [protoRoot()] });
    cached = { definition, grpcObject: grpc.loadPackageDefinition(definition) };
  }
  return cached;
}

export function serviceDefinition(name: string): grpc.ServiceDefinition {
  const def = loadProtos().definition[name];
  if (!def || 'format' in def) throw new Error(`service ${name} not in the loaded protos`);
  return def as grpc.ServiceDefinition;
}

/** The generated client constructor for a service, e.g. "tessera.v1.Scheduler". */
export function clientConstructor(name: string): grpc.ServiceClientConstructor {
  let node: unknown = loadProtos().grpcObject;
  for (const part of name.split('.')) node = (node as Record<string, unknown>)[part];
  return node as grpc.ServiceClientConstructor;
}
