/**
 * Contracts between the CA's parts (issue #4). The gRPC server (ca-server.ts) authenticates with a
 * TokenReviewer, authorizes impersonation with a PodLocator, and signs with whatever
 * SigningMaterial the root store (root-store.ts) currently holds — a getter, so a root rotation
 * takes effect on the next request without restarting the server.
 */

/** The result of a Kubernetes TokenReview, reduced to what the CA needs. */
export interface ReviewedToken {
  authenticated: boolean;
  /** e.g. `system:serviceaccount:amesh-system:amesh-node`. */
  username?: string;
  uid?: string;
  groups?: string[];
  /** e.g. `authentication.kubernetes.io/pod-name`, `…/node-name` for pod-bound tokens. */
  extra?: Record<string, string[]>;
  /** Why it was not authenticated (TokenReview status.error). */
  error?: string;
}

export interface TokenReviewer {
  /** Audiences the CA accepts (Istio: `istio-ca`); rejects (throws) only when the review itself failed. */
  review(token: string, audiences: string[]): Promise<ReviewedToken>;
}

export interface PodRef {
  namespace: string;
  name: string;
  /** metadata.uid, compared with a pod-bound token's pod-uid (a token of a replaced pod is refused). */
  uid?: string;
  serviceAccount: string;
  nodeName?: string;
}

/** Where pods run: answers from an informer cache, never blocking on the API server. */
export interface PodLocator {
  /** The pod, when known. */
  pod(namespace: string, name: string): PodRef | undefined;
  /** Does a pod of `namespace/serviceAccount` run (not terminated) on `node`? */
  hasPodOnNode(node: string, namespace: string, serviceAccount: string): boolean;
  /** True once the cache holds a full list (before that, impersonation is refused as UNAVAILABLE). */
  synced(): boolean;
}

/** Key material the CA signs with. */
export interface SigningMaterial {
  /** The certificate that signs leaves (self-signed root, or an intermediate from the user's CA). */
  certPem: string;
  /** PKCS#8 PEM of its private key (ECDSA P-256 or RSA for a plugged-in CA). */
  keyPem: string;
  /** The rest of the chain above certPem, up to and including the root (empty for a self-signed root). */
  chainPem: string[];
  /** Every root agents must trust now (during a rotation: new and old). */
  trustBundlePem: string[];
}

export type SigningMaterialSource = () => SigningMaterial;

/** The node agents' service accounts allowed to impersonate (`<namespace>/<serviceAccount>`). */
export const DEFAULT_TRUSTED_NODE_AGENTS = ['amesh-system/amesh-node', 'istio-system/ztunnel'];
/** Istio's CA audience: tokens sent to the CA must be minted for it. */
export const CA_TOKEN_AUDIENCE = 'istio-ca';
