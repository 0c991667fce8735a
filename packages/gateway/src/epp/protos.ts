/**
 * The gRPC services of the endpoint picker, loaded with `@grpc/proto-loader`:
 *
 * - `envoy.service.ext_proc.v3.ExternalProcessor` from Envoy's published protos. The ext_proc
 *   files and every `envoy/` file they import are vendored in this package's `protos/envoy-api/`
 *   (envoyproxy/data-plane-api at 84e84367f2560cdb47b9bb78fd3e615feb80c3e4, 2026-01-29; see
 *   `protos/README.md`), because the copy `@grpc/grpc-js-xds` carries (`deps/envoy-api`) predates
 *   Envoy's full-duplex streaming mode: it has no `ProcessingMode.FULL_DUPLEX_STREAMED`, no
 *   `BodyMutation.streamed_response` (`StreamedBodyResponse`) and no
 *   `ProcessingRequest.protocol_config`. The vendored directory comes first in the include path
 *   and shadows the old files; `xds/`, `udpa/`, `validate/` and `google/` imports still come from
 *   grpc-js-xds's `deps/` (`xds`, `protoc-gen-validate`, `googleapis`).
 * - `grpc.health.v1.Health` (the standard gRPC health-checking protocol). Neither grpc-js,
 *   grpc-js-xds nor their `deps/` carry `health.proto`, so its ten lines are given here as a
 *   protobufjs JSON descriptor and loaded with `fromJSON` (same message and service names and
 *   field numbers as grpc's `src/proto/grpc/health/v1/health.proto`); a descriptor in the source
 *   also survives bundling, which a `.proto` file beside the module would not.
 *
 * The message types below are what proto-loader hands over with `keepCase: true`, `oneofs: true`,
 * `enums: String`, `longs: String`: snake_case field names, except inside
 * `google.protobuf.Struct`/`Value`, whose wrappers keep protobufjs's camelCase (`structValue`,
 * `stringValue`, `listValue`). Only the fields the picker reads or writes are typed.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** `google.protobuf.Value` as proto-loader gives it (camelCase even with `keepCase`). */
export interface PbValue {
  stringValue?: string;
  numberValue?: number;
  boolValue?: boolean;
  nullValue?: string | number;
  structValue?: PbStruct;
  listValue?: { values?: PbValue[] };
  /** The oneof's set member (with `oneofs: true`). */
  kind?: string;
}

/** `google.protobuf.Struct`. */
export interface PbStruct {
  fields?: Record<string, PbValue>;
}

/** `envoy.config.core.v3.HeaderValue`: Envoy sends `raw_value` (bytes) or `value`. */
export interface PbHeaderValue {
  key: string;
  value?: string;
  raw_value?: Buffer | Uint8Array;
}

/** `envoy.config.core.v3.HeaderValueOption`. */
export interface PbHeaderValueOption {
  header: PbHeaderValue;
  append_action?: 'APPEND_IF_EXISTS_OR_ADD' | 'ADD_IF_ABSENT' | 'OVERWRITE_IF_EXISTS_OR_ADD' | 'OVERWRITE_IF_EXISTS';
}

/** `envoy.service.ext_proc.v3.HttpHeaders`. */
export interface PbHttpHeaders {
  headers?: { headers?: PbHeaderValue[] };
  end_of_stream?: boolean;
}

/** `envoy.service.ext_proc.v3.HttpBody`. */
export interface PbHttpBody {
  body?: Buffer | Uint8Array;
  end_of_stream?: boolean;
}

/** `envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.BodySendMode`. */
export type PbBodySendMode = 'NONE' | 'STREAMED' | 'BUFFERED' | 'BUFFERED_PARTIAL' | 'FULL_DUPLEX_STREAMED' | 'GRPC';

/**
 * `envoy.service.ext_proc.v3.ProtocolConfiguration`: the filter's configured body modes, sent on
 * the first `ProcessingRequest` of a stream only (in Envoy's API since March 2025, envoyproxy/envoy#38451; older filters send none).
 */
export interface PbProtocolConfiguration {
  request_body_mode?: PbBodySendMode;
  response_body_mode?: PbBodySendMode;
  send_body_without_waiting_for_header_response?: boolean;
}

/** `envoy.service.ext_proc.v3.ProcessingRequest`. */
export interface ProcessingRequest {
  request_headers?: PbHttpHeaders;
  response_headers?: PbHttpHeaders;
  request_body?: PbHttpBody;
  response_body?: PbHttpBody;
  request_trailers?: { trailers?: { headers?: PbHeaderValue[] } };
  response_trailers?: { trailers?: { headers?: PbHeaderValue[] } };
  /** Which of the above is set. */
  request?: 'request_headers' | 'response_headers' | 'request_body' | 'response_body' | 'request_trailers' | 'response_trailers';
  /** `envoy.config.core.v3.Metadata`: the namespaces the filter forwards (`metadata_options.forwarding_namespaces`). */
  metadata_context?: { filter_metadata?: Record<string, PbStruct> };
  observability_mode?: boolean;
  /** On the first message of a stream only. */
  protocol_config?: PbProtocolConfiguration;
}

/** `envoy.service.ext_proc.v3.HeaderMutation`. */
export interface PbHeaderMutation {
  set_headers?: PbHeaderValueOption[];
  remove_headers?: string[];
}

/**
 * `envoy.service.ext_proc.v3.StreamedBodyResponse`: a body chunk the processor hands back in
 * FULL_DUPLEX_STREAMED mode (the data plane forwards exactly these bytes).
 */
export interface PbStreamedBodyResponse {
  body?: Buffer | Uint8Array;
  /** On the last chunk, once the processor has seen the body's `end_of_stream`. */
  end_of_stream?: boolean;
}

