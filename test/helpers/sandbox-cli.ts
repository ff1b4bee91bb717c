/**
 * kubectl and the amesh CLI against one test sandbox (its kubeconfig in `dir()`), as the
 * privileged sandbox suites drive it. `dir` is a getter: suites create the directory in
 * beforeAll, after the helpers are made.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'vitest';

const AMESH = join(import.meta.dirname, '..', '..', 'bin', 'amesh.js');

export interface SandboxCli {
  env(): NodeJS.ProcessEnv;
  kubectl(...args: string[]): SpawnSyncReturns<string>;
  /** kubectl that must succeed; its stdout. */
  kubectlOk(...args: string[]): string;
  /** `kubectl apply -f -` of a YAML text that must succeed. */
  apply(yaml: string): void;
  amesh(...args: string[]): SpawnSyncReturns<string>;
  /** `amesh sandbox exec --dir <dir> <ns/pod> -- cmd…` */
  exec(ref: string, ...cmd: string[]): SpawnSyncReturns<string>;
}

export function sandboxCli(dir: () => string, opts: { ameshTimeoutMs?: number; maxBuffer?: number } = {}): SandboxCli {
  const env = (): NodeJS.ProcessEnv => ({ ...process.env, KUBECONFIG: join(dir(), 'kubeconfig') });
  const kubectl = (...args: string[]): SpawnSyncReturns<string> => spawnSync('kubectl', args, { encoding: 'utf8', env: env(), timeout: 60_000 });
  const amesh = (...args: string[]): SpawnSyncReturns<string> =>
    spawnSync(process.execPath, [AMESH, ...args], { encoding: 'utf8', env: env(), timeout: opts.ameshTimeoutMs ?? 180_000, ...(opts.maxBuffer ? { maxBuffer: opts.maxBuffer } : {}) });
  return {
    env,
    kubectl,
    kubectlOk: (...args) => {
      const r = kubectl(...args);
      expect(r.status, `kubectl ${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    },
    apply: (yaml) => {
      const r = spawnSync('kubectl', ['apply', '-f', '-'], { input: yaml, encoding: 'utf8', env: env(), timeout: 60_000 });
      expect(r.status, r.stderr).toBe(0);
    },
    amesh,
    exec: (ref, ...cmd) => amesh('sandbox', 'exec', '--dir', dir(), ref, '--', ...cmd),
  };
}
