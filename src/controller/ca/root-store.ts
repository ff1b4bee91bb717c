/**
 * The CA's key material, kept in Kubernetes Secrets exactly where istiod keeps it, so an
 * operator's habits (and Istio's docs) carry over:
 *
 * - `<ns>/cacerts` — a user-provided ("plug-in") CA: `ca-cert.pem` (an intermediate that signs),
 *   `ca-key.pem`, `cert-chain.pem` (its issuers), `root-cert.pem` (the roots agents trust). When
 *   present it wins. It is validated (key matches, CA:TRUE, chains up to root-cert.pem); a bad
 *   one is refused at start with the reason, and ignored (old material kept) while running.
 * - `<ns>/istio-ca-secret` — the self-signed root (`ca-cert.pem`, `ca-key.pem`), created with a
 *   fresh ECDSA P-256 root on first start (create-if-absent: a 409 from a racing controller means
 *   re-read theirs). A restart reuses it; a deleted Secret is written back from memory, never
 *   silently replaced by a new root (that would break every workload's trust).
 *
 * Root rotation with overlap: either Secret may carry `previous-roots.pem` (old roots still
 * trusted) and the annotation `amesh.io/previous-roots-until` (RFC 3339). The trust bundle is the
 * current roots plus the previous ones until that instant; after it the store drops them from the
 * bundle and rewrites the Secret without them. Without the annotation previous roots stay trusted.
 *
 * Watching: the store polls both Secrets (two GETs every `pollIntervalMs`, default 5 s) rather
 * than running informers — cheaper to reason about for two named objects, and a rotation made by
 * `amesh ca rotate-root` in another process or by `kubectl` takes effect within one period.
 * Every write uses the object's resourceVersion (optimistic concurrency).
 */
import { X509Certificate as NodeX509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import * as x509 from '@peculiar/x509';
import { AmeshError } from '../../errors/amesh-error.js';
import { generateCa, generateKeyPair, exportPrivateKeyPem, loadCa, splitPemBundle, NOT_BEFORE_BACKDATE_MS, type SigningCa } from '../../identity/pki.js';
import { silentLogger, type Logger } from '../../telemetry/logger.js';
import type { SigningMaterial, SigningMaterialSource } from './types.js';

export const CA_SECRET_NAME = 'istio-ca-secret';
export const PLUGIN_CA_SECRET_NAME = 'cacerts';
/** Istio's type for istio-ca-secret. */
export const CA_SECRET_TYPE = 'istio.io/ca-root';
export const CA_CERT_KEY = 'ca-cert.pem';
export const CA_KEY_KEY = 'ca-key.pem';
export const CERT_CHAIN_KEY = 'cert-chain.pem';
export const ROOT_CERT_KEY = 'root-cert.pem';
export const PREVIOUS_ROOTS_KEY = 'previous-roots.pem';
export const PREVIOUS_ROOTS_UNTIL_ANNOTATION = 'amesh.io/previous-roots-until';
/** A staged rotation: the next root is trusted first and signs only from `amesh.io/next-root-at`. */
export const NEXT_CA_CERT_KEY = 'next-ca-cert.pem';
export const NEXT_CA_KEY_KEY = 'next-ca-key.pem';
export const NEXT_ROOT_AT_ANNOTATION = 'amesh.io/next-root-at';
/** Istio's self-signed root lives ten years. */
export const ROOT_VALIDITY_DAYS = 3650;
export const SERVING_CERT_VALIDITY_SECONDS = 30 * 86_400;
const DEFAULT_POLL_MS = 5000;
const WRITE_ATTEMPTS = 5;
/** A poll that takes longer is abandoned (and logged) so one hung request never stops polling. */
const REFRESH_TIMEOUT_MS = 30_000;
/** Longest issuer path accepted in a plug-in CA (root ← … ← ca-cert). */
const MAX_CHAIN_DEPTH = 8;

/** The DNS names node agents use to reach the CA (the Service `amesh-controller`). */
export function controllerDnsNames(namespace: string): string[] {
  return [`amesh-controller.${namespace}.svc`, `amesh-controller.${namespace}.svc.cluster.local`, 'amesh-controller'];
}

export type RootOrigin = 'self-signed' | 'plug-in';

export interface RootStoreOptions {
  core: CoreV1Api;
  /** Where the Secrets live (the controller's namespace). */
  namespace: string;
  /** O= of a generated root. */
  trustDomain: string;
  log?: Logger;
  /** Injectable clock: decides when previous roots expire. */
  now?: () => Date;
  /** 0 disables polling (tests call `refresh()`). */
  pollIntervalMs?: number;
  rootValidityDays?: number;
}

export interface RootRotation {
  previousRootPem: string;
  newRootPem: string;
  /** SHA-256, colon-separated upper-case hex (as openssl prints). */
  previousRootFingerprint: string;
  newRootFingerprint: string;
  /** The old root stays in the trust bundle until then. */
  previousRootsUntil: Date;
  /** When the new root starts signing (now, unless the rotation was staged with a propagation delay). */
  signingSwitchAt: Date;
}

export interface ServingCertificate {
  /** Leaf first, then the intermediates above it (the self-signed root is left out). */
  certChainPem: string;
  keyPem: string;
  notAfter: Date;
}

export type MaterialListener = (material: SigningMaterial) => void;

/** What one read of the Secrets decided. */
interface Loaded {
  origin: RootOrigin;
  material: SigningMaterial;
  signing: SigningCa;
  /** The previous-roots deadline as written in the Secret, kept to write a deleted Secret back. */
  previousRootsUntil?: string;
}

// ---- pure helpers ------------------------------------------------------------------------

export function fingerprint(pem: string): string {
  return new NodeX509Certificate(pem).fingerprint256;
}

function decode(secret: V1Secret): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(secret.data ?? {})) out[k] = Buffer.from(v, 'base64').toString('utf8');
  return out;
}

