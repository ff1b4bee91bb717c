/**
 * Reading one node agent's admin endpoints (127.0.0.1:15000 in its network namespace) through
 * PodHttp: `/config_dump` as a ConfigDumpView, `/debug/denials` as its records. Errors name the agent.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { AmeshError } from '../../errors/amesh-error.js';
import { readConfigDump } from './config-dump-view.js';
import { AGENT_ADMIN_PORT, podName } from './mesh-pods.js';
import type { PodHttp } from './pod-http.js';
import type { AgentDump } from './ztunnel-config-format.js';

/** `{"error": "…"}` bodies (the admin server's) as `: …`. */
function errorText(body: string): string {
  try {
    const e = (JSON.parse(body) as { error?: unknown }).error;
    if (typeof e === 'string') return `: ${e}`;
  } catch {
    // not JSON: the raw start below
  }
  return body.trim() ? `: ${body.trim().slice(0, 200)}` : '';
}

async function getJson(podHttp: PodHttp, agent: V1Pod, path: string, timeoutMs: number): Promise<unknown> {
  const r = await podHttp.get(agent, AGENT_ADMIN_PORT, path, { timeoutMs });
  if (r.status !== 200) throw new AmeshError('AMESH_COMMAND_FAILED', `node agent ${podName(agent)}: ${path} answered HTTP ${r.status}${errorText(r.body)}`);
  try {
    return JSON.parse(r.body);
  } catch (err) {
    throw new AmeshError('AMESH_COMMAND_FAILED', `node agent ${podName(agent)}: ${path} is not JSON`, { cause: err });
  }
}

export async function readAgentDump(podHttp: PodHttp, agent: V1Pod, timeoutMs = 10_000): Promise<AgentDump> {
  const view = readConfigDump(await getJson(podHttp, agent, '/config_dump', timeoutMs));
  return { node: agent.spec?.nodeName ?? view.node, view };
}

/** `/debug/denials`: `{capacity, total, denials: [...]}` (or a bare array), newest first. */
export async function readAgentDenials(podHttp: PodHttp, agent: V1Pod, timeoutMs = 10_000): Promise<unknown[]> {
  const body = await getJson(podHttp, agent, '/debug/denials', timeoutMs);
  if (Array.isArray(body)) return body;
  const list = (body as { denials?: unknown } | null)?.denials;
  return Array.isArray(list) ? list : [];
}
