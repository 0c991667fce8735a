/**
 * A gateway replica in a process of its own, for tests that kill a replica as a crash does
 * (SIGKILL: no lease released, no connection closed politely). Usage:
 * `node --conditions=@kvmgr/source --import tsx replicas-process.ts '<config JSON>'`; prints
 * `READY <url>` on stdout once it routes, closes on SIGTERM.
 */
import { createGateway } from '../src/index.js';

const cfg = JSON.parse(process.argv[2] ?? '{}') as Parameters<typeof createGateway>[0];
const gw = await createGateway(cfg, { logStream: { write: () => true } });
process.stdout.write(`READY ${gw.url}\n`);
process.once('SIGTERM', () => {
  void gw.close().then(() => process.exit(0));
});
