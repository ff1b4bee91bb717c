/**
 * The sandbox installs amesh exactly as a real cluster gets it: the manifests in daemonset/,
 * server-side applied (src/install/). Re-exported here for the sandbox, demo and benches.
 *
 * Two gaps of the sandbox's API server are bridged here, and only here:
 * - it does not serve rbac.authorization.k8s.io: SANDBOX_API_SHIMS (schemaless CRDs for the four
 *   RBAC kinds) is applied first, so the RBAC manifests are stored unchanged (not enforced);
 * - it does not serve policy/v1, which no CRD can stand in for (a CRD group needs a dot): the
 *   controller's PodDisruptionBudget is left out (SANDBOX_INSTALL_VALUES, INSTALL_MANIFESTS).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_VALUES, installManifestFiles, type InstallValues } from '../install/render.js';
import { REPO_ROOT } from '../install/paths.js';

export { REPO_ROOT } from '../install/paths.js';
export { applyObjects, FIELD_MANAGER, readManifests, type ApplyResult } from '../install/apply.js';

/** Stand-ins for the RBAC kinds the sandbox's API server does not serve; apply before installing. */
export const SANDBOX_API_SHIMS = join(REPO_ROOT, 'src', 'sandbox', 'install-shims.yaml');

/** Kinds in the install manifests the sandbox cannot store at all. */
export const SANDBOX_UNSERVED_KINDS: ReadonlySet<string> = new Set(['PodDisruptionBudget']);

/** The install values the sandbox uses: the defaults, minus what it cannot store. */
export const SANDBOX_INSTALL_VALUES: Readonly<InstallValues> = Object.freeze({ ...DEFAULT_VALUES, 'controller.podDisruptionBudget': false });

function onlyUnservedKinds(file: string): boolean {
  const kinds = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => (d.toJSON() as { kind?: string } | null)?.kind).filter((k): k is string => Boolean(k));
  return kinds.length > 0 && kinds.every((k) => SANDBOX_UNSERVED_KINDS.has(k));
}

/**
 * In apply order: the shims, then the install manifests as daemonset/kustomization.yaml lists
 * them (CRDs, the node agents' file with the amesh-system namespace, RBAC, the controller), minus
 * files the sandbox cannot store. Values (`--set`) are applied by `renderInstall`, not here.
 */
export const INSTALL_MANIFESTS: readonly string[] = [SANDBOX_API_SHIMS, ...installManifestFiles().filter((f) => !onlyUnservedKinds(f))];
