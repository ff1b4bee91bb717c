/**
 * Pod volumes on the host filesystem. The sandbox shares the host's filesystem, so:
 * - hostPath is used as is (bind-mounted only when mountPath differs from the path);
 * - emptyDir, configMap, secret, downwardAPI and projected volumes (the service-account token
 *   volume) are written under `<podDir>/volumes/<name>/` and bind-mounted at their mountPath in
 *   the container's private mount namespace.
 * A bind mount needs its mount point to exist on the host: missing ones are created and
 * reference-counted across every pod of this process, and removed (if still empty) when the last
 * pod using them goes — never while another pod's mount namespace still uses them.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, rename, rm, rmdir, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, normalize } from 'node:path';
import { fieldPathValue, type RuntimeFacts } from './pod-env.js';
import type { BindMount } from './container-runtime.js';
import type { Container, DownwardApiFile, KeyToPath, Pod, Volume } from './pod-types.js';

export const SERVICE_ACCOUNT_MOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface VolumeSources {
  configMap(namespace: string, name: string): Record<string, string> | undefined;
  /** base64 values, as stored. */
  secret(namespace: string, name: string): Record<string, string> | undefined;
  issueToken?: (pod: Pod, o: { audience?: string; expirationSeconds?: number }) => Promise<string>;
  clusterCaPem?: string;
}

/** Host directory (or hostPath) backing each volume of a pod. */
export type PreparedVolumes = Map<string, { path: string; readOnly: boolean }>;

type FileMap = Map<string, string | Buffer>;

function safeJoin(dir: string, relative: string): string {
  const clean = normalize(relative);
  if (clean.startsWith('..') || clean.startsWith('/')) throw new Error(`volume item path "${relative}" leaves the volume`);
  return join(dir, clean);
}

function keyFiles(data: Record<string, string>, items: KeyToPath[] | undefined, decode: boolean, into: FileMap, what: string): void {
  const value = (v: string): string | Buffer => (decode ? Buffer.from(v, 'base64') : v);
  if (!items?.length) {
    for (const [key, v] of Object.entries(data)) into.set(key, value(v));
    return;
  }
  for (const item of items) {
    const v = data[item.key];
    if (v === undefined) throw new Error(`${what} has no key "${item.key}"`);
    into.set(item.path, value(v));
  }
}

function downwardFiles(pod: Pod, items: DownwardApiFile[] | undefined, facts: RuntimeFacts, into: FileMap): void {
  for (const item of items ?? []) {
    if (item.fieldRef) into.set(item.path, fieldPathValue(pod, item.fieldRef.fieldPath, facts) ?? '');
  }
}

/** The files of a generated (non-hostPath, non-emptyDir) volume; throws naming what is missing. */
export async function volumeFiles(pod: Pod, volume: Volume, sources: VolumeSources, facts: RuntimeFacts): Promise<FileMap> {
  const namespace = pod.metadata.namespace ?? 'default';
  const files: FileMap = new Map();
  const configMap = (name: string, items: KeyToPath[] | undefined, optional: boolean | undefined): void => {
    let data = sources.configMap(namespace, name);
    // Every namespace has kube-root-ca.crt in a real cluster; fall back to the CA we were given.
    if (!data && name === 'kube-root-ca.crt' && sources.clusterCaPem) data = { 'ca.crt': sources.clusterCaPem };
    if (!data) {
      if (optional) return;
      throw new Error(`configmap "${name}" not found`);
    }
    keyFiles(data, items, false, files, `configmap "${name}"`);
  };
  const secret = (name: string, items: KeyToPath[] | undefined, optional: boolean | undefined): void => {
    const data = sources.secret(namespace, name);
    if (!data) {
      if (optional) return;
      throw new Error(`secret "${name}" not found`);
    }
    keyFiles(data, items, true, files, `secret "${name}"`);
  };
  if (volume.configMap) configMap(volume.configMap.name ?? '', volume.configMap.items, volume.configMap.optional);
  if (volume.secret) secret(volume.secret.secretName ?? '', volume.secret.items, volume.secret.optional);
  if (volume.downwardAPI) downwardFiles(pod, volume.downwardAPI.items, facts, files);
  for (const source of volume.projected?.sources ?? []) {
    if (source.configMap) configMap(source.configMap.name ?? '', source.configMap.items, source.configMap.optional);
    if (source.secret) secret(source.secret.name ?? '', source.secret.items, source.secret.optional);
    if (source.downwardAPI) downwardFiles(pod, source.downwardAPI.items, facts, files);
    if (source.serviceAccountToken) {
      if (!sources.issueToken) throw new Error('this kubelet cannot issue service-account tokens (no issuer configured)');
      const t = source.serviceAccountToken;
      files.set(t.path, await sources.issueToken(pod, { ...(t.audience ? { audience: t.audience } : {}), ...(t.expirationSeconds ? { expirationSeconds: t.expirationSeconds } : {}) }));
    }
  }
  return files;
}

/**
 * The volume Kubernetes' ServiceAccount admission adds when a pod does not opt out; added here
 * when the API server did not (pure).
 */
