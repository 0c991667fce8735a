/**
 * @kvmgr/adapter-lmdeploy — LMDeploy's engine profile as data. Wire protocols (metrics
 * scraping, schedule lowering) arrive in later releases.
 */
export { LMDEPLOY_DEFAULT_PROFILE } from './profiles.js';
