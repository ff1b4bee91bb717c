/**
 * The gateway bench's correctness probe: before a path is measured, `requests` sequential HTTPS
 * requests on one keep-alive connection for EDGE_HOST (SNI and Host), the server certificate
 * verified against the edge CA for that name. A path is measured only when every answer is a 200
 * from the backend with the whole body, so a misrouted or failing proxy never yields a number.
 * Direct (plain HTTP, no Host) is probed the same way. Bounded: `timeoutMs` per request.
 */
import { readFile } from 'node:fs/promises';
import { Agent, request, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { EdgeTarget } from './waypoint-load.js';
import { BACKEND_HEADER } from './waypoint-topology.js';

export interface EdgeProbe {
  requests: number;
  /** 200 from v1 with `bytes` of body. */
  ok: number;
  /** Everything else, by `HTTP <status>`, `backend <x-backend>`, `short body`, or the error code. */
  failures: Record<string, number>;
  /** The DNS names of the certificate the server presented (HTTPS only). */
  certificateNames?: string[];
}

export async function probeEdge(port: number, edge: EdgeTarget, o: { requests: number; bytes: number; timeoutMs: number }): Promise<EdgeProbe> {
  const ca = edge.https ? await readFile(edge.https.caFile) : undefined;
  const agent = edge.https ? new HttpsAgent({ keepAlive: true, maxSockets: 1, ca, servername: edge.https.servername }) : new Agent({ keepAlive: true, maxSockets: 1 });
  const send = (edge.https ? httpsRequest : request) as (o: RequestOptions, cb: (res: IncomingMessage) => void) => ClientRequest;
  const probe: EdgeProbe = { requests: 0, ok: 0, failures: {} };
  const one = (): Promise<string | undefined> =>
    new Promise((resolve) => {
      const req = send({ host: '127.0.0.1', port, path: '/', agent, ...(edge.hostHeader ? { headers: { host: edge.hostHeader } } : {}) }, (res) => {
        let bytes = 0;
        if (edge.https && !probe.certificateNames) {
          const san = (res.socket as TLSSocket).getPeerCertificate().subjectaltname ?? '';
          probe.certificateNames = san.split(', ').filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4));
        }
        res.on('data', (chunk: Buffer) => (bytes += chunk.length));
        res.once('end', () => {
          if (res.statusCode !== 200) resolve(`HTTP ${res.statusCode}`);
          else if (res.headers[BACKEND_HEADER] !== 'v1') resolve(`backend ${String(res.headers[BACKEND_HEADER])}`);
          else resolve(bytes === o.bytes ? undefined : 'short body');
        });
        res.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      });
      req.setTimeout(o.timeoutMs, () => req.destroy(Object.assign(new Error('timed out'), { code: 'TIMEOUT' })));
      req.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      req.end();
    });
  try {
    for (let i = 0; i < o.requests; i++) {
      const failure = await one();
      probe.requests++;
      if (failure === undefined) probe.ok++;
      else probe.failures[failure] = (probe.failures[failure] ?? 0) + 1;
    }
  } finally {
    agent.destroy();
  }
  return probe;
}

/** Why a probe disqualifies its path; empty = every request was answered correctly. */
export function judgeEdgeProbe(probe: EdgeProbe, expectedName?: string): string[] {
  const problems: string[] = [];
  if (probe.ok !== probe.requests || probe.requests === 0) problems.push(`${probe.ok}/${probe.requests} requests answered 200 by the backend with the whole body (${JSON.stringify(probe.failures)})`);
  if (expectedName !== undefined && !probe.certificateNames?.includes(expectedName)) problems.push(`the server presented a certificate for ${JSON.stringify(probe.certificateNames ?? [])}, not ${expectedName}`);
  return problems;
}
