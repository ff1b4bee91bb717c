/**
 * The controller process (`amesh controller`): build → start → close.
 *
 * build: reads nothing from the network — wires the root store (CA Secrets), the trust bundle
 * publisher (ConfigMap istio-ca-root-cert everywhere), the pod locator (pods informer), the token
 * reviewer (TokenReview API) and the CA gRPC server.
 * start: readiness endpoint first (so probes see 503, not a refused connection), then root →
 * pods → bundle → CA listening. A root that cannot be loaded fails start with the reason.
 * Ready (`GET /healthz/ready` on 15021) = root loaded ∧ pod cache synced ∧ CA listening.
 * A root change (rotation, plug-in CA edited) re-publishes the bundle and re-issues the CA's
 * serving certificate; the serving certificate is also renewed at half its lifetime.
 * close: the reverse order; every listener and timer is owned here.
 */
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { ControllerConfig } from '../config/controller-config.js';
import { AmeshError, describeError } from '../errors/amesh-error.js';
import type { Logger } from '../telemetry/logger.js';
import { createCaServer, type CaServer } from './ca/ca-server.js';
import { RootStore, SERVING_CERT_VALIDITY_SECONDS, controllerDnsNames, fingerprint } from './ca/root-store.js';
import { TrustBundlePublisher } from './ca/trust-bundle-publisher.js';
import { KubePodLocator } from './kube/pod-locator.js';
import { KubeTokenReviewer } from './kube/token-reviewer.js';

/** `--kubeconfig` wins; in a pod the ServiceAccount; else $KUBECONFIG / ~/.kube/config. */
export function loadKubeConfig(path?: string, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path) kc.loadFromFile(path);
    else if (env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
    else kc.loadFromDefault();
  } catch (err) {
    throw new AmeshError('AMESH_CONFIG_INVALID', `cannot load the kubeconfig${path ? ` ${path}` : ''}: ${(err as Error).message}`, { cause: err });
  }
  if (!kc.getCurrentCluster()) {
    throw new AmeshError('AMESH_CONFIG_INVALID', 'no Kubernetes cluster configured', { hint: 'pass --kubeconfig <file>, set KUBECONFIG, or run in a pod' });
  }
  return kc;
}

export interface ControllerAppOptions {
  config: Readonly<ControllerConfig>;
  kubeConfig: KubeConfig;
  log: Logger;
  /** Where the CA and readiness listen; 0.0.0.0 in a pod, 127.0.0.1 in tests. */
  listenHost?: string;
  /** Test hooks: a faster trust-bundle retry. */
  bundleRetryMs?: number;
}

export interface ControllerReadiness {
  ready: boolean;
  rootLoaded: boolean;
  podsSynced: boolean;
  caListening: boolean;
  trustBundlePublished: boolean;
}

export class ControllerApp {
  readonly roots: RootStore;
  readonly publisher: TrustBundlePublisher;
  readonly pods: KubePodLocator;
  #ca: CaServer | undefined;
  #readiness: http.Server | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  #caPort: number | undefined;
  #readinessPort: number | undefined;
  #closed = false;
  readonly #opts: ControllerAppOptions;
  readonly #log: Logger;
  readonly #reviewer: KubeTokenReviewer;
  readonly #dnsNames: string[];

  private constructor(opts: ControllerAppOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    const { config, kubeConfig } = opts;
    this.roots = new RootStore({ core: kubeConfig.makeApiClient(CoreV1Api), namespace: config.namespace, trustDomain: config.trustDomain, log: opts.log, pollIntervalMs: config.rootPollMs });
    this.publisher = new TrustBundlePublisher({ kubeConfig, bundle: () => this.roots.current().trustBundlePem, log: opts.log, ...(opts.bundleRetryMs !== undefined ? { retryMs: opts.bundleRetryMs } : {}) });
    this.pods = new KubePodLocator({ kubeConfig, log: opts.log });
    this.#reviewer = KubeTokenReviewer.fromKubeConfig(kubeConfig);
    this.#dnsNames = controllerDnsNames(config.namespace);
  }

  static build(opts: ControllerAppOptions): ControllerApp {
    const cluster = opts.kubeConfig.getCurrentCluster();
    opts.log.info({ apiServer: cluster?.server, namespace: opts.config.namespace, trustDomain: opts.config.trustDomain }, 'controller built');
    return new ControllerApp(opts);
  }

