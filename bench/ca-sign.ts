/**
 * `npm run bench:ca` (= node dist/bench/ca-sign.js [--seconds 5] [--concurrency 16]): how fast
 * the controller's CA signs workload certificates.
 *
 * Two numbers: the issuer alone (CSR check + leaf signing, no gRPC), and CreateCertificate end to
 * end — the CA server in this process on 127.0.0.1 with TLS, and a grpc-js client with
 * `concurrency` calls in flight on a worker thread (node agents are other processes; a client on
 * the server's event loop would bill its own CPU to the CA). The token reviewer and pod locator are in-memory fakes answering at once, i.e. the
 * TokenReview cache-hit path; a third of the calls are node-agent impersonations. CSRs are made
 * before the clock starts (agents generate their own keys). Both loops stop at `--seconds` or
 * at `--max-calls`, whichever comes first. Latency percentiles come from an HdrHistogram
 * (hdr-histogram-js), recorded in microseconds. Target: ≥ 500 signatures/s on a 2-core machine.
 */
import { once } from 'node:events';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import { Command, InvalidArgumentError } from 'commander';
import { build, type Histogram } from 'hdr-histogram-js';
import { destination, pino } from 'pino';
import { createCaServer } from '../src/controller/ca/ca-server.js';
import { checkCsr } from '../src/controller/ca/csr-check.js';
import { createIssuer } from '../src/controller/ca/issuer.js';
import type { PodLocator, ReviewedToken, SigningMaterial, TokenReviewer } from '../src/controller/ca/types.js';
import { caServiceDefinition, IMPERSONATED_IDENTITY, stringStruct, type IstioCertificateRequest, type IstioCertificateResponse } from '../src/identity/ca-proto.js';
import { createCsr, generateCa, generateKeyPair } from '../src/identity/pki.js';
import { createServingCertificates } from '../src/sandbox/apiserver/serving-cert.js';

const TARGET_SIGNATURES_PER_SECOND = 500;
const SERVER_NAME = 'istiod.istio-system.svc';
const WORKLOADS = 32;
const AGENT_TOKEN = 'agent-token';
const HOST = '127.0.0.1';

interface Options {
  seconds: number;
  concurrency: number;
  maxCalls: number;
}

interface Run {
  calls: number;
  failures: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  firstError?: string;
}

/** What the main thread hands the client worker. */
interface ClientJob {
  opts: Options;
  port: number;
  caCertPem: string;
  workloads: Workload[];
}

interface Workload {
  identity: string;
  token: string;
  csr: string;
}

