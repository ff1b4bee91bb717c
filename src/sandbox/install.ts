/**
 * The sandbox installs amesh exactly as a real cluster gets it: the manifests in daemonset/,
 * server-side applied (src/install/). Re-exported here for the sandbox, demo and benches.
 *
 * The sandbox's API server serves every kind the manifests hold, RBAC and policy/v1
 * PodDisruptionBudget included (stored, not enforced: src/sandbox/apiserver/registry.ts), so
 * nothing is bridged or left out any more. Nothing here reads a file when the module loads
 * (`amesh --help` must work in an image without daemonset/).
 */
export { REPO_ROOT } from '../install/paths.js';
export { applyObjects, FIELD_MANAGER, readManifests, type ApplyResult } from '../install/apply.js';
