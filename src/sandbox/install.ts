/**
 * The sandbox installs amesh exactly as a real cluster gets it: the manifests in daemonset/,
 * server-side applied (src/install/). Re-exported here for the sandbox, demo and benches.
 *
 * The sandbox's API server serves every kind the manifests hold, RBAC and policy/v1
 * PodDisruptionBudget included (stored, not enforced: src/sandbox/apiserver/registry.ts), so
 * nothing is bridged or left out any more. Nothing here reads a file when the module loads
 * (`amesh --help` must work in an image without daemonset/).
 */
import { join } from 'node:path';
import { DEFAULT_VALUES, type InstallValues } from '../install/render.js';
import { REPO_ROOT } from '../install/paths.js';

export { REPO_ROOT } from '../install/paths.js';
export { applyObjects, FIELD_MANAGER, readManifests, type ApplyResult } from '../install/apply.js';

/**
 * @deprecated The sandbox now serves RBAC itself; this file holds no documents any more and is
 * kept only until src/sandbox/lifecycle.ts stops applying it (applying it is a no-op).
 */
export const SANDBOX_API_SHIMS = join(REPO_ROOT, 'src', 'sandbox', 'install-shims.yaml');

/** @deprecated The sandbox installs with the defaults (the PDB included); use DEFAULT_VALUES. */
export const SANDBOX_INSTALL_VALUES: Readonly<InstallValues> = DEFAULT_VALUES;
