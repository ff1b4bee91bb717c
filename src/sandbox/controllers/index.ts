/**
 * The sandbox controller-manager: scheduler, Deployment, ReplicaSet, DaemonSet, Endpoints,
 * EndpointSlice, ServiceAccount, LoadBalancer and root-CA controllers over one `ClusterStore`, each in its
 * own runner (see controller-runner.ts). `idle()` resolves once every controller has had
 * nothing queued, running or awaiting an error retry for a few consecutive event-loop turns —
 * long enough for the store's asynchronous watch deliveries to land — which is what tests wait on.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { ClusterStore } from '../apiserver/types.js';
import { runController, type ControllerDefinition, type RunningController } from './controller-runner.js';
import { daemonSetController } from './daemonset-controller.js';
import { deploymentController } from './deployment-controller.js';
import { endpointSliceController } from './endpointslice-controller.js';
import { endpointsController } from './endpoints-controller.js';
import { createEventRecorder } from './events.js';
import { loadBalancerController } from './load-balancer-controller.js';
import { replicaSetController } from './replicaset-controller.js';
import { rootCaController } from './root-ca-controller.js';
import { schedulerController } from './scheduler.js';
import { serviceAccountController } from './serviceaccount-controller.js';

export interface ControllersOptions {
  store: ClusterStore;
  log: Logger;
  /** PEM of the sandbox cluster CA, published as ConfigMap kube-root-ca.crt; omitted → not published. */
  clusterCaPem?: string;
  /** The sandbox LoadBalancer pool (default LOAD_BALANCER_CIDR, network/load-balancer-ipam.ts). */
  loadBalancerCidr?: string;
  now?: () => number;
}

export interface Controllers {
  stop(): Promise<void>;
  /**
   * Resolves when every queue is empty and stays empty (handy for tests). A key that keeps
   * failing keeps its controller busy, so callers should bound the wait.
   */
  idle(): Promise<void>;
}

/** Consecutive quiet turns before `idle()` believes it: a write's watch events arrive a turn later. */
const QUIET_TURNS = 3;

export function startControllers(options: ControllersOptions): Controllers {
  const { store, log } = options;
  const now = options.now ?? Date.now;
  const shared = { store, now };
  const definitions: ControllerDefinition[] = [
    schedulerController({ ...shared, log: log.child({ controller: 'scheduler' }), events: createEventRecorder(store, 'default-scheduler', now, log) }),
    deploymentController({ ...shared, log: log.child({ controller: 'deployment' }), events: createEventRecorder(store, 'deployment-controller', now, log) }),
    replicaSetController({ ...shared, log: log.child({ controller: 'replicaset' }), events: createEventRecorder(store, 'replicaset-controller', now, log) }),
    daemonSetController({ ...shared, log: log.child({ controller: 'daemonset' }), events: createEventRecorder(store, 'daemonset-controller', now, log) }),
    endpointsController({ store, log: log.child({ controller: 'endpoints' }) }),
    endpointSliceController({ store, log: log.child({ controller: 'endpointslice' }) }),
    serviceAccountController({ store, log: log.child({ controller: 'serviceaccount' }) }),
    loadBalancerController({
      store,
      log: log.child({ controller: 'loadbalancer' }),
      events: createEventRecorder(store, 'sandbox-loadbalancer-controller', now, log),
      ...(options.loadBalancerCidr !== undefined ? { cidr: options.loadBalancerCidr } : {}),
    }),
  ];
  if (options.clusterCaPem !== undefined) definitions.push(rootCaController({ store, log: log.child({ controller: 'root-ca' }), caPem: options.clusterCaPem }));

  const running: RunningController[] = definitions.map((definition) => runController(definition, store, log));
  let stopped = false;
  log.debug({ controllers: running.map((controller) => controller.name) }, 'controllers started');

  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const controller of running) controller.stop();
      log.debug('controllers stopped');
    },
    async idle() {
      let quiet = 0;
      while (quiet < QUIET_TURNS) {
        await new Promise<void>((resolve) => setTimeout(resolve, 0));
        await nextTurn();
        const busy = !stopped && running.some((controller) => controller.pendingWork() > 0);
        quiet = busy ? 0 : quiet + 1;
      }
    },
  };
}