/** `envoy.service.ext_proc.v3.BodyMutation` (`body`/`clear_body` in BUFFERED/STREAMED modes, `streamed_response` in FULL_DUPLEX_STREAMED). */
export type PbBodyMutation = { body?: Buffer } | { clear_body?: boolean } | { streamed_response?: PbStreamedBodyResponse };

/** `envoy.service.ext_proc.v3.CommonResponse`. */
export interface PbCommonResponse {
  status?: 'CONTINUE' | 'CONTINUE_AND_REPLACE';
  header_mutation?: PbHeaderMutation;
  body_mutation?: PbBodyMutation;
  clear_route_cache?: boolean;
}

/** `envoy.extensions.filters.http.ext_proc.v3.ProcessingMode`. */
export interface PbProcessingMode {
  request_header_mode?: 'DEFAULT' | 'SEND' | 'SKIP';
  response_header_mode?: 'DEFAULT' | 'SEND' | 'SKIP';
  request_body_mode?: PbBodySendMode;
  response_body_mode?: PbBodySendMode;
  request_trailer_mode?: 'DEFAULT' | 'SEND' | 'SKIP';
  response_trailer_mode?: 'DEFAULT' | 'SEND' | 'SKIP';
}

/** `envoy.service.ext_proc.v3.ImmediateResponse`. */
export interface PbImmediateResponse {
  /** `envoy.type.v3.HttpStatus`: `code` is an `envoy.type.v3.StatusCode` (the HTTP status number). */
  status: { code: number };
  headers?: PbHeaderMutation;
  body?: Buffer;
  details?: string;
}

/** `envoy.service.ext_proc.v3.ProcessingResponse`. */
export interface ProcessingResponse {
  request_headers?: { response?: PbCommonResponse };
  response_headers?: { response?: PbCommonResponse };
  request_body?: { response?: PbCommonResponse };
  response_body?: { response?: PbCommonResponse };
  request_trailers?: { header_mutation?: PbHeaderMutation };
  response_trailers?: { header_mutation?: PbHeaderMutation };
  immediate_response?: PbImmediateResponse;
  dynamic_metadata?: PbStruct;
  mode_override?: PbProcessingMode;
}

/** `grpc.health.v1.HealthCheckResponse.ServingStatus`. */
export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

/** grpc's standard health protocol (`grpc/health/v1/health.proto`) as a protobufjs JSON descriptor. */
const HEALTH_V1 = {
  nested: {
    grpc: {
      nested: {
        health: {
          nested: {
            v1: {
              nested: {
                HealthCheckRequest: { fields: { service: { type: 'string', id: 1 } } },
                HealthCheckResponse: {
                  fields: { status: { type: 'ServingStatus', id: 1 } },
                  nested: { ServingStatus: { values: { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } } },
                },
                Health: {
                  methods: {
                    Check: { requestType: 'HealthCheckRequest', responseType: 'HealthCheckResponse' },
                    Watch: { requestType: 'HealthCheckRequest', responseType: 'HealthCheckResponse', responseStream: true },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
};

/** proto-loader options of every definition here (clients should use the same). */
export const PROTO_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: false, oneofs: true };

/**
 * The root of this package (the nearest directory above this module with a `package.json`): the
 * package directory both when the sources run (`src/epp/protos.ts`, tests) and when the build does
 * (`dist/index.js`, one bundle), in the workspace and in an installed package.
 */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`@kvmgr/gateway: no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/**
 * The proto include directories, in lookup order: this package's vendored Envoy API
 * (`protos/envoy-api`, which shadows the older files of the same paths), then `@grpc/grpc-js-xds`'s
 * `deps/` (`envoy-api`, `xds`, `protoc-gen-validate`, `googleapis`).
 */
export function envoyProtoDirs(): string[] {
  const vendored = join(packageRoot(), 'protos', 'envoy-api');
  // without it the old copies would load silently, and full-duplex requests would fail at run time
  if (!existsSync(join(vendored, 'envoy', 'service', 'ext_proc', 'v3', 'external_processor.proto'))) throw new Error(`@kvmgr/gateway: the vendored Envoy protos are missing (${vendored})`);
  const root = dirname(createRequire(import.meta.url).resolve('@grpc/grpc-js-xds/package.json'));
  return [vendored, ...['envoy-api', 'xds', 'protoc-gen-validate', 'googleapis'].map((d) => join(root, 'deps', d))];
}

/** The loaded services (`loadEppProtos`). */
export interface EppProtos {
  /** `envoy.service.ext_proc.v3.ExternalProcessor`: its service definition and a client constructor. */
  readonly extProc: grpc.ServiceClientConstructor;
  /** `grpc.health.v1.Health`. */
  readonly health: grpc.ServiceClientConstructor;
}

let cached: EppProtos | undefined;

/**
 * Loads (once per process, ~100 ms) the ext_proc and health services. Tests build their clients
 * from the same definitions.
 */
export function loadEppProtos(): EppProtos {
  if (cached !== undefined) return cached;
  const extDef = protoLoader.loadSync('envoy/service/ext_proc/v3/external_processor.proto', { ...PROTO_OPTIONS, includeDirs: envoyProtoDirs() });
  const healthDef = protoLoader.fromJSON(HEALTH_V1 as unknown as Parameters<typeof protoLoader.fromJSON>[0], PROTO_OPTIONS);
  const ext = grpc.loadPackageDefinition(extDef) as unknown as { envoy: { service: { ext_proc: { v3: { ExternalProcessor: grpc.ServiceClientConstructor } } } } };
  const health = grpc.loadPackageDefinition(healthDef) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
  cached = { extProc: ext.envoy.service.ext_proc.v3.ExternalProcessor, health: health.grpc.health.v1.Health };
  return cached;
}
