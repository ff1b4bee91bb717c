/**
 * Issue #8 end to end in the sandbox, with real kubectl, curl, openssl and the amesh CLI, using
 * the manifests a reader applies by hand (samples/gateway/, docs/ingress.md):
 * - Gateway API seed (demo-gateway, class istio): the controller deploys `demo-gateway-istio`, the
 *   Gateway gets Programmed and its LoadBalancer address; `curl http://<address>/` from the
 *   "outside" client namespace and from the host's loopback port return the frontend's page.
 * - Istio seed (frontend-gateway + VirtualService hosts ["*"], the nginx example): the default
 *   `amesh-ingressgateway` serves it; `Host: myapp.example.com` reaches nginx, any other host the
 *   frontend.
 * - HTTPS: a SIMPLE server with credentialName serves the Secret's certificate for its SNI; the
 *   Secret is replaced and new handshakes get the new certificate while the gateway pod keeps
 *   running (same pod, no restart); port 80 redirects that host to https.
 * - STRICT mTLS in `demo`: edge traffic still reaches the frontend (gateway → pod over HBONE) while
 *   a plaintext client in an unenrolled namespace is refused.
 * - A Gateway API listener whose certificate Secret is missing: ResolvedRefs=False naming the
 *   Secret, and the Gateway's other listener keeps serving.
 * - TLS passthrough (samples/gateway/tls-passthrough.yaml): a TLS listener + TLSRoute relays
 *   secure.example.com to a backend that terminates TLS itself; the TLSRoute's parent is Accepted.
 * Each case removes what it applied (in `finally`).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxDown, sandboxUp } from '../../src/sandbox/lifecycle.js';
import { eventually } from '../helpers/eventually.js';
import { requireRoot } from '../helpers/privileged.js';
import { sandboxCli } from '../helpers/sandbox-cli.js';

const guard = requireRoot('sandbox ingress gateway', { tools: ['ip', 'nsenter', 'nft', 'kubectl', 'curl', 'openssl', 'unshare'] });
const REPO = join(import.meta.dirname, '..', '..');
const SAMPLES = join(REPO, 'samples', 'gateway');
const FRONTEND_TEXT = 'hello from the frontend';
const NGINX_TEXT = 'Welcome to nginx!';
const MARK = '@@amesh@@';

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

interface GatewayStatus {
  addresses?: Array<{ type?: string; value: string }>;
  conditions?: Condition[];
  listeners?: Array<{ name: string; attachedRoutes?: number; conditions?: Condition[] }>;
}

interface Reply {
  code: number;
  body: string;
  stderr: string;
  /** curl's `%{redirect_url}`. */
  location: string;
}

const describeConditions = (list: readonly Condition[] | undefined): string => (list ?? []).map((c) => `${c.type}=${c.status} (${c.reason ?? ''}): ${c.message ?? ''}`).join(' | ') || 'no conditions';

