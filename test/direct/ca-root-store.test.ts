/**
 * The CA root store against the embedded API server: the root lives in Secrets exactly where
 * istiod keeps it, survives restarts, yields to a valid plug-in CA, rotates with an overlap and
 * follows changes made by someone else.
 */
import { X509Certificate, webcrypto } from 'node:crypto';
import { CoreV1Api, KubeConfig, type V1Secret } from '@kubernetes/client-node';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CA_SECRET_NAME,
  PLUGIN_CA_SECRET_NAME,
  PREVIOUS_ROOTS_UNTIL_ANNOTATION,
  RootStore,
  activePreviousRoots,
  controllerDnsNames,
  type RootStoreOptions,
} from '../../src/controller/ca/root-store.js';
import type { SigningMaterial } from '../../src/controller/ca/types.js';
import { isAmeshError } from '../../src/errors/amesh-error.js';
import { createCsr, generateCa, generateKeyPair, importPrivateKeyPem, signCsr, type CaMaterial } from '../../src/identity/pki.js';
import { eventually } from '../helpers/eventually.js';
import { startHarness, type Harness } from './apiserver-harness.js';

let h: Harness;
let core: CoreV1Api;
let nsCounter = 0;
const stores: RootStore[] = [];

beforeAll(async () => {
  h = await startHarness();
  const kc = new KubeConfig();
  kc.loadFromFile(h.kubeconfig);
  core = kc.makeApiClient(CoreV1Api);
});

afterAll(async () => {
  await Promise.all(stores.map((s) => s.stop()));
  await h?.close();
});

function freshNamespace(): string {
  const name = `ca-${++nsCounter}`;
  h.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  return name;
}

function makeStore(namespace: string, extra: Partial<RootStoreOptions> = {}): RootStore {
  const store = new RootStore({ core, namespace, trustDomain: 'cluster.local', pollIntervalMs: 0, ...extra });
  stores.push(store);
  return store;
}

function secretData(namespace: string, name: string): Record<string, string> {
  const s = h.store.get('v1', 'Secret', namespace, name) as V1Secret | undefined;
  if (!s) throw new Error(`no Secret ${namespace}/${name}`);
  return Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
}

function putSecret(namespace: string, name: string, data: Record<string, string>, annotations?: Record<string, string>): void {
  const object = { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace, ...(annotations ? { annotations } : {}) }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) };
  const existing = h.store.get('v1', 'Secret', namespace, name);
  if (existing) h.store.update({ ...object, metadata: { ...object.metadata, resourceVersion: existing.metadata.resourceVersion } });
  else h.store.create(object);
}

