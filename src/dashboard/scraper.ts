/**
 * The dashboard's scrape loop: every interval, GET /metrics from every proxy (in parallel, each
 * bounded by a timeout), parse it and hand the round to the graph model.
 *
 * Targets:
 * - plain URLs (`--metrics-url [NAMESPACE/WORKLOAD=]URL`; naming the workload lets the model know a
 *   waypoint as one, so its L4 hops fold into its HTTP edges);
 * - from Kubernetes: the node agents (pods labelled app=amesh-node in amesh-system, DESIGN §3
 *   port 15020) and the waypoint/gateway pods (label gateway.networking.k8s.io/gateway-name),
 *   fetched through PodHttp (inside the pod's network namespace in the sandbox, port-forward on
 *   a real cluster), re-listed every round so new pods appear.
 *
 * Invariants: rounds never overlap (the next is scheduled when one ends); a failing target is a
 * failed result in that round, never an exception out of the loop; stop() ends the loop and waits
 * for the round in flight.
 */
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { AmeshError } from '../errors/amesh-error.js';
import type { PodHttp } from '../cli/inspect/pod-http.js';
import { podWorkloadName } from '../controller/translate/workload.js';
import type { PodObject } from '../controller/translate/enrolment.js';
import type { ScrapeResult, ScrapeTarget, TargetRole } from './graph-model.js';
import { parsePrometheusText } from './prometheus-text.js';

export const METRICS_PORT = 15020;
export const AGENT_NAMESPACE = 'amesh-system';
export const AGENT_SELECTOR = 'app=amesh-node';
export const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';
const COMPONENT_LABEL = 'app.kubernetes.io/component';
/** Generous: in the sandbox each GET starts a process inside the pod's network namespace. */
export const DEFAULT_TIMEOUT_MS = 5_000;

export interface MetricsSource {
  target: ScrapeTarget;
  /** The exposition text; throws on failure. */
  fetch(timeoutMs: number): Promise<string>;
}

/** `[NAMESPACE/WORKLOAD=]URL` → its parts. */
export function parseMetricsUrl(spec: string): { url: string; workload?: { namespace: string; name: string } } {
  const m = /^(?:([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)=)?(https?:\/\/.+)$/.exec(spec.trim());
  if (!m) {
    throw new AmeshError('AMESH_CONFIG_INVALID', `--metrics-url ${JSON.stringify(spec)}: expected [NAMESPACE/WORKLOAD=]http://host:port/metrics`, {
      hint: 'e.g. --metrics-url http://127.0.0.1:15020/metrics or --metrics-url default/waypoint=http://127.0.0.1:15021/metrics',
    });
  }
  const url = m[5]!;
  try {
    new URL(url);
  } catch {
    throw new AmeshError('AMESH_CONFIG_INVALID', `--metrics-url ${JSON.stringify(spec)}: ${url} is not a URL`);
  }
  return m[1] && m[3] ? { url, workload: { namespace: m[1], name: m[3] } } : { url };
}

export function urlSource(spec: string): MetricsSource {
  const { url, workload } = parseMetricsUrl(spec);
  return {
    target: { id: url, role: 'unknown', ...(workload ? { workload } : {}) },
    async fetch(timeoutMs) {
      let res: Response;
      try {
        res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'text/plain' } });
      } catch (err) {
        // undici says only "fetch failed"; the reason (ECONNREFUSED, a timeout) is its cause.
        const cause = (err as Error).cause as { code?: string; message?: string } | undefined;
        throw new Error(`GET ${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, { cause: err });
      }
      const body = await res.text();
      if (res.status !== 200) throw new Error(`HTTP ${res.status} from ${url}`);
      return body;
    },
  };
}

/** Which proxy a pod is, from its labels. */
export function podRole(pod: V1Pod): TargetRole {
  const labels = pod.metadata?.labels ?? {};
  if (labels.app === 'amesh-node') return 'agent';
  if (labels[GATEWAY_NAME_LABEL] !== undefined) return labels[COMPONENT_LABEL] === 'ingress-gateway' ? 'gateway' : 'waypoint';
  return 'unknown';
}

export function podSource(pod: V1Pod, podHttp: PodHttp): MetricsSource {
  const namespace = pod.metadata?.namespace ?? '';
  const role = podRole(pod);
  const target: ScrapeTarget = {
    id: `pod:${namespace}/${pod.metadata?.name ?? ''}`,
    role,
    ...(role === 'agent' ? {} : { workload: { namespace, name: podWorkloadName(pod as PodObject) } }),
  };
  return {
    target,
    async fetch(timeoutMs) {
      const res = await podHttp.get(pod, METRICS_PORT, '/metrics', { timeoutMs });
      if (res.status !== 200) throw new Error(`HTTP ${res.status} from ${target.id}:${METRICS_PORT}/metrics`);
      return res.body;
    },
  };
}

/** The proxies' pods, listed now: node agents, then waypoints and gateways. Running pods only. */
export async function discoverPodSources(core: CoreV1Api, podHttp: PodHttp): Promise<MetricsSource[]> {
  const [agents, gateways] = await Promise.all([core.listNamespacedPod({ namespace: AGENT_NAMESPACE, labelSelector: AGENT_SELECTOR }), core.listPodForAllNamespaces({ labelSelector: GATEWAY_NAME_LABEL })]);
  return [...agents.items, ...gateways.items].filter((p) => p.status?.phase === 'Running').map((p) => podSource(p, podHttp));
}

export interface ScraperOptions {
  /** The targets of the next round (called every round). */
  sources: () => Promise<MetricsSource[]>;
  onRound: (results: ScrapeResult[]) => void;
  intervalMs: number;
  /** Per target (default DEFAULT_TIMEOUT_MS; rounds never overlap, so a slow target delays the next round, never doubles it). */
  timeoutMs?: number;
  now?: () => number;
  /** A round whose target list could not be made (the Kubernetes API is down). */
  onError?: (err: unknown) => void;
}

export class Scraper {
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private stopped = false;
  private readonly now: () => number;
  private readonly timeoutMs: number;

  constructor(private readonly o: ScraperOptions) {
    this.now = o.now ?? Date.now;
    this.timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Scrapes now, then every interval until stop(). */
  start(): void {
    this.stopped = false;
    this.loop();
  }

  private loop(): void {
    if (this.stopped) return;
    this.inFlight = this.round().then(() => {
      this.inFlight = undefined;
      if (!this.stopped) this.timer = setTimeout(() => this.loop(), this.o.intervalMs);
    });
  }

  /** One round: every source in parallel. Never throws. */
  async round(): Promise<ScrapeResult[]> {
    let sources: MetricsSource[];
    try {
      sources = await this.o.sources();
    } catch (err) {
      this.o.onError?.(err);
      return [];
    }
    const results = await Promise.all(
      sources.map(async (s): Promise<ScrapeResult> => {
        try {
          const text = await s.fetch(this.timeoutMs);
          const timeMs = this.now();
          const { families, problems } = parsePrometheusText(text);
          return { target: s.target, timeMs, families, problems: problems.length };
        } catch (err) {
          return { target: s.target, timeMs: this.now(), error: (err as Error).message ?? String(err) };
        }
      }),
    );
    this.o.onRound(results);
    return results;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.inFlight;
  }
}