function encode(data: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) out[k] = Buffer.from(v, 'utf8').toString('base64');
  return out;
}

function dedupe(pems: string[]): string[] {
  const seen = new Set<string>();
  return pems.filter((p) => {
    const f = fingerprint(p);
    if (seen.has(f)) return false;
    seen.add(f);
    return true;
  });
}

/** RFC 3339 without fractional seconds. */
export function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The previous roots still trusted at `now`: all of them before `until`, none after it, all of
 * them when `until` is absent. An unparseable deadline keeps them (an outage is worse than a few
 * more minutes of an old root); the caller logs it.
 */
export function activePreviousRoots(previousPem: string, until: string | undefined, now: Date): { roots: string[]; expired: boolean; invalidDeadline: boolean } {
  const roots = splitPemBundle(previousPem);
  if (roots.length === 0 || until === undefined) return { roots, expired: false, invalidDeadline: false };
  const deadline = Date.parse(until);
  if (Number.isNaN(deadline)) return { roots, expired: false, invalidDeadline: true };
  return deadline > now.getTime() ? { roots, expired: false, invalidDeadline: false } : { roots: [], expired: true, invalidDeadline: false };
}

function isSelfSigned(cert: NodeX509Certificate): boolean {
  return cert.checkIssued(cert) && cert.verify(cert.publicKey);
}

function certFailure(secret: string, message: string, cause?: unknown, hint?: string): AmeshError {
  return new AmeshError('AMESH_CERT_FAILED', `Secret ${secret}: ${message}`, { cause, hint });
}

