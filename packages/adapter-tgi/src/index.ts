/**
 * @kvmgr/adapter-tgi — TGI's engine profile as data. Wire protocols (metrics scraping,
 * schedule lowering) arrive in later releases.
 */
export { TGI_DEFAULT_PROFILE } from './profiles.js';
