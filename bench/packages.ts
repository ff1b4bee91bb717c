/**
 * The Debian packages `npm run bench` needs for the selected paths and scenarios, and installing
 * the missing ones (as scripts/setup.sh does: `apt-get install -y --no-install-recommends`, with a
 * policy-rc.d guard so haproxy's and nginx's packages do not start host services). Deciding what
 * is missing is pure; `installPackages` is the only part that runs apt-get.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { NGINX_STREAM_MODULE } from './comparators/nginx-pair.js';
import type { RunSettings } from './options.js';
import type { PathName } from './results.js';

/** A program (or file) the run needs and the Debian package that provides it. */
export interface Requirement {
  /** A command on PATH, or an absolute file path. */
  what: string;
  pkg: string;
}

/** What the selected paths and scenarios need, besides the basics every run uses (iproute2, curl, …). */
export function requirements(s: Pick<RunSettings, 'paths' | 'scenarios'>): Requirement[] {
  const uses = (p: PathName): boolean => s.paths.includes(p);
  const out: Requirement[] = [
    { what: 'nsenter', pkg: 'util-linux' },
    { what: 'ip', pkg: 'iproute2' },
    { what: 'ss', pkg: 'iproute2' },
    { what: 'curl', pkg: 'curl' },
    { what: 'getconf', pkg: 'libc-bin' },
  ];
  if (s.scenarios.includes('throughput')) out.push({ what: 'iperf3', pkg: 'iperf3' });
  if ((['maxrate', 'connrate', 'handshakes', 'l7'] as const).some((x) => s.scenarios.includes(x))) out.push({ what: 'wrk', pkg: 'wrk' });
  if (uses('stunnel')) out.push({ what: 'stunnel', pkg: 'stunnel4' });
  if (uses('haproxy') || s.scenarios.includes('l7')) out.push({ what: 'haproxy', pkg: 'haproxy' });
  if (uses('nginx') || s.scenarios.includes('l7')) out.push({ what: 'nginx', pkg: 'nginx-light' });
  if (uses('nginx')) out.push({ what: NGINX_STREAM_MODULE, pkg: 'libnginx-mod-stream' });
  if (uses('amesh-nft')) out.push({ what: 'nft', pkg: 'nftables' });
  return out;
}

async function present(what: string): Promise<boolean> {
  if (what.startsWith('/')) return existsSync(what);
  try {
    await promisify(execFile)('sh', ['-c', 'command -v "$1"', 'sh', what]);
    return true;
  } catch {
    return false;
  }
}

/** The requirements not met on this machine. */
export async function missingRequirements(reqs: readonly Requirement[]): Promise<Requirement[]> {
  const checks = await Promise.all(reqs.map(async (r) => ((await present(r.what)) ? undefined : r)));
  return checks.filter((r): r is Requirement => r !== undefined);
}

/** Distinct package names, in order. */
export const packagesOf = (reqs: readonly Requirement[]): string[] => [...new Set(reqs.map((r) => r.pkg))];

function run(command: string, args: string[], say: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    let lastLines = '';
    const keep = (chunk: Buffer): void => {
      lastLines = `${lastLines}${chunk.toString()}`.slice(-2000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    // apt-get -qq is silent for minutes on a slow mirror: a heartbeat shows it is alive.
    const started = Date.now();
    const timer = setInterval(() => say(`      … ${command} ${args[0]} still running (${Math.round((Date.now() - started) / 1000)} s)`), 15_000);
    child.on('error', (err) => {
      clearInterval(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearInterval(timer);
      if (code === 0) resolve();
      else reject(new Error(`\`${command} ${args.join(' ')}\` exited with ${code}:\n${lastLines.trim()}`));
    });
  });
}

/** `apt-get update` then `apt-get install -y` the packages; needs root. */
export async function installPackages(packages: readonly string[], say: (line: string) => void): Promise<void> {
  const guard = '/usr/sbin/policy-rc.d';
  const ownGuard = !existsSync(guard);
  if (ownGuard) await writeFile(guard, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    say(`installing Debian packages: ${packages.join(' ')} (apt-get update, then apt-get install -y)`);
    await run('apt-get', ['update', '-qq'], say);
    await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], say);
  } finally {
    if (ownGuard) await rm(guard, { force: true });
  }
}