  /** Starts everything; resolves when the CA is listening (pods may still be syncing). */
  async start(): Promise<{ caPort: number; readinessPort: number }> {
    const { config } = this.#opts;
    const host = this.#opts.listenHost ?? '0.0.0.0';
    this.#readinessPort = await this.#listenReadiness(host, config.readinessPort);
    this.#log.info({ port: this.#readinessPort }, 'readiness endpoint listening');

    this.#log.info({ namespace: config.namespace }, 'loading the CA root');
    await this.roots.start();
    this.#log.info({ ...this.roots.origin(), signing: fingerprint(this.roots.current().certPem) }, 'CA root ready');

    this.#log.info('starting the pod cache');
    await this.pods.start();
    this.#log.info('publishing the trust bundle');
    await this.publisher.start();

    const serving = await this.roots.servingCertificate(this.#dnsNames);
    this.#ca = createCaServer({
      material: this.roots.source,
      reviewer: this.#reviewer,
      pods: this.pods,
      trustDomain: config.trustDomain,
      trustedNodeAgents: [...config.trustedNodeAgents],
      defaultTtlSeconds: config.certDefaultTtlSeconds,
      maxTtlSeconds: config.certMaxTtlSeconds,
      serving,
      log: this.#log,
    });
    this.#caPort = await this.#ca.listen(config.caPort, host);
    this.#scheduleServingRenewal();
    this.#unsubscribe = this.roots.onChange(() => {
      this.#log.info('CA root changed: re-publishing the trust bundle and re-issuing the serving certificate');
      this.publisher.bundleChanged();
      void this.#renewServingCertificate();
    });
    this.#log.info({ caPort: this.#caPort, readinessPort: this.#readinessPort }, 'controller started');
    return { caPort: this.#caPort, readinessPort: this.#readinessPort };
  }

  readiness(): ControllerReadiness {
    const r = {
      rootLoaded: this.roots.loaded(),
      podsSynced: this.pods.synced(),
      caListening: this.#caPort !== undefined && !this.#closed,
      trustBundlePublished: this.publisher.synced(),
    };
    return { ready: r.rootLoaded && r.podsSynced && r.caListening, ...r };
  }

  /** Stops in reverse order; safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#log.info('controller stopping');
    clearTimeout(this.#renewTimer);
    this.#unsubscribe?.();
    await this.#ca?.close();
    this.#log.info('CA closed');
    await this.publisher.stop();
    await this.pods.stop();
    await this.roots.stop();
    if (this.#readiness) {
      const closed = once(this.#readiness, 'close');
      this.#readiness.close();
      this.#readiness.closeAllConnections();
      await closed;
    }
    this.#log.info('controller stopped');
  }

  async #listenReadiness(host: string, port: number): Promise<number> {
    const server = http.createServer((req, res) => {
      const readiness = req.url?.startsWith('/healthz/ready') ? this.readiness() : undefined;
      const text = JSON.stringify(readiness ?? { error: `no such path ${req.url ?? ''}; try /healthz/ready` });
      res.writeHead(readiness ? (readiness.ready ? 200 : 503) : 404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
    server.listen({ host, port });
    try {
      await once(server, 'listening');
    } catch (err) {
      throw new AmeshError('AMESH_PORT_IN_USE', `cannot listen on ${host}:${port} for readiness`, { cause: err, hint: 'is another controller running here? (AMESH_READINESS_PORT)' });
    }
    this.#readiness = server;
    return (server.address() as AddressInfo).port;
  }

  async #renewServingCertificate(): Promise<void> {
    if (this.#closed || !this.#ca) return;
    try {
      const serving = await this.roots.servingCertificate(this.#dnsNames);
      await this.#ca.setServingCertificate(serving);
      this.#log.info({ notAfter: serving.notAfter.toISOString() }, 'CA serving certificate renewed');
    } catch (err) {
      this.#log.error({ err: describeError(err) }, 'cannot renew the CA serving certificate; keeping the current one');
    }
    this.#scheduleServingRenewal();
  }

  /** At half the lifetime, as workloads rotate theirs. */
  #scheduleServingRenewal(): void {
    clearTimeout(this.#renewTimer);
    if (this.#closed) return;
    this.#renewTimer = setTimeout(() => void this.#renewServingCertificate(), (SERVING_CERT_VALIDITY_SECONDS * 1000) / 2);
    this.#renewTimer.unref();
  }
}
