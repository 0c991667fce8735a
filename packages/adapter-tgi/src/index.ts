/**
 * @kvmgr/adapter-tgi — TGI's engine profile as data. Metrics scraping; schedule
 * lowering arrives in a later release.
 */
export { TGI_DEFAULT_PROFILE } from './profiles.js';
export { createTgiMetricsMapper, mapTgiMetrics } from './metrics.js';
export type { TgiMetricsOptions } from './metrics.js';
