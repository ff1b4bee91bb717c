/**
 * Sends the mirrored copies of one HTTP/1.1 request (filters/mirror.ts decides and bounds them):
 * each copy goes to one endpoint of its cluster with the `-shadow` Host, gets the request body as
 * it streams (a copy falling more than `maxBufferedBytes` behind is aborted, never buffered), and
 * its answer is drained and dropped. Failures are only logged.
 */
import http from 'node:http';
import type { Readable } from 'node:stream';
import type { Logger } from '../../telemetry/logger.js';
import type { Mirror } from '../config.js';
import type { MutableHeaders } from '../filters/header-mutation.js';
import { shadowAuthority, shouldMirror, type MirrorBudget } from '../filters/mirror.js';
import type { UpstreamPools } from '../upstream.js';
import type { WaypointState } from '../waypoint-state.js';

export interface MirrorDeps {
  pools: UpstreamPools;
  budget: MirrorBudget;
  logger: Logger;
  random: () => number;
}

export interface MirrorTarget {
  mirrors: readonly Mirror[];
  method: string;
  path: string;
  authority: string;
  headers: MutableHeaders;
}

/** Starts the copies; `body` (the downstream request) feeds them, absent = bodiless. */
export function sendMirrors(deps: MirrorDeps, state: WaypointState, t: MirrorTarget, body: Readable | undefined): void {
  for (const mirror of t.mirrors) {
    const req = mirrorRequest(deps, state, mirror, t);
    if (!req) continue;
    if (!body) {
      req.end();
      continue;
    }
    body.on('data', (chunk: Buffer) => {
      if (req.destroyed) return;
      if (req.writableLength > deps.budget.limits.maxBufferedBytes) req.destroy();
      else req.write(chunk);
    });
    body.once('end', () => req.end());
  }
}

function mirrorRequest(deps: MirrorDeps, state: WaypointState, mirror: Mirror, t: MirrorTarget): http.ClientRequest | undefined {
  if (!shouldMirror(mirror.percent, deps.random)) return undefined;
  const runtime = state.clusters.get(mirror.cluster);
  const endpoint = runtime?.balancer.pick();
  if (!runtime || !endpoint || !deps.budget.tryAcquire()) return undefined;
  const req = http.request({
    agent: deps.pools.agentFor(endpoint.endpoint, runtime.cluster.connectionPool),
    host: endpoint.endpoint.address,
    port: endpoint.endpoint.port,
    method: t.method,
    path: t.path,
    headers: { ...t.headers, host: shadowAuthority(t.authority) } as http.OutgoingHttpHeaders,
  });
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    deps.budget.release();
  };
  req.on('response', (res) => {
    res.resume();
    res.once('end', release);
    res.once('close', release);
  });
  req.on('error', (err) => {
    deps.logger.debug({ cluster: mirror.cluster, err: err.message }, 'mirror request failed');
    release();
  });
  req.once('close', release);
  return req;
}
