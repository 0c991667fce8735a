/**
 * A light streaming client for the fidelity bench: `node:http` with a keep-alive agent, SSE
 * events split by hand (`data: …` lines, blank-line separated, as vLLM writes them). It costs the
 * shared event loop less per chunk than `fetch` + WHATWG streams, so an in-process measurement
 * charges less of the client's own work to the server.
 */
import { Agent, request } from 'node:http';

/**
 * POSTs `body` (JSON text) to `url` and calls `onEvent` with each SSE event's parsed JSON (not `[DONE]`).
 * @returns when the response ends.
 * @throws Error for a status other than 200 or a socket error.
 */
export function postSse(url: string, payload: string, agent: Agent, onEvent: (event: unknown) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`POST ${url}: status ${res.statusCode}, expected 200`));
        return;
      }
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (s: string) => {
        buf += s;
        for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
          const event = buf.slice(0, end);
          buf = buf.slice(end + 2);
          for (const line of event.split('\n')) {
            if (!line.startsWith('data: ')) continue;
            const data = line.slice(6);
            if (data !== '[DONE]') onEvent(JSON.parse(data));
          }
        }
      });
      res.on('end', resolve);
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** A keep-alive agent for {@link postSse} (close it with `destroy()`). */
export function sseAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
}
