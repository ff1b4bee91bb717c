/**
 * Host loopback ports for LoadBalancer Services: keeps one listener on the host's 127.0.0.1 per
 * TCP port of every LoadBalancer Service with an address (planHostPorts decides which, and
 * which port numbers to try) and relays each accepted connection to <LoadBalancer IP>:<port>
 * from inside the fabric namespace, where kube-proxy's rules take it to an endpoint. The ports
 * in use are written on the Service as `sandbox.amesh.io/host-ports`.
 *
 * Invariants: listeners only ever bind 127.0.0.1 (the helper in host-listener-child.ts opens
 * them; this process has no route from the host into the sandbox and needs none); syncs are
 * debounced and never overlap; a listener whose Service port is gone is closed at once, along
 * with its relayed connections; a failed sync is retried on a back-off timer; `stop()` closes
 * every listener and connection. The listeners are file descriptors of this process only, so
 * a daemon that exits — cleanly or not — leaves none behind.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import { ApiError, type ClusterStore, type KubeObject } from '../apiserver/types.js';
import type { HostListen } from './host-listener.js';
import { formatHostPorts, HOST_PORTS_ANNOTATION, loadBalancerAddress, planHostPorts, type HostPortRequest } from './host-ports.js';

const DEFAULT_DEBOUNCE_MS = 50;
const RETRY_MS = 2_000;
const DIAL_TIMEOUT_MS = 10_000;

export interface HostPortRelayOptions {
  store: ClusterStore;
  log: Logger;
  /** Opens listeners on the host loopback (hostNetnsListen in the daemon; plain loopback in tests). */
  listen: HostListen;
  debounceMs?: number;
}

interface Binding {
  service: string;
  port: number;
  hostPort: number;
  /** Where connections go; follows the Service's LoadBalancer address. */
  ip: string;
  server: net.Server;
  connections: Set<net.Socket>;
}

/** One Service port's host listener, as `amesh sandbox status` shows it. */
export interface HostPortEntry {
  service: string;
  port: number;
  hostPort: number;
  ip: string;
}

const bindingKey = (service: string, port: number): string => `${service}:${port}`;

export class HostPortRelay {
  private readonly store: ClusterStore;
  private readonly log: Logger;
  private readonly listen: HostListen;
  private readonly debounceMs: number;
  private readonly bindings = new Map<string, Binding>();
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  private again = false;
  private running = false;

  constructor(options: HostPortRelayOptions) {
    this.store = options.store;
    this.log = options.log;
    this.listen = options.listen;
    this.debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  }

  /** Watch Services and bring the listeners in line once before resolving. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = this.store.watch('v1', 'Service', {}, () => this.schedule(this.debounceMs));
    await this.syncNow().catch((err: unknown) => {
      this.log.error({ err }, `host port sync failed; retrying in ${RETRY_MS} ms`);
      this.schedule(RETRY_MS);
    });
  }

  /** Stop watching; close every listener and relayed connection. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.syncing?.catch(() => undefined);
    for (const binding of [...this.bindings.values()]) this.close(binding);
  }

  /** The listeners open now. */
  entries(): HostPortEntry[] {
    return [...this.bindings.values()].map(({ service, port, hostPort, ip }) => ({ service, port, hostPort, ip }));
  }

