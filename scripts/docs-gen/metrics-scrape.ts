/**
 * `kvmgr metrics scrape` on the vLLM fixture, for docs/cli/metrics-scrape.md: serves
 * `packages/adapter-vllm/src/fixtures/vllm-v1-dp2.prom` on an ephemeral loopback port, runs the
 * CLI against it, prints its stdout with the port written as the documented `18931` (the port is
 * the only thing that differs between runs), and closes the server.
 *
 *   node --import tsx scripts/docs-gen/metrics-scrape.ts
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const body = readFileSync(join(root, 'packages/adapter-vllm/src/fixtures/vllm-v1-dp2.prom'));
const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
  res.end(body);
});
await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
const { port } = server.address() as AddressInfo;
try {
  const { stdout } = await promisify(execFile)(process.execPath, ['--conditions=@kvmgr/source', '--import', 'tsx', join(root, 'packages/cli/src/bin.ts'), 'metrics', 'scrape', `http://127.0.0.1:${port}/vllm-v1-dp2.prom`]);
  process.stdout.write(stdout.replaceAll(`127.0.0.1:${port}`, '127.0.0.1:18931'));
} finally {
  server.close();
}
