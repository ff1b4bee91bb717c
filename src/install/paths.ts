/** Where the install manifests live, relative to the repository (works from src/ under tsx and from dist/src/). */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..').replace(/\/dist$/, '');
export const DAEMONSET_DIR = join(REPO_ROOT, 'daemonset');
export const WAYPOINT_TEMPLATE_DIR = join(REPO_ROOT, 'waypoint');
