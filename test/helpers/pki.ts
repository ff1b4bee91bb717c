/**
 * Test PKI: a root CA per trust domain (generated once per test file) and workload
 * certificates issued by the real LocalCaProvider, so tests exercise the production path.
 */
import type tls from 'node:tls';
import { buildSecureContext } from '../../src/identity/certificate-manager.js';
import { LocalCaProvider, type IssuedCertificate } from '../../src/identity/certificate-provider.js';
import { generateCa, type CaMaterial } from '../../src/identity/pki.js';
import type { WorkloadIdentity } from '../../src/identity/spiffe.js';

export interface TestCa {
  ca: CaMaterial;
  provider: LocalCaProvider;
  issue(id: WorkloadIdentity | string): Promise<IssuedCertificate>;
  /** A SecureContext as the certificate manager builds it. */
  context(id: WorkloadIdentity | string): Promise<tls.SecureContext>;
}

export function workload(namespace: string, serviceAccount: string, trustDomain = 'cluster.local'): WorkloadIdentity {
  return { trustDomain, namespace, serviceAccount };
}

function toIdentity(id: WorkloadIdentity | string): WorkloadIdentity {
  if (typeof id !== 'string') return id;
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(id);
  if (!m) throw new Error(`bad test identity ${id}`);
  return workload(m[2] as string, m[3] as string, m[1] as string);
}

export async function createTestCa(opts: { trustDomain?: string; ttlSeconds?: number } = {}): Promise<TestCa> {
  const ca = await generateCa({ trustDomain: opts.trustDomain ?? 'cluster.local', validityDays: 1 });
  const provider = new LocalCaProvider({ ca, ttlSeconds: opts.ttlSeconds ?? 3600 });
  const issue = (id: WorkloadIdentity | string): Promise<IssuedCertificate> => provider.fetch(toIdentity(id));
  return { ca, provider, issue, context: async (id) => buildSecureContext(await issue(id)) };
}

/**
 * The pool's certificate source over a test CA: one SecureContext per identity, made once and
 * reused (as the certificate manager does, so the pool sees a stable context per identity).
 */
export function cachedContexts(ca: TestCa): { secureContext(id: WorkloadIdentity): Promise<tls.SecureContext> } {
  const contexts = new Map<string, Promise<tls.SecureContext>>();
  return {
    secureContext: (id) => {
      const key = `${id.namespace}/${id.serviceAccount}`;
      let context = contexts.get(key);
      if (!context) {
        context = ca.context(id);
        contexts.set(key, context);
      }
      return context;
    },
  };
}