/** Parses and checks the self-signed root in istio-ca-secret. */
async function loadSelfSigned(secretRef: string, data: Record<string, string>, previous: string[]): Promise<Loaded> {
  const certPem = data[CA_CERT_KEY];
  const keyPem = data[CA_KEY_KEY];
  if (!certPem || !keyPem) throw certFailure(secretRef, `missing ${!certPem ? CA_CERT_KEY : CA_KEY_KEY}`, undefined, `delete the Secret to let the controller create a new root, or restore the key`);
  let signing: SigningCa;
  try {
    signing = await loadCa({ certPem, keyPem });
  } catch (err) {
    throw certFailure(secretRef, (err as Error).message, err);
  }
  if (!isSelfSigned(new NodeX509Certificate(signing.certPem))) {
    throw certFailure(secretRef, `${CA_CERT_KEY} is not a self-signed root`, undefined, `an intermediate CA belongs in the plug-in Secret ${PLUGIN_CA_SECRET_NAME} with its cert-chain.pem and root-cert.pem`);
  }
  const normalizedKey = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'pem' }).toString();
  return {
    origin: 'self-signed',
    signing,
    material: { certPem: signing.certPem, keyPem: normalizedKey, chainPem: [], trustBundlePem: dedupe([signing.certPem, ...previous]) },
  };
}

/**
 * Validates a plug-in CA: the key matches ca-cert.pem, ca-cert.pem is a CA, it is valid now, and
 * a path of signatures leads from it through cert-chain.pem to a certificate of root-cert.pem.
 */
async function loadPluginCa(secretRef: string, data: Record<string, string>, previous: string[], now: Date): Promise<Loaded> {
  for (const key of [CA_CERT_KEY, CA_KEY_KEY, ROOT_CERT_KEY]) {
    if (!data[key]?.trim()) throw certFailure(secretRef, `the plug-in CA lacks ${key}`, undefined, `a plug-in CA Secret holds ${CA_CERT_KEY}, ${CA_KEY_KEY}, ${CERT_CHAIN_KEY} and ${ROOT_CERT_KEY} (as Istio's cacerts)`);
  }
  let signing: SigningCa;
  try {
    signing = await loadCa({ certPem: data[CA_CERT_KEY] as string, keyPem: data[CA_KEY_KEY] as string });
  } catch (err) {
    throw certFailure(secretRef, `the plug-in CA is unusable: ${(err as Error).message}`, err, 'amesh signs with ECDSA P-256: ca-cert.pem must be a CA certificate for the P-256 key in ca-key.pem');
  }
  const rootsPem = splitPemBundle(data[ROOT_CERT_KEY] as string);
  if (rootsPem.length === 0) throw certFailure(secretRef, `${ROOT_CERT_KEY} holds no certificate`);
  const roots = rootsPem.map((pem) => ({ pem, cert: new NodeX509Certificate(pem) }));
  const signingCert = new NodeX509Certificate(signing.certPem);
  if (signingCert.validTo && Date.parse(signingCert.validTo) <= now.getTime()) {
    throw certFailure(secretRef, `the plug-in CA certificate expired on ${signingCert.validTo}`, undefined, 'issue a new intermediate from your root and update the Secret');
  }
  const intermediates = splitPemBundle(data[CERT_CHAIN_KEY] ?? '')
    .map((pem) => ({ pem, cert: new NodeX509Certificate(pem) }))
    .filter((c) => c.cert.fingerprint256 !== signingCert.fingerprint256 && !roots.some((r) => r.cert.fingerprint256 === c.cert.fingerprint256));
  // Walk up: at each step, a root that signed the current certificate ends the path.
  const path: string[] = [];
  let current = signingCert;
  let reachedRoot = roots.some((r) => r.cert.fingerprint256 === signingCert.fingerprint256);
  for (let depth = 0; !reachedRoot && depth < MAX_CHAIN_DEPTH; depth++) {
    const signedBy = (c: NodeX509Certificate): boolean => current.checkIssued(c) && current.verify(c.publicKey);
    const root = roots.find((r) => signedBy(r.cert));
    if (root) {
      path.push(root.pem);
      reachedRoot = true;
      break;
    }
    const next = intermediates.find((c) => signedBy(c.cert) && !path.includes(c.pem));
    if (!next) break;
    path.push(next.pem);
    current = next.cert;
  }
  if (!reachedRoot) {
    throw certFailure(secretRef, `${CA_CERT_KEY} does not chain up to ${ROOT_CERT_KEY}: no issuer of "${current.subject.replace(/\n/g, ', ')}" found in ${CERT_CHAIN_KEY} or ${ROOT_CERT_KEY}`, undefined, `put every intermediate between ca-cert.pem and the root into ${CERT_CHAIN_KEY}`);
  }
  const normalizedKey = createPrivateKey(data[CA_KEY_KEY] as string).export({ type: 'pkcs8', format: 'pem' }).toString();
  return {
    origin: 'plug-in',
    signing,
    material: { certPem: signing.certPem, keyPem: normalizedKey, chainPem: path, trustBundlePem: dedupe([...rootsPem, ...previous]) },
  };
}

