/**
 * @kvmgr/gateway — an OpenAI-compatible, KV- and SLO-aware routing gateway (`kvmgr serve`) in
 * front of vLLM, SGLang, TGI, LMDeploy or kvmgr engine servers.
 */
export { createGateway } from './gateway.js';
export type { Gateway, GatewayOptions, GatewayState, EndpointState } from './gateway.js';
export { parseGatewayConfig, readGatewayConfigYaml, resolveGatewayConfig, resolveEndpoint, resolveRouting, parseRoutingInput, EndpointInputSchema } from './config.js';
export type { ResolvedGatewayConfig, GatewayConfigInput, EndpointConfig, EndpointInput, AdmissionConfig, PdSettings } from './config.js';
export { PREFILLER_HEADER } from './pd.js';
export { AdmissionAbandoned, AdmissionQueue, AdmissionRejected, leaveOnAbort } from './admission.js';
export type { AdmissionTicket, AdmissionStats, AdmissionOptions, LeaveWatch, RejectReason } from './admission.js';
export { ServiceModel } from './service-model.js';
export { readRequest } from './request-info.js';
export type { RequestInfo, OpenAiRoute } from './request-info.js';
export { createEpp, DESTINATION_ENDPOINT_KEY, DESTINATION_SERVED_KEY, DESTINATION_SUBSET_KEY } from './epp/server.js';
export type { Epp, EppConfig, EppEndpointState } from './epp/server.js';
export { parsePodsFile, podToEndpoint, PodInputSchema } from './epp/pods.js';
export { endpointAddress } from './pool.js';
export type { PodInput } from './epp/pods.js';
export { loadEppProtos, envoyProtoDirs, PROTO_OPTIONS } from './epp/protos.js';
export type { EppProtos, ProcessingRequest, ProcessingResponse, PbBodySendMode, PbProtocolConfiguration, PbStreamedBodyResponse, PbStruct, PbValue, ServingStatus } from './epp/protos.js';
export { resolveAbConfig, abHashUnit, welchInterval, mergeMoments, mergeAbSnapshots, AB_METRICS } from './ab.js';
export type { ResolvedAbConfig, AbArmConfig, AbReport, AbArmReport, AbDifference, AbMean, AbMetricName, AbKeySource, AbMoments, AbSnapshot, AbContributor } from './ab.js';
export { resolveTenantsConfig, apiKeyTenant, ANONYMOUS_TENANT } from './tenants.js';
export type { TenantsConfig, TenantStats } from './tenants.js';
export type { AdmissionFairness } from './admission.js';
export { resolveEmbeddingsConfig, EmbeddingRequestSchema, embeddingInputTokens } from './embeddings.js';
export type { EmbeddingsConfig, MemoryQuotaState, QuotaConsumer } from './embeddings.js';
