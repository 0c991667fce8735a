/**
 * kvmgr — the command line as a library: build the program, or call the report builders.
 */
export { buildProgram } from './program.js';
export { BUNDLED_TRACE, DEFAULTS, SWEEP_DEFAULTS, EVICTION_DEFAULTS, FIDELITY_DEFAULTS } from './defaults.js';
export { renderReportHtml } from './report-html.js';
export type { HtmlReport, ChartSpec, ChartSeries, TableSpec } from './report-html.js';
export { formatComparison, requestsCsv, replayHtml, replayJson, cdfPoints, verdict } from './replay-report.js';
export type { ReplaySetup } from './replay-report.js';
export { pairedDiffs, goodputKnee } from './ab-stats.js';
export type { PairedDiff, PairedOptions, SweepPoint, Knee } from './ab-stats.js';
export type { RunResult, RunTimeseries } from './run.js';
export { loadRunConfig, RunConfigSchema } from './config.js';
export type { RunConfig } from './config.js';
