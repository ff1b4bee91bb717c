// A bulk sender whose server closes first (iperf3's data connection at the end of a test):
// the relay on the client's side must finish and release the client — a relay left waiting
// leaks the connection and stalls the agent's drain.
import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import { once } from 'node:events';
import { relay, type RelayResult } from '../../src/net/relay.js';
import { SERVER_URI, CLIENT_ID, listen, startHbone, type HboneFixture } from '../helpers/hbone.js';

describe('relay through HBONE when the upstream closes while the client is still sending', () => {
  let fx: HboneFixture | undefined;
  afterEach(async () => fx?.close());

  it.each([
    ['closes after reading 1 MiB', (s: net.Socket) => { let n = 0; s.on('data', (d) => { n += d.length; if (n > 1 << 20) s.end(); }); }],
    ['resets after reading 1 MiB', (s: net.Socket) => { let n = 0; s.on('data', (d) => { n += d.length; if (n > 1 << 20) s.resetAndDestroy(); }); }],
  ])('upstream %s: the agent-side relay finishes', async (_name, behave) => {
    // pool.close() below can cut the tunnel before the client's data and END_STREAM reached the
    // upstream: the agent then resets the upstream's connection (issue #12), which is expected.
    const upstream = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      behave(s);
    });
    fx = await startHbone({ upstream });
    const pool = fx.pool();
    // The "captured" client connection: a local listener stands in for the agent's 15001.
    const agentSide = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
    const agentPort = await listen(agentSide);
    const relayDone = new Promise<RelayResult>((resolve) => {
      agentSide.once('connection', (client: net.Socket) => {
        void pool
          .connect({ sourceIdentity: CLIENT_ID, expectedIdentities: [SERVER_URI], nextHop: { host: '127.0.0.1', port: fx!.port }, authority: `127.0.0.1:${fx!.upstreamPort}`, headers: {} })
          .then((stream) => relay(client, stream).then(resolve));
      });
    });
    const client = net.connect({ host: '127.0.0.1', port: agentPort });
    client.on('error', () => undefined);
    const chunk = Buffer.alloc(64 * 1024, 7);
    const pump = (): void => { while (!client.destroyed && client.write(chunk)); };
    client.on('drain', pump);
    await once(client, 'connect');
    pump();
    const outcome = await Promise.race([relayDone.then(() => 'finished'), new Promise((r) => setTimeout(() => r('stuck'), 5000))]);
    client.destroy();
    agentSide.close();
    pool.close();
    expect(outcome, 'the relay between the client and the HBONE stream must finish once the upstream is gone').toBe('finished');
  });
});
