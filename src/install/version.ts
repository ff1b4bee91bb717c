/**
 * Versions for `amesh version`: the client's (package.json), and the server's — the controller's
 * and the node agents' — read from the cluster. Neither the controller nor the agent serves a
 * version endpoint yet, so a component's version is its image tag: the workload's template (what
 * is being rolled out) and every running pod's image (what actually runs; several during an
 * upgrade). Pure summarising is split from reading for tests.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1Pod, type V1PodTemplateSpec } from '@kubernetes/client-node';
import { REPO_ROOT } from './paths.js';
import { selectorString } from './rollout.js';

export const VERSION_SOURCE_NOTE = 'the controller and node agents expose no version endpoint yet: server versions are their images’ tags';

/** The client's version (package.json next to the code); `unknown` when it cannot be read. */
export function clientVersion(root: string = REPO_ROOT): string {
  try {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The tag of an image reference (`latest` without one; the digest when pinned by digest). */
export function imageTag(image: string): string {
  const at = image.indexOf('@');
  if (at >= 0) return image.slice(at + 1);
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  return colon > slash ? image.slice(colon + 1) : 'latest';
}

export interface ComponentVersion {
  component: 'controller' | 'node-agent';
  /** `namespace/name` of the workload. */
  workload: string;
  installed: boolean;
  /** The template's image and its tag (what the workload rolls out). */
  image?: string;
  version?: string;
  /** Running pods per image (several during a rollout). */
  pods: Array<{ image: string; version: string; count: number; nodes: string[] }>;
}

function templateImage(template: V1PodTemplateSpec | undefined): string | undefined {
  return template?.spec?.containers[0]?.image;
}

/** Pure: one component from its workload template and pods. */
export function summarise(component: ComponentVersion['component'], workload: string, template: V1PodTemplateSpec | undefined, pods: readonly V1Pod[]): ComponentVersion {
  if (!template) return { component, workload, installed: false, pods: [] };
  const image = templateImage(template);
  const byImage = new Map<string, { count: number; nodes: string[] }>();
  for (const pod of pods) {
    if (pod.status?.phase !== 'Running' || pod.metadata?.deletionTimestamp) continue;
    const podImage = pod.spec?.containers[0]?.image ?? '?';
    const entry = byImage.get(podImage) ?? { count: 0, nodes: [] };
    entry.count++;
    if (pod.spec?.nodeName) entry.nodes.push(pod.spec.nodeName);
    byImage.set(podImage, entry);
  }
  return {
    component,
    workload,
    installed: true,
    ...(image ? { image, version: imageTag(image) } : {}),
    pods: [...byImage].map(([img, e]) => ({ image: img, version: imageTag(img), count: e.count, nodes: e.nodes.sort() })).sort((a, b) => a.image.localeCompare(b.image)),
  };
}

/** Pure: the human-readable lines. */
export function formatVersions(client: string, server: readonly ComponentVersion[] | undefined, short: boolean): string[] {
  const lines = [`client version: ${client}`];
  if (!server) return lines;
  const title = (c: ComponentVersion): string => (c.component === 'controller' ? 'controller version' : 'node agent version');
  for (const c of server) {
    if (!c.installed) {
      lines.push(`${title(c)}: not installed (${c.workload} not found)`);
      continue;
    }
    const running = c.pods.map((p) => p.version);
    const mixed = new Set(running).size > 1;
    if (short) {
      lines.push(`${title(c)}: ${mixed ? running.join(', ') : (c.version ?? '?')}`);
      continue;
    }
    const pods = c.pods.length ? c.pods.map((p) => `${p.count} pod(s) on ${p.image}${c.component === 'node-agent' && p.nodes.length ? ` (${p.nodes.join(', ')})` : ''}`).join('; ') : 'no running pods';
    lines.push(`${title(c)}: ${c.version ?? '?'} (image ${c.image ?? '?'}; ${pods})${mixed ? ' — several versions running: a rollout is in progress' : ''}`);
  }
  if (!short) lines.push(`note: ${VERSION_SOURCE_NOTE}`);
  return lines;
}

/** Reads the controller Deployment and node agent DaemonSet (and their pods) from the cluster. */
export async function serverVersions(kc: KubeConfig, namespace = 'amesh-system'): Promise<ComponentVersion[]> {
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const missing = (err: unknown): undefined => {
    if ((err as { code?: unknown }).code === 404) return undefined;
    throw err;
  };
  const deployment = await apps.readNamespacedDeployment({ name: 'amesh-controller', namespace }).catch(missing);
  const daemonSet = await apps.readNamespacedDaemonSet({ name: 'amesh-node', namespace }).catch(missing);
  const podsOf = async (selector: string): Promise<V1Pod[]> => (selector ? (await core.listNamespacedPod({ namespace, labelSelector: selector })).items : []);
  return [
    summarise('controller', `${namespace}/amesh-controller`, deployment?.spec?.template, await podsOf(selectorString(deployment?.spec?.selector))),
    summarise('node-agent', `${namespace}/amesh-node`, daemonSet?.spec?.template, await podsOf(selectorString(daemonSet?.spec?.selector))),
  ];
}