  /** Sync now; concurrent callers share one run, a call during a run queues one more. */
  syncNow(): Promise<void> {
    if (this.syncing) {
      this.again = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      try {
        do {
          this.again = false;
          await this.syncOnce();
        } while (this.again && this.running);
      } finally {
        this.syncing = undefined;
      }
    })();
    return this.syncing;
  }

  private schedule(delayMs: number): void {
    if (!this.running || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.syncNow().catch((err: unknown) => {
        this.log.error({ err }, `host port sync failed; retrying in ${RETRY_MS} ms`);
        this.schedule(RETRY_MS);
      });
    }, delayMs);
    this.timer.unref();
  }

  private async syncOnce(): Promise<void> {
    if (!this.running) return;
    const services = this.store.list<KubeObject>('v1', 'Service').items;
    const wanted = planHostPorts(services);
    const wantedKeys = new Set(wanted.map((r) => bindingKey(r.service, r.port)));
    for (const binding of [...this.bindings.values()]) {
      if (!wantedKeys.has(bindingKey(binding.service, binding.port))) this.close(binding);
    }
    const missing: HostPortRequest[] = [];
    for (const request of wanted) {
      const binding = this.bindings.get(bindingKey(request.service, request.port));
      if (binding) binding.ip = request.ip;
      else missing.push(request);
    }
    let failed = false;
    if (missing.length) {
      const results = await this.listen(missing);
      for (const [index, request] of missing.entries()) {
        const result = results[index];
        if (!result || 'error' in result) {
          failed = true;
          this.log.warn({ service: request.service, port: request.port, error: result?.error }, 'could not open a host loopback port');
          continue;
        }
        // The Service may have changed while the helper ran: the next sync reconciles it.
        if (!this.running) {
          result.server.close();
          continue;
        }
        this.open({ service: request.service, port: request.port, hostPort: result.port, ip: request.ip, server: result.server, connections: new Set() });
      }
    }
    this.writeAnnotations(services);
    if (failed) throw new Error('some host loopback ports could not be opened');
  }

  private open(binding: Binding): void {
    // Accepted sockets take the server's setting (net.js onconnection); it is not in the typings.
    (binding.server as net.Server & { allowHalfOpen: boolean }).allowHalfOpen = true;
    binding.server.on('connection', (client: net.Socket) => this.relay(binding, client));
    binding.server.on('error', (err) => this.log.warn({ err, service: binding.service, port: binding.port }, 'host loopback listener failed'));
    this.bindings.set(bindingKey(binding.service, binding.port), binding);
    this.log.info({ service: binding.service, port: binding.port, hostPort: binding.hostPort, target: `${binding.ip}:${binding.port}` }, `relaying 127.0.0.1:${binding.hostPort} on the host to ${binding.ip}:${binding.port}`);
  }

  private close(binding: Binding): void {
    this.bindings.delete(bindingKey(binding.service, binding.port));
    binding.server.close();
    for (const socket of binding.connections) socket.destroy();
    binding.connections.clear();
    this.log.info({ service: binding.service, port: binding.port, hostPort: binding.hostPort }, 'closed host loopback port');
  }

  /** Pipe one host connection to the LoadBalancer address; half-closes pass through. */
  private relay(binding: Binding, client: net.Socket): void {
    const upstream = net.connect({ host: binding.ip, port: binding.port, allowHalfOpen: true, noDelay: true });
    client.setNoDelay(true);
    binding.connections.add(client);
    binding.connections.add(upstream);
    upstream.setTimeout(DIAL_TIMEOUT_MS, () => upstream.destroy(new Error(`no answer from ${binding.ip}:${binding.port} within ${DIAL_TIMEOUT_MS} ms`)));
    upstream.once('connect', () => upstream.setTimeout(0));
    const teardown = (err?: Error): void => {
      if (err) this.log.debug({ err: err.message, service: binding.service, port: binding.port }, 'relayed connection failed');
      client.destroy();
      upstream.destroy();
    };
    client.on('error', teardown);
    upstream.on('error', teardown);
    client.once('close', () => {
      binding.connections.delete(client);
      if (!upstream.writableEnded) upstream.destroy();
    });
    upstream.once('close', () => {
      binding.connections.delete(upstream);
      if (!client.writableEnded) client.destroy();
    });
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** `sandbox.amesh.io/host-ports` on every Service: the open ports, or no annotation. */
  private writeAnnotations(services: readonly KubeObject[]): void {
    for (const service of services) {
      const key = `${service.metadata.namespace ?? ''}/${service.metadata.name ?? ''}`;
      const ports = new Map<number, number>();
      for (const binding of this.bindings.values()) if (binding.service === key) ports.set(binding.port, binding.hostPort);
      const value = ports.size && loadBalancerAddress(service) ? formatHostPorts(ports) : undefined;
      const current = service.metadata.annotations?.[HOST_PORTS_ANNOTATION];
      if (current === value) continue;
      try {
        this.store.patch('v1', 'Service', service.metadata.namespace, service.metadata.name ?? '', 'merge', { metadata: { annotations: { [HOST_PORTS_ANNOTATION]: value ?? null } } }, { fieldManager: 'sandbox-host-ports' });
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 404)) this.log.warn({ err, service: key }, `could not write the ${HOST_PORTS_ANNOTATION} annotation`);
      }
    }
  }
}
