/**
 * Runs a probe attempt inside the container's namespaces. The kubelet lives in another network
 * namespace (the sandbox fabric), where the pod's 127.0.0.1 or a host-network pod's ports are
 * not reachable, so every attempt enters the container's network (and mount) namespace through
 * its pid with `nsenter`: curl for httpGet, bash's /dev/tcp for tcpSocket, the command for exec.
 */
import { run } from '../network/run.js';
import type { ProbeAction } from './probe-plan.js';

export interface ProbeTarget {
  /** The container's main process. */
  pid: number;
  /** The container's environment (exec probes run with it). */
  env: Record<string, string>;
  timeoutMs: number;
}

export type ProbeRunner = (action: ProbeAction, target: ProbeTarget) => Promise<boolean>;

function hostPart(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** The argv that performs `action` (pure, for tests and messages). */
export function probeArgv(action: ProbeAction, target: Pick<ProbeTarget, 'pid' | 'timeoutMs'>): string[] {
  const enter = ['nsenter', `--target=${target.pid}`, '--net', '--mount'];
  const seconds = String(Math.max(1, Math.ceil(target.timeoutMs / 1000)));
  switch (action.kind) {
    case 'http':
      return [
        ...enter,
        'curl', '-s', '-g', '-k', '--noproxy', '*', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', seconds,
        ...action.headers.flatMap((h) => ['-H', `${h.name}: ${h.value}`]),
        `${action.scheme}://${hostPart(action.host)}:${action.port}${action.path}`,
      ];
    case 'tcp':
      return [...enter, 'timeout', seconds, 'bash', '-c', 'exec 3<>"/dev/tcp/$0/$1"', action.host, String(action.port)];
    case 'exec':
      return [...enter, 'timeout', seconds, ...action.command];
  }
}

export const nsenterProbeRunner: ProbeRunner = async (action, target) => {
  const result = await run(probeArgv(action, target), {
    where: `probe of pid ${target.pid}`,
    allowFailure: true,
    timeoutMs: target.timeoutMs + 2_000,
    ...(action.kind === 'exec' ? { env: target.env, replaceEnv: true } : {}),
  }).catch(() => undefined);
  if (!result || result.timedOut || result.code !== 0) return false;
  if (action.kind !== 'http') return true;
  const status = Number(result.stdout.trim());
  return status >= 200 && status < 400;
};