describe.skipIf(!guard.run)('ingress gateway (privileged sandbox)', () => {
  const name = `ag${Math.random().toString(16).slice(2, 5)}`;
  let dir = '';
  let certDir = '';
  const { env, kubectl, kubectlOk, amesh } = sandboxCli(() => dir);
  const applySample = (file: string): void => void kubectlOk('apply', '-f', join(SAMPLES, file));
  const remove = (...objects: string[]): void => {
    for (const object of objects) kubectl('delete', object, '--ignore-not-found', '--wait=false');
  };

  const parse = (r: { stdout: string; stderr: string }): Reply => {
    const at = r.stdout.lastIndexOf(`\n${MARK} `);
    const [code = '0', location = ''] = at >= 0 ? r.stdout.slice(at + MARK.length + 2).trim().split(' ') : [];
    return { code: Number(code), body: at >= 0 ? r.stdout.slice(0, at) : r.stdout, stderr: r.stderr, location };
  };
  const curlArgs = (url: string, extra: readonly string[]): string[] => ['curl', '-s', '-S', '--max-time', '10', '-w', `\n${MARK} %{http_code} %{redirect_url}\n`, ...extra, url];
  /** curl from the client namespace outside the cluster. */
  const outside = (url: string, ...extra: string[]): Reply => parse(amesh('sandbox', 'exec', '--dir', dir, '--outside', '--', ...curlArgs(url, extra)));
  /** curl from the host itself (its loopback port for the LoadBalancer). */
  const fromHost = (url: string, ...extra: string[]): Reply => parse(spawnSync('curl', curlArgs(url, extra).slice(1), { encoding: 'utf8', timeout: 20_000 }));
  const inPod = (ref: string, url: string, ...extra: string[]): Reply => parse(amesh('sandbox', 'exec', '--dir', dir, ref, '--', ...curlArgs(url, extra)));

  const gatewayStatus = (namespace: string, gateway: string): GatewayStatus =>
    (JSON.parse(kubectlOk('get', 'gateways.gateway.networking.k8s.io', '-n', namespace, gateway, '-o', 'json')) as { status?: GatewayStatus }).status ?? {};
  /** The Gateway's address once it is Programmed. */
  const programmedAddress = async (namespace: string, gateway: string): Promise<string> => {
    let address = '';
    await eventually(
      () => {
        const status = gatewayStatus(namespace, gateway);
        const programmed = status.conditions?.find((c) => c.type === 'Programmed');
        expect(programmed?.status, `Gateway ${namespace}/${gateway}: ${describeConditions(status.conditions)}`).toBe('True');
        address = status.addresses?.[0]?.value ?? '';
        expect(address).not.toBe('');
      },
      { timeoutMs: 90_000, intervalMs: 1000, description: `Gateway ${namespace}/${gateway} Programmed with an address` },
    );
    return address;
  };
  const serviceJson = (namespace: string, service: string): { status?: { loadBalancer?: { ingress?: Array<{ ip?: string }> } }; metadata: { annotations?: Record<string, string> } } =>
    JSON.parse(kubectlOk('get', 'svc', '-n', namespace, service, '-o', 'json')) as ReturnType<typeof serviceJson>;
  /** `80=8080,443=8443` → the host port for one service port. */
  const hostPort = (namespace: string, service: string, port: number): number => {
    const annotation = serviceJson(namespace, service).metadata.annotations?.['sandbox.amesh.io/host-ports'] ?? '';
    const entry = annotation.split(',').find((e) => e.split('=')[0] === String(port));
    expect(entry, `svc ${namespace}/${service} annotation sandbox.amesh.io/host-ports = ${JSON.stringify(annotation)}`).toBeDefined();
    return Number(entry?.split('=')[1]);
  };
  const ingressAddress = async (): Promise<string> => {
    let ip = '';
    await eventually(
      () => {
        ip = serviceJson('amesh-system', 'amesh-ingressgateway').status?.loadBalancer?.ingress?.[0]?.ip ?? '';
        expect(ip).not.toBe('');
      },
      { timeoutMs: 90_000, intervalMs: 1000, description: 'amesh-ingressgateway has an EXTERNAL-IP' },
    );
    return ip;
  };
  const gatewayPods = (namespace: string, selector: string): string => kubectl('get', 'pods', '-n', namespace, '-l', selector, '-o', 'wide').stdout;

  /** A self-signed P-256 certificate for `host` (the command docs/ingress.md gives); its PEM paths. */
  const makeCertificate = (host: string, tag: string): { cert: string; key: string } => {
    const cert = join(certDir, `${tag}.crt`);
    const key = join(certDir, `${tag}.key`);
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${host}/O=${tag}`, '-addext', `subjectAltName=DNS:${host}`, '-keyout', key, '-out', cert], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return { cert, key };
  };
  const fingerprint = (certFile: string): string => {
    const r = spawnSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', certFile], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout.trim().split('=')[1] ?? '';
  };
  /** The certificate the gateway presents for `sni` at ip:443, seen from outside (openssl s_client). */
  const servedFingerprint = (ip: string, sni: string): string => {
    const r = amesh('sandbox', 'exec', '--dir', dir, '--outside', '--', 'sh', '-c', `openssl s_client -connect ${ip}:443 -servername ${sni} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256`);
    return r.stdout.trim().split('=')[1] ?? `(none: ${r.stderr.trim()})`;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-gateway-test-'));
    certDir = await mkdtemp(join(tmpdir(), 'amesh-gateway-certs-'));
    await sandboxUp({ dir, name, nodes: 2 });
    kubectlOk('apply', '-f', join(REPO, 'samples', 'demo', 'demo.yaml'));
    applySample('nginx.yaml');
    kubectlOk('label', 'ns', 'demo', 'istio.io/dataplane-mode=ambient', '--overwrite');
    await eventually(
      () => {
        const r = kubectlOk('get', 'deploy', '-n', 'demo', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.availableReplicas} {end}');
        for (const d of ['frontend', 'nginx', 'client']) expect(r).toContain(`${d}=1`);
      },
      { timeoutMs: 90_000, intervalMs: 1000, description: 'demo apps and nginx running' },
    );
  }, 240_000);

  afterAll(async () => {
    if (dir) await sandboxDown({ dir });
    if (certDir) await rm(certDir, { recursive: true, force: true });
  }, 120_000);

  it('Gateway API seed: demo-gateway serves the frontend from outside the cluster and from the host loopback port', async () => {
    applySample('demo-gateway.yaml');
    try {
      const address = await programmedAddress('demo', 'demo-gateway');
      await eventually(
        () => {
          const r = outside(`http://${address}/`);
          expect(r.code, `outside → http://${address}/: ${r.stderr}\n${gatewayPods('demo', 'gateway.networking.k8s.io/gateway-name=demo-gateway')}`).toBe(200);
          expect(r.body).toContain(FRONTEND_TEXT);
        },
        { timeoutMs: 60_000, intervalMs: 1000, description: 'the frontend through demo-gateway from outside' },
      );
      const port = hostPort('demo', 'demo-gateway-istio', 80);
      const host = fromHost(`http://127.0.0.1:${port}/`);
      expect(host.code, `host → 127.0.0.1:${port}: ${host.stderr}`).toBe(200);
      expect(host.body).toContain(FRONTEND_TEXT);
      const status = gatewayStatus('demo', 'demo-gateway');
      expect(status.listeners?.find((l) => l.name === 'http')?.attachedRoutes, JSON.stringify(status.listeners)).toBe(1);
      console.log(`demo-gateway: address ${address}, host port ${port}`);
    } finally {
      remove('-n', 'demo', 'httproute/frontend');
      remove('-n', 'demo', 'gateway.gateway.networking.k8s.io/demo-gateway');
    }
  }, 240_000);

  it('Istio seed: frontend-gateway + VirtualService hosts ["*"], and myapp.example.com routed to nginx', async () => {
    applySample('frontend-gateway.yaml');
    applySample('nginx.yaml');
    try {
      const ip = await ingressAddress();
      await eventually(
        () => {
          const r = outside(`http://${ip}/`);
          expect(r.code, `outside → http://${ip}/: ${r.stderr}\n${gatewayPods('amesh-system', 'istio=ingressgateway')}`).toBe(200);
          expect(r.body).toContain(FRONTEND_TEXT);
          const nginx = outside(`http://${ip}/`, '-H', 'Host: myapp.example.com');
          expect(nginx.code, nginx.stderr).toBe(200);
          expect(nginx.body).toContain(NGINX_TEXT);
        },
        { timeoutMs: 90_000, intervalMs: 1000, description: 'frontend and nginx through amesh-ingressgateway' },
      );
      const port = hostPort('amesh-system', 'amesh-ingressgateway', 80);
      const host = fromHost(`http://127.0.0.1:${port}/`, '-H', 'Host: myapp.example.com');
      expect(host.code, host.stderr).toBe(200);
      expect(host.body).toContain(NGINX_TEXT);
    } finally {
      remove('-n', 'demo', 'virtualservice/frontend', 'virtualservice/myapp');
      remove('-n', 'demo', 'gateways.networking.istio.io/frontend-gateway');
    }
  }, 240_000);

  it('HTTPS with a Secret: the SNI certificate is served, a rotated Secret takes effect without a restart, HTTP redirects', async () => {
    const first = makeCertificate('myapp.example.com', 'first');
    const second = makeCertificate('myapp.example.com', 'second');
    kubectlOk('create', 'secret', 'tls', 'myapp-credential', '-n', 'demo', '--cert', first.cert, '--key', first.key);
    applySample('https-gateway.yaml');
    try {
      const ip = await ingressAddress();
      await eventually(
        () => {
          const r = outside('https://myapp.example.com/', '--resolve', `myapp.example.com:443:${ip}`, '--cacert', first.cert);
          expect(r.code, `https via ${ip}: ${r.stderr}`).toBe(200);
          expect(r.body).toContain(NGINX_TEXT);
        },
        { timeoutMs: 90_000, intervalMs: 1000, description: 'https://myapp.example.com through the gateway' },
      );
      // Listeners are not containerPorts (ingress-render.ts): the Deployment never lists 443. The
      // checks below are single requests and compare the pods from here with those after the
      // rotation, so wait for any rollout still running (the Deployment was just created) first.
      await eventually(
        () => {
          const d = JSON.parse(kubectlOk('get', 'deployment', 'amesh-ingressgateway', '-n', 'amesh-system', '-o', 'json')) as {
            metadata: { generation?: number };
            spec: { replicas?: number; template: { spec: { containers: Array<{ ports?: Array<{ containerPort: number }> }> } } };
            status?: { observedGeneration?: number; replicas?: number; updatedReplicas?: number; availableReplicas?: number };
          };
          expect(d.spec.template.spec.containers.flatMap((c) => c.ports ?? []).map((p) => p.containerPort)).not.toContain(443);
          const want = d.spec.replicas ?? 1;
          expect(d.status).toMatchObject({ observedGeneration: d.metadata.generation, replicas: want, updatedReplicas: want, availableReplicas: want });
          const pods = kubectlOk('get', 'pods', '-n', 'amesh-system', '-l', 'istio=ingressgateway', '-o', 'jsonpath={.items[*].metadata.name}').trim().split(/\s+/);
          expect(pods).toHaveLength(want);
        },
        { timeoutMs: 90_000, intervalMs: 1000, description: 'the gateway Deployment rolled out, without a containerPort for the HTTPS listener' },
      );
      // Bounded retry: one s_client through `sandbox exec --outside` can come back empty on a loaded
      // machine (seen once in CI: "Could not read certificate" right after curl succeeded); a
      // wrong certificate still fails after the 15 s.
      await eventually(() => expect(servedFingerprint(ip, 'myapp.example.com')).toBe(fingerprint(first.cert)), { timeoutMs: 15_000, intervalMs: 1000, description: 'the first certificate served' });
      const redirect = outside(`http://${ip}/path?q=1`, '-H', 'Host: myapp.example.com');
      expect(redirect.code, redirect.stderr).toBe(301);
      expect(redirect.location).toBe('https://myapp.example.com/path?q=1');

      const podsBefore = kubectlOk('get', 'pods', '-n', 'amesh-system', '-l', 'istio=ingressgateway', '-o', 'jsonpath={range .items[*]}{.metadata.name}:{.status.containerStatuses[0].restartCount} {end}').trim();
      const rotated = kubectlOk('create', 'secret', 'tls', 'myapp-credential', '-n', 'demo', '--cert', second.cert, '--key', second.key, '--dry-run=client', '-o', 'yaml');
      const apply = spawnSync('kubectl', ['apply', '-f', '-'], { input: rotated, encoding: 'utf8', env: env() });
      expect(apply.status, apply.stderr).toBe(0);
      const rotatedAt = Date.now();
      await eventually(() => expect(servedFingerprint(ip, 'myapp.example.com')).toBe(fingerprint(second.cert)), { timeoutMs: 30_000, intervalMs: 500, description: 'the rotated certificate served' });
      const r = outside('https://myapp.example.com/', '--resolve', `myapp.example.com:443:${ip}`, '--cacert', second.cert);
      expect(r.code, r.stderr).toBe(200);
      const podsAfter = kubectlOk('get', 'pods', '-n', 'amesh-system', '-l', 'istio=ingressgateway', '-o', 'jsonpath={range .items[*]}{.metadata.name}:{.status.containerStatuses[0].restartCount} {end}').trim();
      expect(podsAfter).toBe(podsBefore);
      console.log(`certificate rotation visible after ${Date.now() - rotatedAt} ms; gateway pods unchanged: ${podsAfter}`);
    } finally {
      remove('-n', 'demo', 'virtualservice/myapp-https', 'gateways.networking.istio.io/myapp-https', 'secret/myapp-credential');
    }
  }, 240_000);

  it('STRICT mTLS in demo: the edge still reaches the frontend over HBONE, a plaintext in-cluster client is refused', async () => {
    applySample('frontend-gateway.yaml');
    kubectlOk('create', 'namespace', 'legacy');
    kubectlOk('create', 'deployment', 'legacy-client', '-n', 'legacy', '--image=curlimages/curl:8.10.1', '--', 'sleep', 'infinity');
    try {
      const ip = await ingressAddress();
      let pod = '';
      await eventually(
        () => {
          pod = kubectlOk('get', 'pods', '-n', 'legacy', '-l', 'app=legacy-client', '-o', 'jsonpath={.items[?(@.status.phase=="Running")].metadata.name}').trim();
          expect(pod).not.toBe('');
          expect(inPod(`legacy/${pod}`, 'http://frontend.demo/').code).toBe(200);
          expect(outside(`http://${ip}/`).code).toBe(200);
        },
        { timeoutMs: 90_000, intervalMs: 1000, description: 'plaintext and edge traffic both reach the frontend while PERMISSIVE' },
      );
      applySample('strict-mtls.yaml');
      await eventually(() => expect(inPod(`legacy/${pod}`, 'http://frontend.demo/').code).toBe(0), { timeoutMs: 30_000, intervalMs: 500, description: 'plaintext refused under STRICT' });
      for (let i = 0; i < 5; i++) {
        const r = outside(`http://${ip}/`);
        expect(r.code, r.stderr).toBe(200);
        expect(r.body).toContain(FRONTEND_TEXT);
      }
    } finally {
      remove('-n', 'demo', 'peerauthentication/default', 'virtualservice/frontend', 'gateways.networking.istio.io/frontend-gateway');
      remove('namespace/legacy');
    }
  }, 240_000);

  it('a listener whose Secret is missing gets a condition naming it; the other listener keeps serving', async () => {
    applySample('gateway-api-https.yaml');
    try {
      const address = await programmedAddress('demo', 'secure-gateway');
      await eventually(
        () => {
          const listener = gatewayStatus('demo', 'secure-gateway').listeners?.find((l) => l.name === 'https');
          const resolved = listener?.conditions?.find((c) => c.type === 'ResolvedRefs');
          expect(resolved?.status, describeConditions(listener?.conditions)).toBe('False');
          expect(resolved?.reason).toBe('InvalidCertificateRef');
          expect(resolved?.message).toContain('demo/frontend-credential');
          const r = outside(`http://${address}/`);
          expect(r.code, r.stderr).toBe(200);
          expect(r.body).toContain(FRONTEND_TEXT);
        },
        { timeoutMs: 60_000, intervalMs: 1000, description: 'https listener refused with a named Secret, http listener serving' },
      );
    } finally {
      remove('-n', 'demo', 'httproute/secure-frontend', 'gateway.gateway.networking.k8s.io/secure-gateway');
    }
  }, 240_000);

  it('TLS passthrough: a Gateway API TLS listener + TLSRoute relays secure.example.com to a backend terminating TLS itself; the TLSRoute is Accepted', async () => {
    applySample('tls-passthrough.yaml');
    try {
      const address = await programmedAddress('demo', 'tls-passthrough');
      await eventually(
        () => {
          const r = outside('https://secure.example.com/', '--resolve', `secure.example.com:443:${address}`, '-k');
          expect(r.code, `outside → https://secure.example.com via ${address}: ${r.stderr}\n${gatewayPods('demo', 'gateway.networking.k8s.io/gateway-name=tls-passthrough')}`).toBe(200);
          expect(r.body).toContain('s_server');
        },
        { timeoutMs: 90_000, intervalMs: 1000, description: 'secure-backend through the passthrough listener' },
      );
      // The certificate is the backend's own (the gateway has none); another SNI has no route.
      const subject = amesh('sandbox', 'exec', '--dir', dir, '--outside', '--', 'sh', '-c', `openssl s_client -connect ${address}:443 -servername secure.example.com </dev/null 2>/dev/null | openssl x509 -noout -subject`);
      expect(subject.stdout, subject.stderr).toContain('secure.example.com');
      expect(outside('https://other.example.com/', '--resolve', `other.example.com:443:${address}`, '-k').code).toBe(0);
      await eventually(
        () => {
          const route = JSON.parse(kubectlOk('get', 'tlsroutes.gateway.networking.k8s.io', '-n', 'demo', 'secure', '-o', 'json')) as { status?: { parents?: Array<{ controllerName?: string; parentRef?: { name?: string }; conditions?: Condition[] }> } };
          const parent = route.status?.parents?.find((p) => p.parentRef?.name === 'tls-passthrough');
          expect(parent?.controllerName, JSON.stringify(route.status)).toBe('amesh.io/gateway-controller');
          expect(parent?.conditions?.find((c) => c.type === 'Accepted')?.status, describeConditions(parent?.conditions)).toBe('True');
          expect(gatewayStatus('demo', 'tls-passthrough').listeners?.find((l) => l.name === 'tls')?.attachedRoutes).toBe(1);
        },
        { timeoutMs: 30_000, intervalMs: 1000, description: 'TLSRoute demo/secure Accepted by tls-passthrough' },
      );
    } finally {
      remove('-n', 'demo', 'tlsroute.gateway.networking.k8s.io/secure', 'gateway.gateway.networking.k8s.io/tls-passthrough', 'deployment/secure-backend', 'service/secure-backend');
    }
  }, 240_000);
});