export function withServiceAccountVolume(pod: Pod): Pod {
  if (pod.spec.automountServiceAccountToken === false) return pod;
  const mounted = (c: Container): boolean => (c.volumeMounts ?? []).some((m) => m.mountPath.replace(/\/$/, '') === SERVICE_ACCOUNT_MOUNT);
  if (pod.spec.containers.every(mounted)) return pod;
  const name = 'kube-api-access-sandbox';
  const volume: Volume = {
    name,
    projected: {
      sources: [
        { serviceAccountToken: { path: 'token', expirationSeconds: 3607 } },
        { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        { downwardAPI: { items: [{ path: 'namespace', fieldRef: { fieldPath: 'metadata.namespace' } }] } },
      ],
    },
  };
  return {
    ...pod,
    spec: {
      ...pod.spec,
      volumes: [...(pod.spec.volumes ?? []), volume],
      containers: pod.spec.containers.map((c) => (mounted(c) ? c : { ...c, volumeMounts: [...(c.volumeMounts ?? []), { name, mountPath: SERVICE_ACCOUNT_MOUNT, readOnly: true }] })),
    },
  };
}

/** Writes every volume of `pod` under `podDir/volumes/`; throws naming the volume that failed. */
export async function prepareVolumes(pod: Pod, podDir: string, sources: VolumeSources, facts: RuntimeFacts): Promise<PreparedVolumes> {
  const prepared: PreparedVolumes = new Map();
  for (const volume of pod.spec.volumes ?? []) {
    if (volume.hostPath) {
      const { path, type } = volume.hostPath;
      if (type === 'DirectoryOrCreate' || (!type && !existsSync(path))) await mkdir(path, { recursive: true });
      if (type === 'FileOrCreate' && !existsSync(path)) {
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, '');
      }
      prepared.set(volume.name, { path, readOnly: false });
      continue;
    }
    const dir = join(podDir, 'volumes', volume.name);
    await mkdir(dir, { recursive: true });
    if (volume.emptyDir) {
      prepared.set(volume.name, { path: dir, readOnly: false });
      continue;
    }
    let files: FileMap;
    try {
      files = await volumeFiles(pod, volume, sources, facts);
    } catch (err) {
      throw new Error(`volume "${volume.name}": ${(err as Error).message}`, { cause: err });
    }
    for (const [relative, content] of files) {
      const file = safeJoin(dir, relative);
      await mkdir(dirname(file), { recursive: true });
      // Replace atomically: a refresh (new token, changed ConfigMap) must never show a half file.
      await writeFile(`${file}.tmp`, content, { mode: 0o644 });
      await rename(`${file}.tmp`, file);
    }
    prepared.set(volume.name, { path: dir, readOnly: true });
  }
  return prepared;
}

/** The bind mounts of one container (pure); throws naming an unknown volume. */
export function containerMounts(container: Container, volumes: PreparedVolumes): BindMount[] {
  const mounts: BindMount[] = [];
  for (const m of container.volumeMounts ?? []) {
    const v = volumes.get(m.name);
    if (!v) throw new Error(`container ${container.name} mounts volume "${m.name}", which the pod does not define`);
    const source = m.subPath ? safeJoin(v.path, m.subPath) : v.path;
    if (normalize(source) === normalize(m.mountPath)) continue;
    mounts.push({ source, target: m.mountPath, readOnly: m.readOnly ?? v.readOnly });
  }
  return mounts;
}

// Mount points this process created on the host, with how many pods use each.
const createdMountPoints = new Map<string, { users: number; created: string[] }>();

/**
 * Makes sure every mount target exists (as a directory, or a file when the source is a file);
 * returns the targets to hand back to `releaseMountPoints`.
 */
export function claimMountPoints(mounts: BindMount[]): Promise<string[]> {
  // Serialised: two pods starting together must not both decide to create the same directory.
  const result = mountPointLock.then(() => claim(mounts));
  mountPointLock = result.catch(() => undefined);
  return result;
}

let mountPointLock: Promise<unknown> = Promise.resolve();

async function claim(mounts: BindMount[]): Promise<string[]> {
  const claimed: string[] = [];
  for (const m of mounts) {
    const known = createdMountPoints.get(m.target);
    if (known) {
      known.users++;
      claimed.push(m.target);
      continue;
    }
    if (existsSync(m.target)) continue;
    // Remember each directory we create, outermost first, to remove exactly those later.
    const created: string[] = [];
    for (let p = dirname(m.target); !existsSync(p); p = dirname(p)) created.unshift(p);
    const isFile = existsSync(m.source) && statSync(m.source).isFile();
    await mkdir(dirname(m.target), { recursive: true });
    if (isFile) await writeFile(m.target, '', { flag: 'a' });
    else await mkdir(m.target, { recursive: true });
    created.push(m.target);
    createdMountPoints.set(m.target, { users: 1, created });
    claimed.push(m.target);
  }
  return claimed;
}

export function releaseMountPoints(targets: string[]): Promise<void> {
  const result = mountPointLock.then(() => release(targets));
  mountPointLock = result.catch(() => undefined);
  return result;
}

async function release(targets: string[]): Promise<void> {
  for (const target of targets) {
    const known = createdMountPoints.get(target);
    if (!known || --known.users > 0) continue;
    createdMountPoints.delete(target);
    for (const p of [...known.created].reverse()) {
      // Only what is still empty: someone may have put something there meanwhile.
      await (p === target ? unlink(p).catch(() => rmdir(p)) : rmdir(p)).catch(() => undefined);
    }
  }
}

export async function removeVolumes(podDir: string): Promise<void> {
  await rm(join(podDir, 'volumes'), { recursive: true, force: true });
}
