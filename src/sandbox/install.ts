/**
 * The sandbox installs amesh exactly as a real cluster gets it: the manifests in daemonset/,
 * server-side applied (src/install/). Re-exported here for the sandbox, demo and benches.
 */
import { join } from 'node:path';
import { REPO_ROOT } from '../install/paths.js';

export { REPO_ROOT } from '../install/paths.js';
export { applyObjects, FIELD_MANAGER, readManifests, type ApplyResult } from '../install/apply.js';

/** In order: the node agents' file creates the amesh-system namespace the controller lives in. */
export const INSTALL_MANIFESTS = [join(REPO_ROOT, 'daemonset', 'amesh-node.yaml'), join(REPO_ROOT, 'daemonset', 'amesh-controller.yaml')];
