/**
 * What the numbers were measured with: versions of everything on the path, the machine, and the
 * HTTP/2 settings amesh had in force. Ratios are only comparable between reports whose
 * environments match.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseHaproxyVersion } from './comparators/haproxy.js';
import { parseNginxVersion } from './comparators/nginx.js';
import { REPO_DIR } from './testbed.js';
import { wrkVersion } from './waypoint-load.js';

/** "3.12" from `iperf3 --version` ("iperf 3.12 (cJSON 1.7.15)"). */
export function parseIperf3Version(text: string): string | undefined {
  return /iperf (\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1];
}

/** "5.68 (OpenSSL 3.0.19)" from `stunnel -version` (which prints to stderr). */
export function parseStunnelVersion(text: string): string | undefined {
  const version = /stunnel (\d+\.\d+)/.exec(text)?.[1];
  if (!version) return undefined;
  const openssl = /Running\s+with (OpenSSL [^\s]+)/.exec(text)?.[1];
  return openssl ? `${version} (${openssl})` : version;
}

async function output(command: string, args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await promisify(execFile)(command, args, { timeout: 10_000 });
    return `${stdout}\n${stderr}`;
  } catch (err) {
    // stunnel -version exits non-zero on some builds; what it printed is still the answer.
    const e = err as { stdout?: string; stderr?: string };
    return `${e.stdout ?? ''}\n${e.stderr ?? ''}`;
  }
}

export interface ToolVersions {
  iperf3: string;
  stunnel: string;
  haproxy: string;
  nginx: string;
  wrk: string;
}

export async function toolVersions(): Promise<ToolVersions> {
  const [iperf3, stunnel, haproxy, nginx, wrk] = await Promise.all([
    output('iperf3', ['--version']),
    output('stunnel', ['-version']),
    output('haproxy', ['-v']),
    output('nginx', ['-v']),
    wrkVersion(),
  ]);
  return {
    iperf3: parseIperf3Version(iperf3) ?? 'not found',
    stunnel: parseStunnelVersion(stunnel) ?? 'not found',
    haproxy: parseHaproxyVersion(haproxy) ?? 'not found',
    nginx: parseNginxVersion(nginx) ?? 'not found',
    wrk: wrk ?? 'not found',
  };
}

export async function ameshVersion(): Promise<string> {
  let version = 'unknown';
  try {
    version = (JSON.parse(await readFile(join(REPO_DIR, 'package.json'), 'utf8')) as { version?: string }).version ?? version;
  } catch {
    // keep "unknown"
  }
  const commit = (await output('git', ['-C', REPO_DIR, 'rev-parse', '--short', 'HEAD'])).trim();
  const dirty = (await output('git', ['-C', REPO_DIR, 'status', '--porcelain'])).trim();
  return /^[0-9a-f]{4,}$/.test(commit) ? `${version} (git ${commit}${dirty ? ', uncommitted changes' : ''})` : version;
}

/**
 * HBONE_H2_SETTINGS as compiled into this build (dist/src/hbone/settings.js, else client.js), or
 * "unknown" when neither exports it.
 */
export async function h2Settings(): Promise<unknown> {
  for (const file of ['settings.js', 'client.js']) {
    try {
      const mod = (await import(new URL(`../src/hbone/${file}`, import.meta.url).href)) as { HBONE_H2_SETTINGS?: unknown };
      if (mod.HBONE_H2_SETTINGS !== undefined) return mod.HBONE_H2_SETTINGS;
    } catch {
      // try the next module
    }
  }
  return 'unknown';
}

export function cpuDescription(): string {
  const list = cpus();
  return `${list.length} × ${list[0]?.model.trim() ?? 'unknown'}`;
}

export const kernelRelease = (): string => release();