function materialKey(m: SigningMaterial): string {
  return [m.certPem, ...m.chainPem, '|', ...m.trustBundlePem].join('');
}

function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x01;
  return bytes.toString('hex');
}

// ---- the store ---------------------------------------------------------------------------

export class RootStore {
  readonly #core: CoreV1Api;
  readonly #namespace: string;
  readonly #trustDomain: string;
  readonly #log: Logger;
  readonly #now: () => Date;
  readonly #pollMs: number;
  readonly #validityDays: number;
  readonly #listeners = new Set<MaterialListener>();
  #loaded: Loaded | undefined;
  #key = '';
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #refreshing: Promise<void> | undefined;

  /** The SigningMaterialSource the CA server takes: always the latest material. */
  readonly source: SigningMaterialSource = () => this.current();

  constructor(opts: RootStoreOptions) {
    this.#core = opts.core;
    this.#namespace = opts.namespace;
    this.#trustDomain = opts.trustDomain;
    this.#log = (opts.log ?? silentLogger).child({ component: 'root-store' });
    this.#now = opts.now ?? (() => new Date());
    this.#pollMs = opts.pollIntervalMs ?? DEFAULT_POLL_MS;
    this.#validityDays = opts.rootValidityDays ?? ROOT_VALIDITY_DAYS;
  }

