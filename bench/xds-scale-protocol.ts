/**
 * Messages between the xDS scale bench (main thread) and its agent threads (xds-scale-agent.ts).
 * Times are epoch milliseconds with sub-millisecond precision (`performance.timeOrigin +
 * performance.now()`), so the main thread's write time and an agent's apply time compare.
 */

/** What an agent thread is started with. */
export interface AgentJob {
  /** 127.0.0.1:<controller gRPC port> */
  address: string;
  /** The controller's root (ConfigMap istio-ca-root-cert), the TLS trust anchor. */
  rootPem: string;
  /** A name in the controller's serving certificate (it does not cover 127.0.0.1). */
  serverName: string;
  /** The node agent's projected token, as the kubelet would write it. */
  tokenFile: string;
  nodeName: string;
  podNamespace: string;
  podIp: string;
  trustDomain: string;
}

export type AgentCommand =
  | { type: 'start' }
  /** Report `seen` once the workload `uid` is applied with this tunnel protocol. */
  | { type: 'watch'; seq: number; uid: string; tunnelProtocol: string }
  | { type: 'close' };

export type AgentEvent =
  | { type: 'loaded' }
  | {
      type: 'full';
      /** `start()` called. */
      startedAt: number;
      /** The first response handed over by the client (before decoding). */
      firstResponseAt: number;
      /** `apply` called with the first full state (both types). */
      appliedAt: number;
      /** Responses received up to the full state. */
      responses: number;
      workloads: number;
      services: number;
      authorizations: number;
      /** Resources rejected so far (the bench expects none). */
      nacks: number;
    }
  | { type: 'armed'; seq: number }
  /** `arrivedAt`: the response with the change reached the client; `appliedAt`: its state was applied. */
  | { type: 'seen'; seq: number; arrivedAt: number; appliedAt: number }
  | { type: 'closed' }
  | { type: 'error'; message: string };
