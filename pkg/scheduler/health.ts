import * as grpc from '@grpc/grpc-js';

export const ServingStatus = {
  Unknown: 'UNKNOWN',
  Serving: 'SERVING',
  NotServing: 'NOT_SERVING',
  ServiceUnknown: 'SERVICE_UNKNOWN',
} as const;
export type ServingStatus = (typeof ServingStatus)[keyof typeof ServingStatus];

interface HealthRequest {
  service: string;
}
interface HealthResponse {
  status: ServingStatus;
}

/**
 * grpc.health.v1.Health: Check answers NOT_FOUND for services it does not know (as the spec
 * says); Watch sends the current status and every change until the client cancels.
 */
export class HealthService {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<grpc.ServerWritableStream<HealthRequest, HealthResponse>>>();

  set(service: string, status: ServingStatus): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const w of this.watchers.get(service) ?? []) w.write({ status });
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** Ends every Watch stream (on server shutdown). */
  closeWatchers(): void {
    for (const set of this.watchers.values()) for (const w of set) w.end();
    this.watchers.clear();
  }

  readonly handlers: grpc.UntypedServiceImplementation = {
    Check: (call: grpc.ServerUnaryCall<HealthRequest, HealthResponse>, callback: grpc.sendUnaryData<HealthResponse>) => {
      const status = this.statuses.get(call.request.service);
      if (status === undefined) callback({ code: grpc.status.NOT_FOUND, details: `unknown service "${call.request.service}"` });
      else callback(null, { status });
    },
    Watch: (call: grpc.ServerWritableStream<HealthRequest, HealthResponse>) => {
      const service = call.request.service;
      const set = this.watchers.get(service) ?? new Set();
      this.watchers.set(service, set);
      set.add(call);
      call.write({ status: this.statuses.get(service) ?? ServingStatus.ServiceUnknown });
      call.on('cancelled', () => set.delete(call));
    },
  };
}
