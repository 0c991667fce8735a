/**
 * @kvmgr/adapter-lmdeploy — LMDeploy's engine profile as data. Metrics scraping; schedule
 * lowering arrives in a later release.
 */
export { LMDEPLOY_DEFAULT_PROFILE } from './profiles.js';
export { mapLmdeployMetrics } from './metrics.js';
