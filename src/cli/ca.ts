/**
 * `amesh ca create` and `amesh ca issue`: a root CA for local mode and workload certificates
 * signed by it (for VMs, tests, and checking a peer with openssl).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { AmeshError } from '../errors/amesh-error.js';
import { LocalCaProvider } from '../identity/certificate-provider.js';
import { generateCa } from '../identity/pki.js';
import { parseSpiffeUri } from '../identity/spiffe.js';

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
}
