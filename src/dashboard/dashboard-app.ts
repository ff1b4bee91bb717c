/**
 * `amesh dashboard` assembled: scraper → graph model → HTTP server, plus the namespace
 * inventory from the Kubernetes API (refreshed every round, also telling the model which
 * workloads are waypoints). Lifecycle: start() listens and runs the first round; close() stops the
 * loop, waits for the round in flight and closes the server and PodHttp.
 */
import type http from 'node:http';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { PodHttp } from '../cli/inspect/pod-http.js';
import { GraphModel } from './graph-model.js';
import { readNamespaceInventory, summariseNamespaces, waypointWorkloads, type NamespaceInventory, type NamespaceSummary } from './namespaces.js';
import { Scraper, discoverPodSources, urlSource, type MetricsSource } from './scraper.js';
import { createDashboardServer, listen } from './server.js';

export interface DashboardOptions {
  address: string;
  port: number;
  intervalMs: number;
  /** `[NAMESPACE/WORKLOAD=]URL` each. */
  metricsUrls: readonly string[];
  /** Kubernetes discovery and namespace state; absent → URLs only. */
  kube?: { kubeConfig: KubeConfig; podHttp: PodHttp };
  /** Where the namespace state comes from (default: the Kubernetes API of `kube`; tests pass fixtures). */
  readInventory?: () => Promise<NamespaceInventory>;
  windowMs?: number;
  /** Clock for scrape times (tests). */
  now?: () => number;
  log?: (line: string) => void;
}

export interface NamespacesResponse {
  available: boolean;
  error?: string;
  updatedMs?: number;
  namespaces: NamespaceSummary[];
}

export interface RunningDashboard {
  url: string;
  port: number;
  model: GraphModel;
  /** Settles when the first round (started by startDashboard) has been ingested. */
  firstRound: Promise<void>;
  /** One scrape round now (tests; the loop keeps its own schedule). */
  scrapeNow(): Promise<void>;
  close(): Promise<void>;
}

export async function startDashboard(o: DashboardOptions): Promise<RunningDashboard> {
  const log = o.log ?? (() => undefined);
  const model = new GraphModel({ windowMs: o.windowMs ?? Math.max(30_000, 2 * o.intervalMs) });
  const staticSources: MetricsSource[] = o.metricsUrls.map(urlSource);
  const core = o.kube ? o.kube.kubeConfig.makeApiClient(CoreV1Api) : undefined;
  const kubeConfig = o.kube?.kubeConfig;
  const readInventory = o.readInventory ?? (kubeConfig ? () => readNamespaceInventory(kubeConfig) : undefined);
  let namespaces: NamespacesResponse = readInventory ? { available: false, error: 'not read yet', namespaces: [] } : { available: false, error: 'no Kubernetes API (only --metrics-url targets)', namespaces: [] };
  let lastDiscoveryError: string | undefined;

  const refreshNamespaces = async (): Promise<void> => {
    if (!readInventory) return;
    try {
      const inventory = await readInventory();
      namespaces = { available: true, updatedMs: Date.now(), namespaces: summariseNamespaces(inventory) };
      model.setKnownWaypoints(waypointWorkloads(inventory.gateways));
    } catch (err) {
      namespaces = { ...namespaces, available: false, error: (err as Error).message };
    }
  };

  const sources = async (): Promise<MetricsSource[]> => {
    await refreshNamespaces();
    if (!o.kube || !core) return staticSources;
    try {
      const pods = await discoverPodSources(core, o.kube.podHttp);
      if (lastDiscoveryError !== undefined) log('dashboard: Kubernetes discovery works again');
      lastDiscoveryError = undefined;
      return [...staticSources, ...pods];
    } catch (err) {
      const message = (err as Error).message;
      if (message !== lastDiscoveryError) log(`dashboard: cannot list the proxies' pods: ${message}`);
      lastDiscoveryError = message;
      return staticSources;
    }
  };

  let firstRoundDone: () => void = () => undefined;
  const firstRound = new Promise<void>((resolve) => (firstRoundDone = resolve));
  const scraper = new Scraper({
    sources,
    intervalMs: o.intervalMs,
    ...(o.now ? { now: o.now } : {}),
    onRound: (results) => {
      model.ingest(results);
      firstRoundDone();
    },
    onError: () => firstRoundDone(),
  });
  const server: http.Server = createDashboardServer({
    graph: () => ({ ...model.graph(), intervalSeconds: o.intervalMs / 1000, discoveryError: lastDiscoveryError }),
    services: () => ({ services: model.services() }),
    namespaces: () => namespaces,
  });
  const { url, port } = await listen(server, o.address, o.port);
  scraper.start();
  return {
    url,
    port,
    model,
    firstRound,
    async scrapeNow() {
      await scraper.round();
    },
    async close() {
      await scraper.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      o.kube?.podHttp.close();
    },
  };
}
