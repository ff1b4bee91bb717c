/**
 * The few API calls the deployers (waypoints, ingress gateways) and the `amesh waypoint` CLI make, behind an interface
 * so unit tests can pass a fake. The default goes through @kubernetes/client-node.
 */
import { CustomObjectsApi, KubernetesObjectApi, PatchStrategy, setHeaderOptions, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { statusCodeOf } from '../kube/informer.js';

export const FIELD_MANAGER = 'amesh-controller';

export interface WaypointKubeClient {
  /** Server-side apply (field manager `amesh-controller`, force). */
  apply(object: KubernetesObject): Promise<KubernetesObject>;
  /** The object, or undefined on 404. */
  read(apiVersion: string, kind: string, namespace: string, name: string): Promise<KubernetesObject | undefined>;
  /** Deletes the object (dependents, a Deployment's ReplicaSets, go by garbage collection); rejects with the API error, 404 included. */
  remove(apiVersion: string, kind: string, namespace: string, name: string): Promise<void>;
  /** Merge-patches a Gateway's status subresource. */
  patchGatewayStatus(namespace: string, name: string, status: Record<string, unknown>): Promise<void>;
}

export function kubeWaypointClient(kubeConfig: KubeConfig, fieldManager = FIELD_MANAGER): WaypointKubeClient {
  const objects = KubernetesObjectApi.makeApiClient(kubeConfig);
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  return {
    apply: (object) => objects.patch(object, undefined, undefined, fieldManager, true, PatchStrategy.ServerSideApply),
    async read(apiVersion, kind, namespace, name) {
      try {
        return await objects.read({ apiVersion, kind, metadata: { name, namespace } });
      } catch (err) {
        if (statusCodeOf(err) === 404) return undefined;
        throw err;
      }
    },
    async remove(apiVersion, kind, namespace, name) {
      await objects.delete({ apiVersion, kind, metadata: { name, namespace } });
    },
    async patchGatewayStatus(namespace, name, status) {
      await custom.patchNamespacedCustomObjectStatus(
        { group: 'gateway.networking.k8s.io', version: 'v1', namespace, plural: 'gateways', name, body: { status } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    },
  };
}

/** The API server's message from a client-node error (its Status body), else the error's message. */
export function apiErrorMessage(err: unknown): string {
  const body = (err as { body?: unknown } | null)?.body;
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as { message?: unknown };
      if (typeof parsed.message === 'string') return parsed.message;
    } catch {
      return body;
    }
  }
  if (body && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string') return (body as { message: string }).message;
  return err instanceof Error ? err.message : String(err);
}
