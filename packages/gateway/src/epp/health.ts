/**
 * `grpc.health.v1.Health` for the endpoint picker, with the services GIE's protocol names:
 * `liveness` (the process answers), `readiness` (endpoints opened, not shutting down) and
 * `envoy.service.ext_proc.v3.ExternalProcessor` (same as readiness); `""` is the server as a
 * whole (readiness). An unknown service is `NOT_FOUND` on `Check` and `SERVICE_UNKNOWN` on `Watch`,
 * as grpc's protocol says.
 */
import * as grpc from '@grpc/grpc-js';
import type { ServingStatus } from './protos.js';

/** Service names answered. */
export const HEALTH_SERVICES = ['', 'liveness', 'readiness', 'envoy.service.ext_proc.v3.ExternalProcessor'] as const;

/** The health state and the handlers of the `Health` service. */
export class HealthState {
  private ready = false;
  private alive = true;
  private readonly watchers = new Set<{ service: string; call: grpc.ServerWritableStream<{ service?: string }, { status: ServingStatus }>; last: ServingStatus }>();

  /** The status of a service, or undefined for an unknown one. */
  status(service: string): ServingStatus | undefined {
    switch (service) {
      case 'liveness':
        return this.alive ? 'SERVING' : 'NOT_SERVING';
      case '':
      case 'readiness':
      case 'envoy.service.ext_proc.v3.ExternalProcessor':
        return this.ready && this.alive ? 'SERVING' : 'NOT_SERVING';
      default:
        return undefined;
    }
  }

  /** Marks the picker ready (or not) and tells the watchers. */
  setReady(ready: boolean): void {
    this.ready = ready;
    this.notify();
  }

  /** Shutting down: everything NOT_SERVING, watch streams ended. */
  shutdown(): void {
    this.alive = false;
    this.ready = false;
    this.notify();
    for (const w of this.watchers) w.call.end();
    this.watchers.clear();
  }

  private notify(): void {
    for (const w of this.watchers) {
      const s = this.status(w.service) ?? 'SERVICE_UNKNOWN';
      if (s !== w.last) {
        w.last = s;
        w.call.write({ status: s });
      }
    }
  }

  /** The handlers, for `server.addService(Health.service, …)`. */
  handlers(): grpc.UntypedServiceImplementation {
    return {
      Check: (call: grpc.ServerUnaryCall<{ service?: string }, { status: ServingStatus }>, cb: grpc.sendUnaryData<{ status: ServingStatus }>) => {
        const service = call.request.service ?? '';
        const s = this.status(service);
        if (s === undefined) cb({ code: grpc.status.NOT_FOUND, details: `unknown service ${JSON.stringify(service)}` });
        else cb(null, { status: s });
      },
      Watch: (call: grpc.ServerWritableStream<{ service?: string }, { status: ServingStatus }>) => {
        const service = call.request.service ?? '';
        const s = this.status(service) ?? 'SERVICE_UNKNOWN';
        if (!this.alive) {
          call.write({ status: s });
          call.end();
          return;
        }
        const w = { service, call, last: s };
        this.watchers.add(w);
        call.write({ status: s });
        call.on('cancelled', () => this.watchers.delete(w));
        call.on('close', () => this.watchers.delete(w));
      },
    };
  }
}
