/**
 * Which cluster the inspect commands talk to, and whether it is an amesh sandbox (then pods are
 * reached inside their network namespaces, see pod-http.ts).
 *
 * The kubeconfig: --kubeconfig; else, with --dir, that sandbox's; else as `amesh waypoint` does
 * (in-cluster, $KUBECONFIG, ~/.kube/config); and when none of those exists, the sandbox at
 * $AMESH_SANDBOX_DIR or /var/lib/amesh/sandbox if it runs.
 *
 * It is a sandbox when a sandbox state directory — the kubeconfig file's own directory (the
 * sandbox writes `<dir>/kubeconfig`), else --dir / $AMESH_SANDBOX_DIR / the default — holds a
 * state whose API port is the kubeconfig's server (`https://127.0.0.1:<apiPort>`). Matching the
 * server, not just the file, keeps a stale state directory from hijacking a real cluster.
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { AmeshError } from '../../errors/amesh-error.js';
import { readState, sandboxDir as defaultSandboxDir, sandboxPaths, type SandboxState } from '../../sandbox/state.js';
import { openPodHttp, type PodHttp } from './pod-http.js';

export interface ClusterAccessOptions {
  kubeconfig?: string;
  dir?: string;
}

export interface ClusterAccess {
  kubeConfig: KubeConfig;
  /** Set when the cluster is an amesh sandbox. */
  sandboxDir: string | undefined;
}

/** The sandbox's API server address as its kubeconfig writes it. */
export function isSandboxServer(server: string | undefined, state: Pick<SandboxState, 'apiPort'>): boolean {
  if (!server) return false;
  try {
    const url = new URL(server);
    return url.protocol === 'https:' && (url.hostname === '127.0.0.1' || url.hostname === 'localhost') && Number(url.port) === state.apiPort;
  } catch {
    return false;
  }
}

/** The kubeconfig file the default loader reads first ($KUBECONFIG's first entry). */
function kubeconfigEnvPath(env: NodeJS.ProcessEnv): string | undefined {
  return env.KUBECONFIG?.split(':').find((p) => p !== '');
}

async function loadFile(path: string | undefined): Promise<KubeConfig> {
  const { loadKubeConfig } = await import('../../controller/app.js');
  return loadKubeConfig(path);
}

export async function resolveClusterAccess(o: ClusterAccessOptions, env: NodeJS.ProcessEnv = process.env): Promise<ClusterAccess> {
  const fallbackDir = defaultSandboxDir(o.dir);
  let kubeconfigPath: string | undefined = o.kubeconfig;
  if (kubeconfigPath === undefined && o.dir !== undefined) kubeconfigPath = sandboxPaths(o.dir).kubeconfig;
  if (kubeconfigPath === undefined && !env.KUBERNETES_SERVICE_HOST) {
    const envPath = kubeconfigEnvPath(env);
    const home = env.HOME ? `${env.HOME}/.kube/config` : undefined;
    if (envPath) kubeconfigPath = envPath;
    else if (!(home && existsSync(home)) && existsSync(sandboxPaths(fallbackDir).kubeconfig)) kubeconfigPath = sandboxPaths(fallbackDir).kubeconfig;
  }
  if (o.dir !== undefined && o.kubeconfig === undefined && !(await readState(o.dir))) {
    throw new AmeshError('AMESH_SANDBOX_NOT_RUNNING', `no sandbox in ${o.dir}`, { hint: 'start one with `amesh sandbox up --dir ' + o.dir + '`' });
  }
  const kubeConfig = await loadFile(kubeconfigPath);
  const server = kubeConfig.getCurrentCluster()?.server;
  const candidates = [...new Set([...(kubeconfigPath ? [dirname(kubeconfigPath)] : []), fallbackDir])];
  for (const dir of candidates) {
    const state = await readState(dir).catch(() => undefined);
    if (state && isSandboxServer(server, state)) return { kubeConfig, sandboxDir: dir };
  }
  return { kubeConfig, sandboxDir: undefined };
}

/** Both at once, for the commands. */
export async function openClusterAccess(o: ClusterAccessOptions): Promise<ClusterAccess & { podHttp: PodHttp }> {
  const access = await resolveClusterAccess(o);
  const podHttp = await openPodHttp({ kubeConfig: access.kubeConfig, ...(access.sandboxDir !== undefined ? { sandboxDir: access.sandboxDir } : {}) });
  return { ...access, podHttp };
}
