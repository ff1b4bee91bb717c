/**
 * The install manifests with the user's options applied: what `amesh install` applies, what
 * `amesh install --dry-run` prints, and what the sandbox installs. The files in daemonset/ are the
 * defaults (and work unchanged with `kubectl apply -k daemonset/`); `--set key=value` overrides.
 *
 * CONTRACT (issue #10): the signatures here are shared — owner extends the values and rendering.
 */
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { readManifests } from './apply.js';
import { DAEMONSET_DIR } from './paths.js';

/** Options a user can `--set`; every key has a default that equals what daemonset/ holds. */
export interface InstallValues {
  /** Image registry/prefix, e.g. `amesh` → `amesh/node-agent:<tag>`. */
  'image.hub': string;
  'image.tag': string;
  'image.pullPolicy': 'Always' | 'IfNotPresent' | 'Never';
  logLevel: string;
  /** Node agent capture: `ebpf` (default) or `nftables`. */
  captureMode: 'ebpf' | 'nftables';
  /** Skip the CRDs (when Gateway API / Istio CRDs are already installed by someone else). */
  'crds.install': boolean;
}

export const DEFAULT_VALUES: Readonly<InstallValues> = {
  'image.hub': 'amesh',
  'image.tag': '0.1.0',
  'image.pullPolicy': 'IfNotPresent',
  logLevel: 'info',
  captureMode: 'ebpf',
  'crds.install': true,
};

/** The manifest files in apply order (CRDs first, then namespace + agents, then the controller). */
export function installManifestFiles(): string[] {
  return [join(DAEMONSET_DIR, 'amesh-node.yaml'), join(DAEMONSET_DIR, 'amesh-controller.yaml')];
}

/** Parse `--set key=value` flags; unknown keys and bad values are errors naming the valid ones. */
export function parseSetFlags(flags: readonly string[], base: Readonly<InstallValues> = DEFAULT_VALUES): InstallValues {
  if (flags.length) throw new Error('parseSetFlags: not implemented yet (issue #10 contract)');
  return { ...base };
}

/** Every object to apply, in order, with `values` applied. */
export async function renderInstall(values: Readonly<InstallValues> = DEFAULT_VALUES): Promise<KubernetesObject[]> {
  void values;
  const out: KubernetesObject[] = [];
  for (const file of installManifestFiles()) out.push(...(await readManifests(file)));
  return out;
}