function positiveInt(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive whole number`);
    return n;
  };
}

function parseOptions(argv: string[]): Options {
  const program = new Command('ca-sign')
    .description('signatures/s and latency of the controller CA (issuer alone, and CreateCertificate over gRPC+TLS)')
    .option('--seconds <n>', 'how long each phase runs', positiveInt('--seconds'), 5)
    .option('--concurrency <n>', 'calls in flight', positiveInt('--concurrency'), 16)
    .option('--max-calls <n>', 'stop each phase after this many calls', positiveInt('--max-calls'), 100_000)
    .parse(argv);
  return program.opts<Options>();
}

const histogram = (): Histogram => build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });

/** Runs `once` from `concurrency` loops until the deadline or the call budget is spent. */
async function drive(opts: Options, once: (i: number) => Promise<boolean>): Promise<Run> {
  const h = histogram();
  const start = performance.now();
  const deadline = start + opts.seconds * 1000;
  let started = 0;
  let failures = 0;
  const loop = async (): Promise<void> => {
    while (started < opts.maxCalls && performance.now() < deadline) {
      const i = started++;
      const t0 = performance.now();
      const ok = await once(i);
      h.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
      if (!ok) failures++;
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, loop));
  const ms = (p: number): number => h.getValueAtPercentile(p) / 1000;
  return { calls: started, failures, seconds: (performance.now() - start) / 1000, p50Ms: ms(50), p99Ms: ms(99) };
}

function report(name: string, run: Run): number {
  const rate = (run.calls - run.failures) / run.seconds;
  console.log(
    `${name.padEnd(28)} ${rate.toFixed(0).padStart(6)} signatures/s   p50 ${run.p50Ms.toFixed(2)} ms   p99 ${run.p99Ms.toFixed(2)} ms   (${run.calls} calls, ${run.failures} failed, ${run.seconds.toFixed(1)} s)`,
  );
  if (run.firstError) console.log(`first failure: ${run.firstError}`);
  return rate;
}

/** The worker thread: node agents calling CreateCertificate; a third impersonate a local pod. */
async function runClients(job: ClientJob): Promise<Run> {
  const Client = grpc.makeGenericClientConstructor(caServiceDefinition(), 'IstioCertificateService');
  const client = new Client(`${HOST}:${job.port}`, grpc.credentials.createSsl(Buffer.from(job.caCertPem)), {
    'grpc.ssl_target_name_override': SERVER_NAME,
    'grpc.default_authority': SERVER_NAME,
  });
  type Method = (r: IstioCertificateRequest, m: grpc.Metadata, cb: (err: Error | null, res: IstioCertificateResponse) => void) => void;
  const method = (client as unknown as Record<string, Method>)['CreateCertificate'] as Method;
  const createCertificate = (request: IstioCertificateRequest, md: grpc.Metadata): Promise<IstioCertificateResponse> =>
    new Promise((resolve, reject) => method.call(client, request, md, (err, res) => (err ? reject(err) : resolve(res))));
  let firstError: string | undefined;
  try {
    const run = await drive(job.opts, async (i) => {
      const w = job.workloads[i % job.workloads.length] as Workload;
      const impersonate = i % 3 === 0;
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${impersonate ? AGENT_TOKEN : w.token}`);
      md.set('clusterid', 'Kubernetes');
      try {
        const res = await createCertificate({ csr: w.csr, validityDuration: 0, metadata: impersonate ? stringStruct({ [IMPERSONATED_IDENTITY]: w.identity }) : null }, md);
        return res.certChain.length === 2;
      } catch (err) {
        firstError ??= (err as Error).message;
        return false;
      }
    });
    return firstError ? { ...run, firstError } : run;
  } finally {
    client.close();
  }
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv);
  const ca = await generateCa({ trustDomain: 'cluster.local', validityDays: 30 });
  const material: SigningMaterial = { certPem: ca.certPem, keyPem: ca.keyPem, chainPem: [], trustBundlePem: [ca.certPem] };
  const serving = await createServingCertificates({ dnsNames: [SERVER_NAME], ipAddresses: [HOST] });

  const workloads: Workload[] = [];
  const users = new Map<string, ReviewedToken>([
    [AGENT_TOKEN, { authenticated: true, username: 'system:serviceaccount:amesh-system:amesh-node', extra: { 'authentication.kubernetes.io/node-name': ['node-1'] } }],
  ]);
  for (let i = 0; i < WORKLOADS; i++) {
    const identity = `spiffe://cluster.local/ns/bench/sa/workload-${i}`;
    const token = `token-${i}`;
    users.set(token, { authenticated: true, username: `system:serviceaccount:bench:workload-${i}` });
    workloads.push({ identity, token, csr: await createCsr({ key: await generateKeyPair(), spiffeUri: identity }) });
  }
  const reviewer: TokenReviewer = { review: async (token) => users.get(token) ?? { authenticated: false, error: 'unknown token' } };
  const pods: PodLocator = { pod: () => undefined, hasPodOnNode: (node, ns) => node === 'node-1' && ns === 'bench', synced: () => true };

  console.log(`CA signing bench: ${cpus().length} CPUs, ${opts.seconds} s per phase, concurrency ${opts.concurrency}, at most ${opts.maxCalls} calls`);

  const issuer = createIssuer({ material: () => material });
  const issuerRun = await drive(opts, async (i) => {
    const w = workloads[i % WORKLOADS] as Workload;
    const checked = checkCsr(w.csr, w.identity);
    if (!checked.ok) return false;
    await issuer.issue(checked.accepted, 0);
    return true;
  });
  const issuerRate = report('issuer only (no gRPC)', issuerRun);

  const server = createCaServer({
    material: () => material,
    reviewer,
    pods,
    trustDomain: 'cluster.local',
    serving: { certChainPem: serving.certPem, keyPem: serving.keyPem },
    // Issuance lines are written as in production, to nowhere.
    log: pino({ level: 'info' }, destination({ dest: '/dev/null', sync: false })),
  });
  const port = await server.listen(0, HOST);
  let grpcRate = 0;
  try {
    const job: ClientJob = { opts, port, caCertPem: serving.caCertPem, workloads };
    const worker = new Worker(new URL(import.meta.url), { workerData: job });
    const [run] = (await once(worker, 'message')) as [Run];
    await worker.terminate();
    grpcRate = report('CreateCertificate (gRPC+TLS)', run);
    console.log(`server stats: ${JSON.stringify(server.stats())}`);
  } finally {
    await server.close();
  }
  const verdict = grpcRate >= TARGET_SIGNATURES_PER_SECOND ? 'meets' : 'MISSES';
  console.log(`${verdict} the target of ${TARGET_SIGNATURES_PER_SECOND} signatures/s end to end (issuer alone: ${issuerRate.toFixed(0)}/s)`);
}

const fail = (err: unknown): void => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
};
if (isMainThread) main().catch(fail);
else
  runClients(workerData as ClientJob).then(
    (run) => parentPort?.postMessage(run),
    (err: unknown) => parentPort?.postMessage({ calls: 0, failures: 1, seconds: 1, p50Ms: 0, p99Ms: 0, firstError: String(err) } satisfies Run),
  );
