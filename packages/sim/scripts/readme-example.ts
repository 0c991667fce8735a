import { generateWorkload, runReplay } from '@kvmgr/sim';

// A generated multi-turn chat workload (runs anywhere; `loadMooncakeTrace(file)` reads a real trace).
const trace = generateWorkload(`
name: chat
seed: 1
duration_s: 300
arrival: { process: poisson, rate: 5 }
sessions: { share: 0.7, turns: { min: 2, max: 5 }, think_time_s: 10, system_prompts: 4, system_tokens: 1500 }
`);
for (const profile of ['vllm-default', 'kvmgr-default']) {
  const { summary } = runReplay({
    trace,
    profile, // engine defaults as data: block size, budget, max seqs, eviction, scheduler, router
    model: 'meta-llama/Llama-3.1-8B-Instruct',
    gpu: 'H100',
    instances: 1,
    slo: { ttftMs: 2000, tpotMs: 100 },
    seed: 0,
  });
  console.log(profile, `${summary.requests} requests`, `hit ${(100 * summary.hitRate).toFixed(1)}%`, `goodput ${summary.goodputRps.toFixed(2)} req/s`, `TTFT p99 ${summary.ttftMs.p99.toFixed(0)} ms`);
}
