/**
 * Server-side apply of manifest documents — the one path `amesh install`, the sandbox and the demo
 * use: every object is applied with field manager `amesh-install`, so re-running is idempotent and
 * shows what changed.
 */
import { readFile } from 'node:fs/promises';
import { KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { AmeshError } from '../errors/amesh-error.js';

export const FIELD_MANAGER = 'amesh-install';

/** Parse a multi-document YAML file into objects; names the file and document on failure. */
export async function readManifests(path: string): Promise<KubernetesObject[]> {
  const text = await readFile(path, 'utf8');
  const out: KubernetesObject[] = [];
  parseAllDocuments(text).forEach((doc, index) => {
    if (doc.errors.length) throw new AmeshError('AMESH_CONFIG_INVALID', `${path}: document ${index + 1} is not valid YAML: ${doc.errors[0]?.message}`);
    const value = doc.toJSON() as KubernetesObject | null;
    if (!value) return;
    if (!value.apiVersion || !value.kind || !value.metadata?.name) throw new AmeshError('AMESH_CONFIG_INVALID', `${path}: document ${index + 1} needs apiVersion, kind and metadata.name`);
    out.push(value);
  });
  return out;
}

export interface ApplyResult {
  object: KubernetesObject;
  /** 'created' | 'configured' | 'unchanged' — like kubectl's output. */
  outcome: 'created' | 'configured' | 'unchanged';
}

function describe(o: KubernetesObject): string {
  return `${o.kind}/${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`;
}

/** Server-side apply every object, in order (namespaces first, as written in the manifests). */
export async function applyObjects(kubeConfig: KubeConfig, objects: KubernetesObject[]): Promise<ApplyResult[]> {
  const api = KubernetesObjectApi.makeApiClient(kubeConfig);
  const results: ApplyResult[] = [];
  for (const object of objects) {
    let before: KubernetesObject | undefined;
    try {
      before = await api.read({ apiVersion: object.apiVersion ?? '', kind: object.kind ?? '', metadata: { name: object.metadata?.name ?? '', namespace: object.metadata?.namespace ?? '' } });
    } catch {
      before = undefined;
    }
    try {
      const after = await api.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
      const outcome = !before ? 'created' : before.metadata?.resourceVersion === after.metadata?.resourceVersion ? 'unchanged' : 'configured';
      results.push({ object: after, outcome });
    } catch (err) {
      const body = (err as { body?: unknown }).body;
      const message = typeof body === 'string' ? body : body ? JSON.stringify(body) : (err as Error).message;
      throw new AmeshError('AMESH_SANDBOX_FAILED', `applying ${describe(object)} failed: ${message}`, { cause: err });
    }
  }
  return results;
}
