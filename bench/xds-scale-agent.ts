/**
 * One node agent of the xDS scale bench, on its own worker thread (agents are separate processes
 * in a cluster; on one thread their decoding would queue behind each other and bill the bench).
 * It is the agent's real xDS path: an XdsStateSource (DeltaXdsClient over TLS against the
 * controller's published root, bearer token from a file, every resource decoded and checked)
 * whose `apply` only records when the state arrived.
 *
 * Protocol (messages in xds-scale-protocol.ts): the thread says `loaded`, waits for `start`,
 * reports `full` at the first full state, then for each `watch` answers `armed` and reports
 * `seen` once a state with the watched workload's new tunnel protocol was applied. `close`
 * closes the source and answers `closed`. Timestamps are epoch milliseconds from
 * `performance.timeOrigin + performance.now()`, comparable across threads.
 */
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { XdsStateSource } from '../src/node-agent/xds/xds-state-source.js';
import type { MeshSnapshot } from '../src/node-agent/state/types.js';
import { DeltaXdsClient, type DeltaUpdate } from '../src/xds/delta-client.js';
import { createLogger } from '../src/telemetry/logger.js';
import type { AgentCommand, AgentEvent, AgentJob } from './xds-scale-protocol.js';

const now = (): number => performance.timeOrigin + performance.now();

function run(job: AgentJob, port: NonNullable<typeof parentPort>): void {
  const send = (event: AgentEvent): void => port.postMessage(event);
  let startedAt = 0;
  let firstResponseAt: number | undefined;
  let lastArrivalAt = 0;
  let responses = 0;
  let fullReported = false;
  let watch: { seq: number; uid: string; tunnelProtocol: string } | undefined;

  const source = new XdsStateSource({
    address: job.address,
    credentials: { kind: 'mesh-tls', roots: { roots: () => [job.rootPem], onChange: () => () => undefined }, serverName: job.serverName, tokenFile: job.tokenFile },
    node: { nodeName: job.nodeName, podName: `amesh-node-${job.nodeName}`, podNamespace: job.podNamespace, podIp: job.podIp, clusterId: 'Kubernetes' },
    trustDomain: job.trustDomain,
    uplinks: [],
    logger: createLogger('error', `bench-agent-${job.nodeName}`),
    // The real client, with the arrival of each response noted before the source decodes it.
    createClient: (options) =>
      new DeltaXdsClient({
        ...options,
        onUpdate: (update: DeltaUpdate) => {
          lastArrivalAt = now();
          firstResponseAt ??= lastArrivalAt;
          responses++;
          return options.onUpdate(update);
        },
      }),
  });

  const apply = async (snapshot: MeshSnapshot): Promise<void> => {
    const appliedAt = now();
    if (!fullReported) {
      fullReported = true;
      const status = source.status();
      send({
        type: 'full',
        startedAt,
        firstResponseAt: firstResponseAt ?? appliedAt,
        appliedAt,
        responses,
        workloads: snapshot.workloads.length,
        services: snapshot.services.length,
        authorizations: snapshot.policies.length,
        nacks: status.lastNack ? Object.keys(status.lastNack.rejected).length : 0,
      });
    }
    if (watch) {
      const { uid, tunnelProtocol, seq } = watch;
      const workload = snapshot.workloads.find((w) => w.uid === uid);
      if (workload?.tunnelProtocol === tunnelProtocol) {
        watch = undefined;
        send({ type: 'seen', seq, arrivedAt: lastArrivalAt, appliedAt });
      }
    }
  };

  port.on('message', (command: AgentCommand) => {
    switch (command.type) {
      case 'start':
        startedAt = now();
        source.start(apply);
        break;
      case 'watch':
        watch = { seq: command.seq, uid: command.uid, tunnelProtocol: command.tunnelProtocol };
        send({ type: 'armed', seq: command.seq });
        break;
      case 'close':
        void source.close().then(
          () => send({ type: 'closed' }),
          (err: unknown) => send({ type: 'error', message: `closing the xDS source: ${String(err)}` }),
        );
        break;
    }
  });
  send({ type: 'loaded' });
}

if (parentPort) {
  const port = parentPort;
  try {
    run(workerData as AgentJob, port);
  } catch (err) {
    port.postMessage({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies AgentEvent);
  }
}
