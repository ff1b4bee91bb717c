/**
 * Workload, service and authorization state in the proto3 JSON shape of Istio's workload API
 * (istio.workload.Workload / Service, istio.security.Authorization; DESIGN §6) with IP
 * addresses as strings. The local config file, and later the xDS client, both produce these.
 */
export type TunnelProtocol = 'NONE' | 'HBONE';
export type AppProtocol = 'UNKNOWN' | 'HTTP11' | 'HTTP2' | 'GRPC' | 'TCP' | 'TLS';

export interface Port {
  servicePort: number;
  targetPort: number;
  appProtocol?: AppProtocol;
}

export interface PortList {
  ports: Port[];
}

/**
 * Where a waypoint is reached (istio.workload.GatewayAddress): by the waypoint Service's hostname,
 * or by an address (Istio sends the waypoint Service's VIP). HBONE goes to `hboneMtlsPort`.
 */
export interface GatewayAddress {
  hostname?: { namespace: string; hostname: string };
  address?: { network?: string; address: string };
  hboneMtlsPort: number;
}

/** istio.workload.Locality; an empty part is left out. */
export interface Locality {
  region?: string;
  zone?: string;
  subzone?: string;
}

export interface Workload {
  uid: string;
  name: string;
  namespace: string;
  addresses: string[];
  hostname?: string;
  network?: string;
  tunnelProtocol: TunnelProtocol;
  trustDomain?: string;
  serviceAccount: string;
  node?: string;
  canonicalName?: string;
  canonicalRevision?: string;
  workloadType?: 'DEPLOYMENT' | 'CRONJOB' | 'POD' | 'JOB';
  workloadName?: string;
  /** key: "namespace/hostname" of each service selecting this workload */
  services: Record<string, PortList>;
  authorizationPolicies?: string[];
  status?: 'HEALTHY' | 'UNHEALTHY';
  clusterId?: string;
  /** Relative weight when load-balancing a service across endpoints (ztunnel: absent = 1). */
  capacity?: number;
  /** Where the workload runs (istio.workload.Locality): the pod's locality label, else its node's topology labels. */
  locality?: Locality;
  /** The waypoint that handles traffic addressed to this workload (waypoint-for workload|all). */
  waypoint?: GatewayAddress;
}

export interface Service {
  name: string;
  namespace: string;
  hostname: string;
  addresses: string[];
  ports: Port[];
  subjectAltNames?: string[];
  /** The waypoint that handles traffic addressed to this service (waypoint-for service|all). */
  waypoint?: GatewayAddress;
}

export type StringMatch = { exact: string } | { prefix: string } | { suffix: string } | { presence: Record<string, never> };

export interface AddressMatch {
  /** IP address as a string */
  address: string;
  length: number;
}

export interface Match {
  namespaces?: StringMatch[];
  notNamespaces?: StringMatch[];
  principals?: StringMatch[];
  notPrincipals?: StringMatch[];
  sourceIps?: AddressMatch[];
  notSourceIps?: AddressMatch[];
  destinationIps?: AddressMatch[];
  notDestinationIps?: AddressMatch[];
  destinationPorts?: number[];
  notDestinationPorts?: number[];
}

export interface Clause {
  matches: Match[];
}

export interface Rule {
  clauses: Clause[];
}

export type PolicyScope = 'GLOBAL' | 'NAMESPACE' | 'WORKLOAD_SELECTOR';
export type PolicyAction = 'ALLOW' | 'DENY';

export interface Authorization {
  name: string;
  namespace: string;
  scope: PolicyScope;
  action: PolicyAction;
  rules: Rule[];
  dryRun?: boolean;
}

/** Everything the node agent serves from, as one immutable snapshot. */
export interface MeshSnapshot {
  trustDomain: string;
  workloads: Workload[];
  services: Service[];
  policies: Authorization[];
}
