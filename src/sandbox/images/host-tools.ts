/**
 * Which host programs the image catalog can map images onto. Read once per process: installing
 * nginx or busybox while a sandbox runs needs a daemon restart, which `sandbox up` does anyway.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface HostTools {
  /** The Node binary that runs amesh's own programs (the current one). */
  node: string;
  /** `node`'s version ("24.11.1"): which of its own flags it accepts (src/config/runtime-flags.ts). */
  nodeVersion: string;
  /** `<repo>/bin/amesh.js`. */
  amesh: string;
  /** Absolute path of busybox, when installed. */
  busybox?: string;
  /** Absolute path of nginx, when installed. */
  nginx?: string;
}

/** The repository root, from this file's location (src/… or dist/src/…), like src/cli/demo.ts. */
export const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..').replace(/\/dist$/, '');

const SEARCH_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

export function findHostProgram(name: string): string | undefined {
  return SEARCH_PATH.map((dir) => join(dir, name)).find((p) => existsSync(p));
}

let cached: HostTools | undefined;

export function hostTools(): HostTools {
  cached ??= {
    node: process.execPath,
    nodeVersion: process.versions.node,
    amesh: join(REPO_ROOT, 'bin', 'amesh.js'),
    ...optional('busybox', findHostProgram('busybox')),
    ...optional('nginx', findHostProgram('nginx')),
  };
  return cached;
}

function optional<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, string>);
}
