/**
 * @kvmgr/adapter-sglang — SGLang: engine profile, metrics scraping, API differences and
 * block-hash parity.
 */
export {};
