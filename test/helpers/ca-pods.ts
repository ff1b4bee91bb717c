/**
 * The cluster the CA server tests authorize against: a node agent and reviews on node-1, ratings
 * on node-2, and a PodLocator over them that is always synced.
 */
import type { PodLocator, PodRef } from '../../src/controller/ca/types.js';

export const CA_TEST_PODS: readonly PodRef[] = [
  { namespace: 'amesh-system', name: 'amesh-node-1', serviceAccount: 'amesh-node', nodeName: 'node-1' },
  { namespace: 'default', name: 'reviews-1', serviceAccount: 'reviews', nodeName: 'node-1' },
  { namespace: 'default', name: 'ratings-1', serviceAccount: 'ratings', nodeName: 'node-2' },
];

export function podLocator(pods: readonly PodRef[] = CA_TEST_PODS): PodLocator {
  return {
    pod: (ns, name) => pods.find((p) => p.namespace === ns && p.name === name),
    hasPodOnNode: (node, ns, sa) => pods.some((p) => p.nodeName === node && p.namespace === ns && p.serviceAccount === sa),
    synced: () => true,
  };
}
