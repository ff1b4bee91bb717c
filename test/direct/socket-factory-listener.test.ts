// SocketFactory.tuneListener on a real listening socket of this Node (loopback): the listening
// handle's setNoDelay exists and succeeds, so accepted sockets inherit TCP_NODELAY from the
// listener and the server stops setting it per socket (the unit test covers the fallback).
import net from 'node:net';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { plainSocketFactory } from '../../src/node-agent/proxy/socket-factory.js';

describe('SocketFactory.tuneListener on a real listener', () => {
  it('works on a real listening handle of this Node (the fallback is not what runs)', async () => {
    const server = net.createServer({ noDelay: true });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      plainSocketFactory.tuneListener(server, { resetOnCrash: false });
      expect((server as net.Server & { noDelay: boolean }).noDelay).toBe(false);
    } finally {
      server.close();
    }
  });
});