  /** Loads (or creates) the root; throws when the Secrets hold unusable material. Then polls. */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.refresh();
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#refreshing?.catch(() => undefined);
  }

  loaded(): boolean {
    return this.#loaded !== undefined;
  }

  current(): SigningMaterial {
    if (!this.#loaded) throw new AmeshError('AMESH_CERT_FAILED', 'the CA root is not loaded yet', { hint: 'RootStore.start() must finish before the CA signs' });
    return this.#loaded.material;
  }

  /** Which Secret the material came from. */
  origin(): { origin: RootOrigin; secret: string } | undefined {
    if (!this.#loaded) return undefined;
    return { origin: this.#loaded.origin, secret: `${this.#namespace}/${this.#loaded.origin === 'plug-in' ? PLUGIN_CA_SECRET_NAME : CA_SECRET_NAME}` };
  }

  /** Called after every change of signing cert, chain or trust bundle; returns the unsubscribe. */
  onChange(listener: MaterialListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Re-reads the Secrets now (what each poll does). Concurrent callers share one read. While
   * running, a Secret that turned unusable is logged and the previous material kept.
   */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  /**
   * New self-signed root; the old one (and previous roots not yet expired) stays trusted for
   * `overlapSeconds`. Refused while a plug-in CA is in use: that CA's owner rotates it.
   */
  async rotateRoot(opts: { overlapSeconds: number; propagationSeconds?: number }): Promise<RootRotation> {
    if (!Number.isInteger(opts.overlapSeconds) || opts.overlapSeconds < 0) {
      throw new AmeshError('AMESH_CONFIG_INVALID', `root rotation overlap ${opts.overlapSeconds} s: expected a whole number of seconds ≥ 0`);
    }
    const propagationSeconds = opts.propagationSeconds ?? 0;
    if (!Number.isInteger(propagationSeconds) || propagationSeconds < 0) {
      throw new AmeshError('AMESH_CONFIG_INVALID', `root rotation propagation ${propagationSeconds} s: expected a whole number of seconds ≥ 0`);
    }
    const ref = `${this.#namespace}/${CA_SECRET_NAME}`;
    for (let attempt = 1; ; attempt++) {
      if (await this.#readSecret(PLUGIN_CA_SECRET_NAME)) {
        throw new AmeshError('AMESH_CERT_FAILED', `the mesh signs with the plug-in CA in Secret ${this.#namespace}/${PLUGIN_CA_SECRET_NAME}; amesh does not rotate it`, {
          hint: `update ${PLUGIN_CA_SECRET_NAME} with a new intermediate (keep the old root in root-cert.pem during the overlap)`,
        });
      }
      let secret = await this.#readSecret(CA_SECRET_NAME);
      if (!secret) {
        await this.refresh();
        secret = await this.#readSecret(CA_SECRET_NAME);
        if (!secret) throw certFailure(ref, 'vanished while rotating', undefined, 'retry the rotation');
      }
      const data = decode(secret);
      const now = this.#now();
      if (data[NEXT_CA_CERT_KEY]) {
        throw new AmeshError('AMESH_CERT_FAILED', `a root rotation is already staged in ${ref} (the next root signs from ${secret.metadata?.annotations?.[NEXT_ROOT_AT_ANNOTATION] ?? '?'})`, {
          hint: 'wait until the staged root has taken over, then rotate again',
        });
      }
      const oldRoot = (await loadSelfSigned(ref, data, [])).signing.certPem;
      const annotations = { ...(secret.metadata?.annotations ?? {}) };
      const kept = activePreviousRoots(data[PREVIOUS_ROOTS_KEY] ?? '', annotations[PREVIOUS_ROOTS_UNTIL_ANNOTATION], now).roots;
      const keptUntil = Date.parse(annotations[PREVIOUS_ROOTS_UNTIL_ANNOTATION] ?? '');
      // Whole seconds (the annotation has no fractions), rounded up so the overlap is never short.
      const switchAt = new Date(Math.ceil((now.getTime() + propagationSeconds * 1000) / 1000) * 1000);
      const until = new Date(Math.ceil(Math.max(switchAt.getTime() + opts.overlapSeconds * 1000, kept.length > 0 && !Number.isNaN(keptUntil) ? keptUntil : 0) / 1000) * 1000);
      const fresh = await generateCa({ trustDomain: this.#trustDomain, validityDays: this.#validityDays, now });
      annotations[PREVIOUS_ROOTS_UNTIL_ANNOTATION] = rfc3339(until);
      // Staged (propagation > 0): the new root joins the trust bundle now and signs only once every
      // agent can have it; #promoteIfDue makes the switch. Otherwise it signs at once.
      if (propagationSeconds > 0) annotations[NEXT_ROOT_AT_ANNOTATION] = rfc3339(switchAt);
      const next: V1Secret = {
        ...secret,
        metadata: { ...secret.metadata, annotations },
        data: encode(
          propagationSeconds > 0
            ? { ...data, [NEXT_CA_CERT_KEY]: fresh.certPem, [NEXT_CA_KEY_KEY]: fresh.keyPem }
            : { ...data, [CA_CERT_KEY]: fresh.certPem, [CA_KEY_KEY]: fresh.keyPem, [PREVIOUS_ROOTS_KEY]: dedupe([oldRoot, ...kept]).join('') },
        ),
      };
      try {
        await this.#core.replaceNamespacedSecret({ name: CA_SECRET_NAME, namespace: this.#namespace, body: next });
      } catch (err) {
        if (statusOf(err) === 409 && attempt < WRITE_ATTEMPTS) {
          this.#log.info({ attempt }, 'istio-ca-secret changed while rotating; retrying on the new version');
          continue;
        }
        throw this.#apiFailure(`cannot write Secret ${ref}`, err);
      }
      const rotation: RootRotation = {
        previousRootPem: oldRoot,
        newRootPem: fresh.certPem,
        previousRootFingerprint: fingerprint(oldRoot),
        newRootFingerprint: fingerprint(fresh.certPem),
        previousRootsUntil: until,
        signingSwitchAt: propagationSeconds > 0 ? switchAt : now,
      };
      this.#log.info(
        { previousRoot: rotation.previousRootFingerprint, newRoot: rotation.newRootFingerprint, previousRootsUntil: rfc3339(until), signingSwitchAt: rfc3339(rotation.signingSwitchAt) },
        propagationSeconds > 0 ? 'staged a root rotation: the new root is trusted now and signs from signingSwitchAt' : 'rotated the root CA',
      );
      // A poll already in flight may have read the Secret before our write: wait it out, then read.
      await this.#refreshing?.catch(() => undefined);
      await this.refresh();
      return rotation;
    }
  }

  /** A TLS serving certificate for the CA server itself, signed by the current signing cert. */
  async servingCertificate(dnsNames: string[], validitySeconds = SERVING_CERT_VALIDITY_SECONDS): Promise<ServingCertificate> {
    if (dnsNames.length === 0) throw new AmeshError('AMESH_CONFIG_INVALID', 'a serving certificate needs at least one DNS name');
    if (!this.#loaded) this.current();
    const { signing, material } = this.#loaded as Loaded;
    const keys = await generateKeyPair();
    const now = this.#now();
    const notAfter = new Date(Math.min(now.getTime() + validitySeconds * 1000, signing.certificate.notAfter.getTime()));
    const notBefore = new Date(Math.max(now.getTime() - NOT_BEFORE_BACKDATE_MS, signing.certificate.notBefore.getTime()));
    const caSki = signing.certificate.getExtension(x509.SubjectKeyIdentifierExtension);
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: `CN=${dnsNames[0] as string}`,
      issuer: signing.certificate.subjectName,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: signing.key,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.BasicConstraintsExtension(false, undefined, true),
        caSki ? new x509.AuthorityKeyIdentifierExtension(caSki.keyId) : await x509.AuthorityKeyIdentifierExtension.create(signing.certificate.publicKey),
        new x509.SubjectAlternativeNameExtension(dnsNames.map((value) => ({ type: 'dns' as const, value }))),
      ],
    });
    // Peers hold the roots; send the leaf and every intermediate, never a self-signed root.
    const above = [material.certPem, ...material.chainPem].filter((pem) => !isSelfSigned(new NodeX509Certificate(pem)));
    return { certChainPem: [leaf.toString('pem') + '\n', ...above].join(''), keyPem: await exportPrivateKeyPem(keys.privateKey), notAfter };
  }

  // ---- internals -------------------------------------------------------------------------

  #schedule(): void {
    if (this.#stopped || this.#pollMs <= 0) return;
    this.#timer = setTimeout(() => {
      this.refresh()
        .catch((err: unknown) => this.#log.warn({ err }, 'cannot re-read the CA Secrets; keeping the current root'))
        .finally(() => this.#schedule());
    }, this.#pollMs);
    this.#timer.unref();
  }

  async #refresh(): Promise<void> {
    let next: Loaded;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new AmeshError('AMESH_CERT_FAILED', `reading the CA Secrets in ${this.#namespace} took over ${REFRESH_TIMEOUT_MS} ms`)), REFRESH_TIMEOUT_MS);
      timer.unref();
    });
    try {
      next = await Promise.race([this.#load(), timeout]);
    } catch (err) {
      if (!this.#loaded) throw err;
      this.#log.error({ err }, 'cannot use the CA Secrets now; keeping the current root');
      return;
    } finally {
      clearTimeout(timer);
    }
    const key = materialKey(next.material);
    if (key === this.#key) {
      this.#loaded = next;
      return;
    }
    const first = this.#loaded === undefined;
    this.#loaded = next;
    this.#key = key;
    this.#log.info(
      { origin: next.origin, signing: fingerprint(next.material.certPem), trustBundle: next.material.trustBundlePem.map(fingerprint) },
      first ? 'CA root loaded' : 'CA root or trust bundle changed',
    );
    if (first) return;
    for (const listener of this.#listeners) {
      try {
        listener(next.material);
      } catch (err) {
        this.#log.error({ err }, 'a root change listener threw');
      }
    }
  }

  async #load(): Promise<Loaded> {
    const now = this.#now();
    const plugin = await this.#readSecret(PLUGIN_CA_SECRET_NAME);
    if (plugin) {
      const previous = await this.#previousRoots(plugin, now);
      return loadPluginCa(`${this.#namespace}/${PLUGIN_CA_SECRET_NAME}`, decode(plugin), previous, now);
    }
    if (this.#loaded?.origin === 'plug-in') this.#log.warn(`Secret ${PLUGIN_CA_SECRET_NAME} is gone; falling back to ${CA_SECRET_NAME}`);
    const secret = await this.#promoteIfDue((await this.#readSecret(CA_SECRET_NAME)) ?? (await this.#createSelfSigned()), now);
    const staged = decode(secret)[NEXT_CA_CERT_KEY];
    const loaded = await loadSelfSigned(`${this.#namespace}/${CA_SECRET_NAME}`, decode(secret), [...(await this.#previousRoots(secret, now)), ...(staged ? splitPemBundle(staged) : [])]);
    const until = secret.metadata?.annotations?.[PREVIOUS_ROOTS_UNTIL_ANNOTATION];
    return until === undefined ? loaded : { ...loaded, previousRootsUntil: until };
  }

  /**
   * A staged rotation whose time has come: the next root becomes the signing root and the old one
   * a previous root (trusted until the overlap ends). Any controller may do it; a 409 means
   * another did first, and the re-read Secret is used.
   */
  async #promoteIfDue(secret: V1Secret, now: Date): Promise<V1Secret> {
    const data = decode(secret);
    const at = Date.parse(secret.metadata?.annotations?.[NEXT_ROOT_AT_ANNOTATION] ?? '');
    if (!data[NEXT_CA_CERT_KEY] || !data[NEXT_CA_KEY_KEY] || Number.isNaN(at) || at > now.getTime()) return secret;
    const name = secret.metadata?.name ?? CA_SECRET_NAME;
    const annotations = { ...(secret.metadata?.annotations ?? {}) };
    delete annotations[NEXT_ROOT_AT_ANNOTATION];
    const kept = activePreviousRoots(data[PREVIOUS_ROOTS_KEY] ?? '', annotations[PREVIOUS_ROOTS_UNTIL_ANNOTATION], now).roots;
    const { [NEXT_CA_CERT_KEY]: nextCert, [NEXT_CA_KEY_KEY]: nextKey, ...rest } = data;
    const body: V1Secret = {
      ...secret,
      metadata: { ...secret.metadata, annotations },
      data: encode({ ...rest, [CA_CERT_KEY]: nextCert as string, [CA_KEY_KEY]: nextKey as string, [PREVIOUS_ROOTS_KEY]: dedupe([data[CA_CERT_KEY] as string, ...kept]).join('') }),
    };
    try {
      const written = await this.#core.replaceNamespacedSecret({ name, namespace: this.#namespace, body });
      this.#log.info({ newRoot: fingerprint(nextCert as string), previousRootsUntil: annotations[PREVIOUS_ROOTS_UNTIL_ANNOTATION] }, 'the staged root now signs');
      return written;
    } catch (err) {
      if (statusOf(err) === 409) return (await this.#readSecret(name)) ?? secret;
      this.#log.warn({ err, secret: name }, 'cannot promote the staged root yet; the next poll retries');
      return secret;
    }
  }

  /** Previous roots still trusted; expired ones are removed from the Secret (best effort). */
  async #previousRoots(secret: V1Secret, now: Date): Promise<string[]> {
    const data = decode(secret);
    const until = secret.metadata?.annotations?.[PREVIOUS_ROOTS_UNTIL_ANNOTATION];
    const active = activePreviousRoots(data[PREVIOUS_ROOTS_KEY] ?? '', until, now);
    if (active.invalidDeadline) this.#log.warn({ secret: secret.metadata?.name, until }, `annotation ${PREVIOUS_ROOTS_UNTIL_ANNOTATION} is not RFC 3339; previous roots stay trusted`);
    if (active.expired) {
      const annotations = { ...(secret.metadata?.annotations ?? {}) };
      delete annotations[PREVIOUS_ROOTS_UNTIL_ANNOTATION];
      const rest = { ...data };
      delete rest[PREVIOUS_ROOTS_KEY];
      const name = secret.metadata?.name ?? CA_SECRET_NAME;
      try {
        await this.#core.replaceNamespacedSecret({ name, namespace: this.#namespace, body: { ...secret, metadata: { ...secret.metadata, annotations }, data: encode(rest) } });
        this.#log.info({ secret: name, until }, 'the root rotation overlap ended; dropped the previous roots');
      } catch (err) {
        // Another writer got there first (409) or the API is down: the bundle already excludes
        // them, and the next poll retries the cleanup.
        this.#log.warn({ err, secret: name }, 'cannot drop the expired previous roots from the Secret yet');
      }
    }
    return active.roots;
  }

  async #readSecret(name: string): Promise<V1Secret | undefined> {
    try {
      return await this.#core.readNamespacedSecret({ name, namespace: this.#namespace });
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw this.#apiFailure(`cannot read Secret ${this.#namespace}/${name}`, err);
    }
  }

  /** Writes the in-memory root back if we have one, else a fresh root; a 409 means another controller won. */
  async #createSelfSigned(): Promise<V1Secret> {
    const existing = this.#loaded?.origin === 'self-signed' ? this.#loaded.material : undefined;
    const material = existing ?? (await generateCa({ trustDomain: this.#trustDomain, validityDays: this.#validityDays, now: this.#now() }));
    const previous = existing ? existing.trustBundlePem.filter((pem) => pem !== existing.certPem) : [];
    const until = previous.length > 0 ? this.#loaded?.previousRootsUntil : undefined;
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: CA_SECRET_TYPE,
      metadata: {
        name: CA_SECRET_NAME,
        namespace: this.#namespace,
        labels: { 'app.kubernetes.io/managed-by': 'amesh-controller' },
        ...(until !== undefined ? { annotations: { [PREVIOUS_ROOTS_UNTIL_ANNOTATION]: until } } : {}),
      },
      // Istio's layout: empty cert-chain.pem and root-cert.pem for a self-signed root.
      data: encode({ [CA_CERT_KEY]: material.certPem, [CA_KEY_KEY]: material.keyPem, [CERT_CHAIN_KEY]: '', [ROOT_CERT_KEY]: '', ...(previous.length ? { [PREVIOUS_ROOTS_KEY]: previous.join('') } : {}) }),
    };
    try {
      const created = await this.#core.createNamespacedSecret({ namespace: this.#namespace, body });
      this.#log.info({ secret: `${this.#namespace}/${CA_SECRET_NAME}`, root: fingerprint(material.certPem), rewritten: existing !== undefined }, existing ? 'wrote the current root back to its deleted Secret' : 'created a self-signed root CA');
      return created;
    } catch (err) {
      if (statusOf(err) === 409) {
        const theirs = await this.#readSecret(CA_SECRET_NAME);
        if (theirs) return theirs;
      }
      throw this.#apiFailure(`cannot create Secret ${this.#namespace}/${CA_SECRET_NAME}`, err);
    }
  }

  #apiFailure(message: string, err: unknown): AmeshError {
    const status = statusOf(err);
    const hint =
      status === 403
        ? `the controller's ServiceAccount needs get/create/update on Secrets in ${this.#namespace}`
        : status === 404
          ? `does the namespace ${this.#namespace} exist?`
          : undefined;
    return new AmeshError('AMESH_CERT_FAILED', `${message}${status ? ` (HTTP ${status})` : ''}: ${(err as Error).message}`, { cause: err, hint });
  }
}
