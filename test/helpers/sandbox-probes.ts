/**
 * Timed request loops inside sandbox pods, for "within N s" and "no request fails" checks: the
 * loop runs as a shell script with the host's sh and curl in the pod's network namespace (as
 * `amesh sandbox exec` runs everything), stamps each request with the epoch milliseconds it
 * started, and stops after a bound or once a stop file exists (the pods share the host's
 * filesystem).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const AMESH = join(import.meta.dirname, '..', '..', 'bin', 'amesh.js');

/** One request: when it started (epoch ms), its HTTP code ('000': no answer), hello-app's version. */
export interface Probe {
  at: number;
  code: string;
  /** '1' or '2' from hello-app's `Version: N.0.0`, '-' when the body had none. */
  version: string;
  /** curl's exit status (7: could not connect, 28: timed out, 52: empty reply, 56: reset). */
  exit: number;
  /** How long the request took. */
  ms: number;
  /**
   * curl's phases in ms (fractional) from its start: name resolved, TCP connected (0: that phase
   * never finished), so a timed-out request says whether it hung in DNS, the connect or the answer.
   */
  dnsMs: number;
  connectMs: number;
}

export interface Background<T> {
  /** Resolves with the first line of output: `amesh sandbox exec` can take seconds to start on a busy machine. */
  started: Promise<void>;
  done: Promise<T>;
}

/** Runs `script` with sh inside pod `ref` (ns/name) of the sandbox in `dir`, without blocking. */
export function shInPod(dir: string, env: NodeJS.ProcessEnv, ref: string, script: string, timeoutMs: number): Background<{ stdout: string; stderr: string }> {
  let markStarted: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (markStarted = resolve));
  const done = new Promise<{ stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [AMESH, 'sandbox', 'exec', '--dir', dir, ref, '--', 'sh', '-c', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (stdout.includes('\n')) markStarted();
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', () => {
      clearTimeout(timer);
      markStarted();
      resolve({ stdout, stderr });
    });
  });
  return { started, done };
}

/** A shell `while … do` header: at most `seconds`, and ends early once `stopFile` exists. */
export function loopWhile(seconds: number, stopFile?: string): string {
  return `end=$(( $(date +%s) + ${seconds} )); while [ "$(date +%s)" -lt "$end" ]${stopFile ? ` && [ ! -e ${stopFile} ]` : ''}; do`;
}

/**
 * A request to `url` on a new connection every ~`gapS` seconds from pod `ref`, for at most
 * `seconds` or until `stopFile` exists.
 */
export function probeLoop(
  dir: string,
  env: NodeJS.ProcessEnv,
  ref: string,
  url: string,
  o: { seconds: number; stopFile?: string; header?: string; gapS?: number },
): Background<{ probes: Probe[]; stderr: string }> {
  // curl -w '@…' would name a file: the write-out (code, then phase times in seconds) is marked with '|'.
  const script =
    `${loopWhile(o.seconds, o.stopFile)} t=$(date +%s%3N); ` +
    `r=$(curl -s -w '|%{http_code} %{time_namelookup} %{time_connect}' --max-time 3 ${o.header ? `-H '${o.header}' ` : ''}${url}); e=$?; ` +
    `w=\${r##*|}; set -- $w; ` +
    `v=$(echo "$r" | sed -n 's/^Version: \\([12]\\)\\.0\\.0$/\\1/p'); echo "probe $t \${1:-000} \${v:--} $e $(date +%s%3N) \${2:-0} \${3:-0}"; sleep ${o.gapS ?? 0.05}; done`;
  const run = shInPod(dir, env, ref, script, (o.seconds + 30) * 1000);
  const done = run.done.then((r) => ({
    stderr: r.stderr,
    probes: r.stdout
      .split('\n')
      .filter((l) => l.startsWith('probe '))
      .map((l) => {
        const [, at = '0', code = '000', version = '-', exit = '0', end = '0', dns = '0', connect = '0'] = l.split(' ');
        const ms = (seconds: string): number => Number(seconds) * 1000 || 0;
        return { at: Number(at), code, version, exit: Number(exit), ms: Number(end) - Number(at), dnsMs: ms(dns), connectMs: ms(connect) };
      }),
  }));
  return { started: run.started, done };
}

/** "N requests: v1 a, v2 b" */
export function versionSplit(probes: readonly Probe[]): string {
  return `${probes.length} requests: v1 ${probes.filter((p) => p.version === '1').length}, v2 ${probes.filter((p) => p.version === '2').length}`;
}

/** The requests that got no 200 (or, with `needVersion`, no hello-app version), described relative to `from`. */
export function failedProbes(probes: readonly Probe[], from: number, needVersion = true): string[] {
  return probes.filter((p) => p.code !== '200' || (needVersion && p.version === '-')).map((p) => `${p.at - from} ms: HTTP ${p.code}, curl exit ${p.exit} after ${p.ms} ms (${phases(p)})`);
}

/** Which of curl's phases finished, for a failed request: a timeout with no name resolved is DNS, not the mesh. */
function phases(p: Probe): string {
  if (!p.dnsMs) return 'name not resolved';
  if (!p.connectMs) return `name resolved at ${p.dnsMs.toFixed(1)} ms, never connected`;
  // With capture on, "connected" is the local agent's accept, not the destination's.
  return `name resolved at ${p.dnsMs.toFixed(1)} ms, connected at ${p.connectMs.toFixed(1)} ms`;
}

/**
 * The amesh CLI (`bin/amesh.js args…`) without blocking the event loop: a long `--wait` through
 * spawnSync starves vitest's worker RPC ("Timeout calling onTaskUpdate") on a busy machine.
 */
export function ameshAsync(env: NodeJS.ProcessEnv, args: string[], timeoutMs = 180_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [AMESH, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}
