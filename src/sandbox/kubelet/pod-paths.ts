/**
 * Where a pod lives on disk, shared by the kubelet and the sandbox CLI (`logs`, `exec`):
 *
 *   <stateDir>/pods/<pod uid>/
 *     logs/<container>/<restartCount>.log   one file per run; current.log → the latest
 *     containers/<container>.json           how the running instance was started (ContainerRecord)
 *     containers/<container>/               generated files (nginx.conf, ...)
 *     volumes/<volume>/                     emptyDir, configMap, secret, projected
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NetworkNamespace } from './container-runtime.js';

/** What `sandbox exec` needs to run a command like the container runs. */
export interface ContainerRecord {
  pid: number;
  argv: string[];
  env: Record<string, string>;
  network: NetworkNamespace;
  restartCount: number;
}

export function podDirectory(stateDir: string, podUid: string): string {
  return join(stateDir, 'pods', podUid);
}

export function containerLogDirectory(stateDir: string, podUid: string, container: string): string {
  return join(podDirectory(stateDir, podUid), 'logs', container);
}

export function containerRecordPath(stateDir: string, podUid: string, container: string): string {
  return join(podDirectory(stateDir, podUid), 'containers', `${container}.json`);
}

/**
 * The log of the container's current run, or of the run before it (`previous`); undefined when
 * there is none.
 */
export async function containerLogPath(stateDir: string, podUid: string, container: string, previous = false): Promise<string | undefined> {
  const dir = containerLogDirectory(stateDir, podUid, container);
  let runs: number[];
  try {
    runs = (await readdir(dir))
      .map((n) => /^(\d+)\.log$/.exec(n)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  } catch {
    return undefined;
  }
  const run = runs[runs.length - (previous ? 2 : 1)];
  return run === undefined ? undefined : join(dir, `${run}.log`);
}

export async function readContainerRecord(stateDir: string, podUid: string, container: string): Promise<ContainerRecord | undefined> {
  try {
    return JSON.parse(await readFile(containerRecordPath(stateDir, podUid, container), 'utf8')) as ContainerRecord;
  } catch {
    return undefined;
  }
}
