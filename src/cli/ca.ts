/**
 * `amesh ca create` and `amesh ca issue`: a root CA for local mode and workload certificates
 * signed by it (for VMs, tests, and checking a peer with openssl). `amesh ca rotate-root`: a new
 * root for the controller's CA in the cluster, the old one trusted for an overlap.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { AmeshError } from '../errors/amesh-error.js';
import { LocalCaProvider } from '../identity/certificate-provider.js';
import { generateCa } from '../identity/pki.js';
import { parseSpiffeUri } from '../identity/spiffe.js';

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** Go-style durations as kubectl and Istio take them: `24h`, `90m`, `1h30m`, `3600s`, or bare seconds. */
export function parseDurationSeconds(raw: string): number | undefined {
  const text = raw.trim();
  if (/^\d+$/.test(text)) return Number(text);
  if (!/^(\d+[smhd])+$/.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+)([smhd])/g)) total += Number(m[1]) * (DURATION_UNITS[m[2] as string] as number);
  return total;
}

export function registerCa(program: Command): void {
  const ca = program.command('ca').description('local certificate authority (ECDSA P-256, SPIFFE identities)');
  ca.command('create')
    .description('create a root CA: DIR/ca.pem and DIR/ca-key.pem')
    .requiredOption('--dir <dir>', 'output directory')
    .option('--trust-domain <domain>', 'trust domain named in the CA', 'cluster.local')
    .option('--days <n>', 'validity in days', '3650')
    .action(async (opts: { dir: string; trustDomain: string; days: string }) => {
      const days = Number(opts.days);
      if (!Number.isInteger(days) || days < 1) throw new AmeshError('AMESH_CONFIG_INVALID', `--days ${opts.days}: expected a positive whole number`);
      const { certPem, keyPem } = await generateCa({ trustDomain: opts.trustDomain, validityDays: days });
      await mkdir(opts.dir, { recursive: true });
      await writeFile(join(opts.dir, 'ca.pem'), certPem);
      await writeFile(join(opts.dir, 'ca-key.pem'), keyPem, { mode: 0o600 });
      console.log(`wrote ${join(opts.dir, 'ca.pem')} and ${join(opts.dir, 'ca-key.pem')}`);
    });
  ca.command('issue')
    .description('issue a workload certificate: OUT/cert.pem (leaf, root), OUT/key.pem, OUT/root.pem')
    .requiredOption('--ca-dir <dir>', 'directory holding ca.pem and ca-key.pem')
    .requiredOption('--spiffe-id <uri>', 'spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>')
    .requiredOption('--out <dir>', 'output directory')
    .option('--ttl <seconds>', 'lifetime', '86400')
    .action(async (opts: { caDir: string; spiffeId: string; out: string; ttl: string }) => {
      const identity = parseSpiffeUri(opts.spiffeId);
      if (!identity) throw new AmeshError('AMESH_CONFIG_INVALID', `--spiffe-id ${opts.spiffeId}: expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`);
      const [certPem, keyPem] = await Promise.all([readFile(join(opts.caDir, 'ca.pem'), 'utf8'), readFile(join(opts.caDir, 'ca-key.pem'), 'utf8')]);
      const provider = new LocalCaProvider({ ca: { certPem, keyPem }, ttlSeconds: Number(opts.ttl) });
      const issued = await provider.fetch(identity);
      await mkdir(opts.out, { recursive: true });
      await writeFile(join(opts.out, 'cert.pem'), issued.chainPem.join(''));
      await writeFile(join(opts.out, 'key.pem'), issued.keyPem, { mode: 0o600 });
      await writeFile(join(opts.out, 'root.pem'), issued.rootsPem.join(''));
      console.log(`wrote ${opts.out}/cert.pem, key.pem, root.pem for ${opts.spiffeId}`);
    });
  ca.command('rotate-root')
    .description("rotate the controller's self-signed root (Secret istio-ca-secret); the old root stays trusted for the overlap")
    .option('--kubeconfig <path>', 'kubeconfig to use (default: in-cluster, else $KUBECONFIG or ~/.kube/config)')
    .option('--namespace <ns>', "the controller's namespace", 'amesh-system')
    .option('--overlap <duration>', 'how long the old root stays in the trust bundle (e.g. 24h, 90m, 3600s)', '24h')
    .option('--propagation <duration>', 'how long the new root is only trusted before it signs, so every agent has it first (0s = sign at once)', '2m')
    .option('--trust-domain <domain>', 'trust domain named in the new root', 'cluster.local')
    .action(async (opts: { kubeconfig?: string; namespace: string; overlap: string; propagation: string; trustDomain: string }) => {
      const overlapSeconds = parseDurationSeconds(opts.overlap);
      if (overlapSeconds === undefined) throw new AmeshError('AMESH_CONFIG_INVALID', `--overlap ${opts.overlap}: expected a duration such as 24h, 90m or 3600s`);
      const propagationSeconds = parseDurationSeconds(opts.propagation);
      if (propagationSeconds === undefined) throw new AmeshError('AMESH_CONFIG_INVALID', `--propagation ${opts.propagation}: expected a duration such as 2m, 90s or 0s`);
      // Loaded here so `ca create|issue` stay free of the Kubernetes client.
      const [{ CoreV1Api }, { loadKubeConfig }, { RootStore, rfc3339 }] = await Promise.all([import('@kubernetes/client-node'), import('../controller/app.js'), import('../controller/ca/root-store.js')]);
      const kubeConfig = loadKubeConfig(opts.kubeconfig);
      const store = new RootStore({ core: kubeConfig.makeApiClient(CoreV1Api), namespace: opts.namespace, trustDomain: opts.trustDomain, pollIntervalMs: 0 });
      try {
        await store.start();
        const rotation = await store.rotateRoot({ overlapSeconds, propagationSeconds });
        console.log(`old root: ${rotation.previousRootFingerprint}`);
        console.log(`new root: ${rotation.newRootFingerprint}`);
        console.log(`the new root is trusted now and signs from ${rfc3339(rotation.signingSwitchAt)}`);
        console.log(`the old root stays trusted until ${rfc3339(rotation.previousRootsUntil)}`);
      } finally {
        await store.stop();
      }
    });
}