/** An intermediate CA signed by `root` (what an operator plugs in as cacerts). */
async function intermediateOf(root: CaMaterial): Promise<CaMaterial> {
  const rootCert = new x509.X509Certificate(root.certPem);
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '0a1b2c',
    subject: 'O=cluster.local, CN=plug-in intermediate',
    issuer: rootCert.subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    publicKey: keys.publicKey,
    signingKey: await importPrivateKeyPem(root.keyPem),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  return { certPem: cert.toString('pem') + '\n', keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n` };
}

/** Issues a workload leaf with the material and checks it chains to one of the bundle's roots. */
async function issueAndVerify(material: SigningMaterial): Promise<X509Certificate> {
  const keys = await generateKeyPair();
  const csrPem = await createCsr({ key: keys, spiffeUri: 'spiffe://cluster.local/ns/demo/sa/app' });
  const leaf = new X509Certificate(await signCsr({ ca: { certPem: material.certPem, keyPem: material.keyPem }, csrPem, ttlSeconds: 600 }));
  const signer = new X509Certificate(material.certPem);
  expect(leaf.verify(signer.publicKey)).toBe(true);
  const top = material.chainPem.length ? new X509Certificate(material.chainPem[material.chainPem.length - 1] as string) : signer;
  expect(material.trustBundlePem.map((p) => new X509Certificate(p).fingerprint256)).toContain(top.fingerprint256);
  return leaf;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('RootStore: self-signed root in istio-ca-secret', () => {
  it('creates the root when absent, and a restart reuses it', async () => {
    const ns = freshNamespace();
    const first = makeStore(ns);
    await first.start();
    const material = first.current();
    expect(material.chainPem).toEqual([]);
    expect(material.trustBundlePem).toEqual([material.certPem]);
    const stored = secretData(ns, CA_SECRET_NAME);
    expect(new X509Certificate(stored['ca-cert.pem'] as string).fingerprint256).toBe(new X509Certificate(material.certPem).fingerprint256);
    expect(new X509Certificate(material.certPem).subject).toBe('O=cluster.local');
    expect(h.store.get('v1', 'Secret', ns, CA_SECRET_NAME)?.['type']).toBe('istio.io/ca-root');
    await issueAndVerify(material);
    expect(first.origin()).toEqual({ origin: 'self-signed', secret: `${ns}/${CA_SECRET_NAME}` });
    await first.stop();

    const second = makeStore(ns);
    await second.start();
    expect(second.current().certPem).toBe(material.certPem);
    expect(second.current().keyPem).toBe(material.keyPem);
  });

  it('is race-safe: controllers starting together agree on one root', async () => {
    const ns = freshNamespace();
    const racing = [makeStore(ns), makeStore(ns), makeStore(ns)];
    await Promise.all(racing.map((s) => s.start()));
    const roots = new Set(racing.map((s) => s.current().certPem));
    expect(roots.size).toBe(1);
    expect(secretData(ns, CA_SECRET_NAME)['ca-cert.pem']).toBe([...roots][0]);
  });

  it('writes the current root back when its Secret is deleted, never a new one', async () => {
    const ns = freshNamespace();
    const store = makeStore(ns);
    await store.start();
    const root = store.current().certPem;
    h.store.delete('v1', 'Secret', ns, CA_SECRET_NAME);
    await store.refresh();
    expect(store.current().certPem).toBe(root);
    expect(secretData(ns, CA_SECRET_NAME)['ca-cert.pem']).toBe(root);
  });

  it('issues its own serving certificate for the Service names', async () => {
    const ns = freshNamespace();
    const store = makeStore(ns);
    await store.start();
    const serving = await store.servingCertificate(controllerDnsNames(ns));
    const leaf = new X509Certificate(serving.certChainPem);
    expect(leaf.verify(new X509Certificate(store.current().certPem).publicKey)).toBe(true);
    expect(leaf.subjectAltName).toBe(`DNS:amesh-controller.${ns}.svc, DNS:amesh-controller.${ns}.svc.cluster.local, DNS:amesh-controller`);
    expect(leaf.ca).toBe(false);
    expect(leaf.checkPrivateKey((await import('node:crypto')).createPrivateKey(serving.keyPem))).toBe(true);
    // Only the leaf: the root is what peers already trust.
    expect(serving.certChainPem.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    expect(serving.notAfter.getTime() - Date.now()).toBeGreaterThan(29 * 86_400_000);
  });
});

describe('RootStore: plug-in CA (cacerts)', () => {
  it('wins over istio-ca-secret and signs with the intermediate', async () => {
    const ns = freshNamespace();
    const root = await generateCa({ trustDomain: 'cluster.local', validityDays: 2, commonName: 'corp root' });
    const intermediate = await intermediateOf(root);
    putSecret(ns, PLUGIN_CA_SECRET_NAME, { 'ca-cert.pem': intermediate.certPem, 'ca-key.pem': intermediate.keyPem, 'cert-chain.pem': intermediate.certPem + root.certPem, 'root-cert.pem': root.certPem });
    const store = makeStore(ns);
    await store.start();
    const material = store.current();
    expect(material.certPem).toBe(intermediate.certPem);
    expect(material.chainPem).toEqual([root.certPem]);
    expect(material.trustBundlePem).toEqual([root.certPem]);
    expect(store.origin()?.origin).toBe('plug-in');
    expect(h.store.get('v1', 'Secret', ns, CA_SECRET_NAME)).toBeUndefined();
    await issueAndVerify(material);
    // The serving chain carries the intermediate, not the root.
    const serving = await store.servingCertificate(['amesh-controller']);
    expect(serving.certChainPem.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    const err = await rejection(store.rotateRoot({ overlapSeconds: 60 }));
    expect(err.message).toMatch(/plug-in CA/);
  });

  it.each([
    ['a key that does not match', async (root: CaMaterial, inter: CaMaterial) => ({ 'ca-cert.pem': inter.certPem, 'ca-key.pem': root.keyPem, 'cert-chain.pem': inter.certPem, 'root-cert.pem': root.certPem }), /cacerts: .*private key does not match/],
    ['a chain that does not reach root-cert.pem', async (_root: CaMaterial, inter: CaMaterial) => {
      const other = await generateCa({ trustDomain: 'cluster.local', validityDays: 1 });
      return { 'ca-cert.pem': inter.certPem, 'ca-key.pem': inter.keyPem, 'cert-chain.pem': inter.certPem, 'root-cert.pem': other.certPem };
    }, /cacerts: ca-cert.pem does not chain up to root-cert.pem/],
    ['a missing root-cert.pem', async (_root: CaMaterial, inter: CaMaterial) => ({ 'ca-cert.pem': inter.certPem, 'ca-key.pem': inter.keyPem, 'cert-chain.pem': inter.certPem }), /cacerts: the plug-in CA lacks root-cert.pem/],
    ['a certificate that is not a CA', async (root: CaMaterial) => {
      const keys = await generateKeyPair();
      const leaf = await signCsr({ ca: root, csrPem: await createCsr({ key: keys, spiffeUri: 'spiffe://cluster.local/ns/a/sa/b' }), ttlSeconds: 600 });
      const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
      return { 'ca-cert.pem': leaf, 'ca-key.pem': `-----BEGIN PRIVATE KEY-----\n${pkcs8}\n-----END PRIVATE KEY-----\n`, 'root-cert.pem': root.certPem };
    }, /cacerts: .*not a CA/],
  ])('is refused at start with a clear error: %s', async (_name, build, message) => {
    const ns = freshNamespace();
    const root = await generateCa({ trustDomain: 'cluster.local', validityDays: 2 });
    putSecret(ns, PLUGIN_CA_SECRET_NAME, await build(root, await intermediateOf(root)));
    const store = makeStore(ns);
    const err = await rejection(store.start());
    expect(isAmeshError(err, 'AMESH_CERT_FAILED')).toBe(true);
    expect(err.message).toMatch(message);
    expect(store.loaded()).toBe(false);
    // It did not fall back to a self-signed root behind the operator's back.
    expect(h.store.get('v1', 'Secret', ns, CA_SECRET_NAME)).toBeUndefined();
  });

  it('keeps the current material when cacerts turns bad while running', async () => {
    const ns = freshNamespace();
    const store = makeStore(ns);
    await store.start();
    const before = store.current();
    const root = await generateCa({ trustDomain: 'cluster.local', validityDays: 2 });
    putSecret(ns, PLUGIN_CA_SECRET_NAME, { 'ca-cert.pem': root.certPem, 'ca-key.pem': (await generateCa({ trustDomain: 'cluster.local', validityDays: 1 })).keyPem, 'root-cert.pem': root.certPem });
    await store.refresh();
    expect(store.current()).toBe(before);
  });
});

describe('RootStore: rotation', () => {
  it('trusts old and new roots during the overlap, signs with the new one, then drops the old', async () => {
    const ns = freshNamespace();
    let clock = new Date();
    const store = makeStore(ns, { now: () => clock });
    await store.start();
    const oldRoot = store.current().certPem;
    const changes: SigningMaterial[] = [];
    store.onChange((m) => changes.push(m));

    const rotation = await store.rotateRoot({ overlapSeconds: 3600 });
    expect(rotation.previousRootPem).toBe(oldRoot);
    expect(rotation.previousRootFingerprint).toBe(new X509Certificate(oldRoot).fingerprint256);
    expect(rotation.previousRootsUntil.getTime()).toBe(Math.ceil((clock.getTime() + 3_600_000) / 1000) * 1000);
    const during = store.current();
    expect(during.certPem).toBe(rotation.newRootPem);
    expect(during.trustBundlePem).toEqual([rotation.newRootPem, oldRoot]);
    expect(changes).toHaveLength(1);
    const leaf = await issueAndVerify(during);
    expect(leaf.verify(new X509Certificate(oldRoot).publicKey)).toBe(false);
    const secret = h.store.get('v1', 'Secret', ns, CA_SECRET_NAME);
    expect(secret?.metadata.annotations?.[PREVIOUS_ROOTS_UNTIL_ANNOTATION]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(secretData(ns, CA_SECRET_NAME)['previous-roots.pem']).toBe(oldRoot);

    // A restart during the overlap keeps both.
    const restarted = makeStore(ns, { now: () => clock });
    await restarted.start();
    expect(restarted.current().trustBundlePem).toEqual([rotation.newRootPem, oldRoot]);

    clock = new Date(clock.getTime() + 3601_000);
    await store.refresh();
    expect(store.current().trustBundlePem).toEqual([rotation.newRootPem]);
    expect(changes).toHaveLength(2);
    const after = h.store.get('v1', 'Secret', ns, CA_SECRET_NAME);
    expect(after?.metadata.annotations?.[PREVIOUS_ROOTS_UNTIL_ANNOTATION]).toBeUndefined();
    expect(secretData(ns, CA_SECRET_NAME)['previous-roots.pem']).toBeUndefined();
    expect(secretData(ns, CA_SECRET_NAME)['ca-cert.pem']).toBe(rotation.newRootPem);
  });

  it('stages a rotation: the new root is trusted first, signs only after the propagation delay, then the old one is a previous root', async () => {
    const ns = freshNamespace();
    let clock = new Date();
    const store = makeStore(ns, { now: () => clock });
    await store.start();
    const oldRoot = store.current().certPem;
    const rotation = await store.rotateRoot({ overlapSeconds: 3600, propagationSeconds: 120 });
    expect(rotation.signingSwitchAt.getTime()).toBe(Math.ceil((clock.getTime() + 120_000) / 1000) * 1000);
    expect(rotation.previousRootsUntil.getTime()).toBe(rotation.signingSwitchAt.getTime() + 3_600_000);
    // Before the switch: still signing with the old root, both roots in the bundle.
    const staged = store.current();
    expect(staged.certPem).toBe(oldRoot);
    expect(staged.trustBundlePem).toEqual([oldRoot, rotation.newRootPem]);
    expect((await issueAndVerify(staged)).verify(new X509Certificate(oldRoot).publicKey)).toBe(true);
    await expect(store.rotateRoot({ overlapSeconds: 60, propagationSeconds: 60 })).rejects.toThrow(/already staged/);
    // A restart before the switch sees the same staged state.
    const restarted = makeStore(ns, { now: () => clock });
    await restarted.start();
    expect(restarted.current().certPem).toBe(oldRoot);
    await restarted.stop();
    // After the switch time the next poll promotes the new root; the old one stays trusted.
    clock = new Date(rotation.signingSwitchAt.getTime() + 1000);
    await store.refresh();
    const after = store.current();
    expect(after.certPem).toBe(rotation.newRootPem);
    expect(after.trustBundlePem).toEqual([rotation.newRootPem, oldRoot]);
    expect(secretData(ns, CA_SECRET_NAME)['ca-cert.pem']).toBe(rotation.newRootPem);
    expect(secretData(ns, CA_SECRET_NAME)['next-ca-cert.pem']).toBeUndefined();
    expect(secretData(ns, CA_SECRET_NAME)['previous-roots.pem']).toBe(oldRoot);
    // And the overlap still ends on time.
    clock = new Date(rotation.previousRootsUntil.getTime() + 1000);
    await store.refresh();
    expect(store.current().trustBundlePem).toEqual([rotation.newRootPem]);
    await store.stop();
  });

  it('keeps earlier previous roots still in their overlap when rotating again', async () => {
    const ns = freshNamespace();
    const store = makeStore(ns);
    await store.start();
    const r0 = store.current().certPem;
    const first = await store.rotateRoot({ overlapSeconds: 7200 });
    const second = await store.rotateRoot({ overlapSeconds: 60 });
    expect(store.current().trustBundlePem).toEqual([second.newRootPem, first.newRootPem, r0]);
    // The longer deadline of the first rotation still holds.
    expect(second.previousRootsUntil.getTime()).toBe(Date.parse(h.store.get('v1', 'Secret', ns, CA_SECRET_NAME)?.metadata.annotations?.[PREVIOUS_ROOTS_UNTIL_ANNOTATION] as string));
    expect(second.previousRootsUntil.getTime()).toBeGreaterThan(Date.now() + 3600_000);
  });

  it('picks up a rotation made by another process without restarting', async () => {
    const ns = freshNamespace();
    const watching = makeStore(ns, { pollIntervalMs: 50 });
    await watching.start();
    const changed = new Promise<SigningMaterial>((resolve) => watching.onChange(resolve));
    const other = makeStore(ns);
    await other.start();
    const rotation = await other.rotateRoot({ overlapSeconds: 600 });
    const seen = await changed;
    expect(seen.certPem).toBe(rotation.newRootPem);
    expect(watching.current().trustBundlePem).toEqual([rotation.newRootPem, rotation.previousRootPem]);
  });

  it('picks up a root written with kubectl-style edits of the Secret', async () => {
    const ns = freshNamespace();
    const watching = makeStore(ns, { pollIntervalMs: 50 });
    await watching.start();
    const replacement = await generateCa({ trustDomain: 'cluster.local', validityDays: 10 });
    putSecret(ns, CA_SECRET_NAME, { 'ca-cert.pem': replacement.certPem, 'ca-key.pem': replacement.keyPem });
    await eventually(() => expect(watching.current().certPem).toBe(replacement.certPem), { timeoutMs: 5000, description: 'the edited root' });
  });
});

describe('activePreviousRoots', () => {
  it('keeps roots before the deadline, drops them after, keeps them without or with a bad deadline', async () => {
    const { certPem } = await generateCa({ trustDomain: 'cluster.local', validityDays: 1 });
    const now = new Date('2026-01-01T00:00:00Z');
    expect(activePreviousRoots(certPem, '2026-01-01T00:00:01Z', now)).toEqual({ roots: [certPem], expired: false, invalidDeadline: false });
    expect(activePreviousRoots(certPem, '2026-01-01T00:00:00Z', now)).toEqual({ roots: [], expired: true, invalidDeadline: false });
    expect(activePreviousRoots(certPem, undefined, now).roots).toEqual([certPem]);
    expect(activePreviousRoots(certPem, 'tomorrow', now)).toEqual({ roots: [certPem], expired: false, invalidDeadline: true });
    expect(activePreviousRoots('', '2020-01-01T00:00:00Z', now)).toEqual({ roots: [], expired: false, invalidDeadline: false });
  });
});
