import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition, PackageDefinition, ServiceDefinition } from '@grpc/proto-loader';

/**
 * grpc.reflection (v1 and v1alpha) over the descriptors @grpc/proto-loader already holds, so
 * grpcurl and similar tools can list and call the services without local protos. proto-loader
 * merges each package's files into one synthetic file ("tessera_v1.proto"); the original file
 * names given to `fileAliases` resolve to those.
 */

interface ReflectionRequest {
  host?: string;
  messageRequest?: 'fileByFilename' | 'fileContainingSymbol' | 'fileContainingExtension' | 'allExtensionNumbersOfType' | 'listServices';
  fileByFilename?: string;
  fileContainingSymbol?: string;
}

const NOT_FOUND = 5;
const UNIMPLEMENTED = 12;

export class ReflectionService {
  /** Fully qualified symbol (message, enum, service, service.method) -> its file's name. */
  private readonly symbolFile = new Map<string, string>();
  /** File name (synthetic and aliases) -> serialized FileDescriptorProto. */
  private readonly files = new Map<string, Buffer>();

  constructor(
    definition: PackageDefinition,
    private readonly services: readonly string[],
    fileAliases: Readonly<Record<string, string>> = {},
  ) {
    for (const [name, def] of Object.entries(definition)) {
      const protos: Buffer[] | undefined = 'format' in def ? (def as MessageTypeDefinition<object, object> | EnumTypeDefinition).fileDescriptorProtos : Object.values(def as ServiceDefinition)[0]?.requestType.fileDescriptorProtos;
      for (const buf of protos ?? []) this.files.set(descriptorName(buf), buf);
      // The declaring file is the one named after the symbol's package.
      const pkg = name.split('.').slice(0, -1).join('.');
      const file = `${pkg.replace(/\./g, '_')}.proto`;
      this.symbolFile.set(name, file);
      if (!('format' in def)) for (const method of Object.keys(def)) this.symbolFile.set(`${name}.${method}`, file);
    }
    for (const [alias, pkg] of Object.entries(fileAliases)) {
      const buf = this.files.get(`${pkg.replace(/\./g, '_')}.proto`);
      if (buf) this.files.set(alias, buf);
    }
  }

  /** Handlers for both grpc.reflection.v1 and v1alpha (same message shapes). */
  readonly handlers: grpc.UntypedServiceImplementation = {
    ServerReflectionInfo: (call: grpc.ServerDuplexStream<ReflectionRequest, object>) => {
      call.on('data', (req: ReflectionRequest) => call.write({ validHost: req.host ?? '', originalRequest: req, ...this.answer(req) }));
      call.on('end', () => call.end());
    },
  };

  private answer(req: ReflectionRequest): object {
    switch (req.messageRequest) {
      case 'listServices':
        return { listServicesResponse: { service: this.services.map((name) => ({ name })) } };
      case 'fileByFilename':
        return this.fileResponse(this.files.has(req.fileByFilename ?? '') ? req.fileByFilename! : undefined, `file "${req.fileByFilename}" not found`);
      case 'fileContainingSymbol': {
        const symbol = (req.fileContainingSymbol ?? '').replace(/^\./, '');
        return this.fileResponse(this.symbolFile.get(symbol), `symbol "${symbol}" not found`);
      }
      default:
        return { errorResponse: { errorCode: UNIMPLEMENTED, errorMessage: `${req.messageRequest ?? 'empty request'} is not supported (no extensions are defined)` } };
    }
  }

  private fileResponse(file: string | undefined, missing: string): object {
    const buf = file === undefined ? undefined : this.files.get(file);
    if (!buf) return { errorResponse: { errorCode: NOT_FOUND, errorMessage: missing } };
    return { fileDescriptorResponse: { fileDescriptorProto: [buf] } };
  }
}

/** Field 1 (name) of a serialized FileDescriptorProto; every top-level field is length-delimited. */
function descriptorName(buf: Buffer): string {
  let pos = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = buf[pos++]!;
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return result;
      shift += 7;
    }
  };
  while (pos < buf.length) {
    const tag = varint();
    if ((tag & 7) !== 2) break;
    const len = varint();
    if (tag >>> 3 === 1) return buf.subarray(pos, pos + len).toString('utf8');
    pos += len;
  }
  return '';
}
