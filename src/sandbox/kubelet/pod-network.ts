/**
 * What the kubelet needs from the sandbox network (src/sandbox/network/cluster-network.ts
 * implements it); narrow so unit tests pass a fake.
 */
export interface NodeNetworkInfo {
  name: string;
  netns: string;
  netnsPath: string;
  ip: string;
  podCidr: string;
}

export interface PodNetworkInfo {
  netns: string;
  netnsPath: string;
  ip: string;
}

export interface PodDnsConfig {
  nameserver: string;
  searches: string[];
  ndots: number;
  hostname: string;
}

export interface PodNetworkProvider {
  readonly plan: { clusterDnsIp: string };
  node(name: string): NodeNetworkInfo;
  /** Idempotent per uid; `ip` asks for a specific address (a pod recreated after a restart). */
  addPod(p: { uid: string; node: string; ip?: string }): Promise<PodNetworkInfo>;
  removePod(uid: string): Promise<void>;
  setPodDns(uid: string, o: PodDnsConfig): Promise<void>;
  /** Sets sysctls inside the pod's network namespace (pod-sysctls.ts decided which). */
  setPodSysctls?(uid: string, sysctls: ReadonlyArray<{ name: string; value: string }>): Promise<void>;
}
