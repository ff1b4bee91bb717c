// The pure parts of bench scenarios 3–5: wrk's command line and report, the /proc/net/snmp
// counters behind "tunnel connections per connection", the hold client's events and fd check,
// process trees, VmRSS and the KB-per-connection arithmetic.
import { describe, expect, it } from 'vitest';
import { parseHoldEvent, parseOpenFilesLimit } from '../../bench/load/hold.js';
import { parseWrkOutput, wrkArgv, wrkErrors, WrkOutputError } from '../../bench/load/wrk.js';
import type { ProcStat } from '../../bench/proc-stat.js';
import { parseSnmpTcp } from '../../bench/proc-net-snmp.js';
import { tunnelConnectionsPerConnection } from '../../bench/scenarios/connrate.js';
import { numericFields, proxyEfficiency } from '../../bench/scenarios/maxrate.js';
import { descriptorsPerConnection, heapAfterOf, kbPerConnection, memoryValues, openTimeoutMs, parseVmRssKB, processTree } from '../../bench/scenarios/memory.js';

const WRK_STDOUT = `Running 5s test @ http://10.244.2.3:8080/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20ms    2.01ms  40.00ms   95.00%
    Req/Sec    13.29k     1.10k   14.20k    70.00%
  66500 requests in 5.00s, 74.10MB read
  Non-2xx or 3xx responses: 500
Requests/sec:  13300.00
Transfer/sec:     14.82MB
{"wrk":1,"durationUs":5000000,"requests":66500,"bytes":77700000,"connectErrors":1,"readErrors":2,"writeErrors":0,"statusErrors":500,"timeouts":3,"latencyUs":{"p50":1151,"p90":2000,"p99":8350,"max":40000,"mean":1200.5}}
`;

describe('wrk', () => {
  it('builds the command line with the report script, headers and a per-request timeout', () => {
    expect(wrkArgv({ url: 'http://127.0.0.1:28080/', connections: 16, threads: 1, seconds: 10, script: '/tmp/r.lua', headers: ['Connection: close'] })).toEqual([
      'wrk', '-t', '1', '-c', '16', '-d', '10s', '--timeout', '5s', '-H', 'Connection: close', '-s', '/tmp/r.lua', 'http://127.0.0.1:28080/',
    ]);
  });

  it('reads the exact counters from the JSON line, not the rounded summary', () => {
    const r = parseWrkOutput(WRK_STDOUT);
    expect(r.seconds).toBe(5);
    expect(r.requests).toBe(66500);
    // Good responses only: (66500 − 500 non-2xx) / 5 s.
    expect(r.requestsPerSecond).toBe(13200);
    expect(r.latencyMs).toEqual({ p50: 1.151, p90: 2, p99: 8.35, max: 40, mean: 1.2005 });
    expect(wrkErrors(r)).toBe(1 + 2 + 500 + 3);
  });

  it('fails with what wrk said when the report line is missing or broken', () => {
    expect(() => parseWrkOutput('unable to connect to 10.244.2.3:8080 Connection refused\n')).toThrow(/no report line.*Connection refused/);
    expect(() => parseWrkOutput('')).toThrow(WrkOutputError);
    expect(() => parseWrkOutput('{"wrk":1,"durationUs":0,"requests":0,"bytes":0,"connectErrors":0,"readErrors":0,"writeErrors":0,"statusErrors":0,"timeouts":0,"latencyUs":{"p50":0,"p90":0,"p99":0,"max":0,"mean":0}}')).toThrow(/0 s/);
    expect(() => parseWrkOutput('{"wrk":1,"durationUs":5000000}')).toThrow(/"requests"/);
    expect(() => parseWrkOutput('{"wrk":1,')).toThrow(/not JSON/);
  });
});

describe('maximum request rate figures', () => {
  it('gives proxy cores per 1000 req/s and requests per proxy core-second', () => {
    // 50 000 requests for 2.5 CPU-s: 0.05 cores per 1000 req/s, 20 000 req per core-second.
    expect(proxyEfficiency(2.5, 50_000)).toEqual({ proxyCoresPer1000Rps: 0.05, requestsPerProxyCoreSecond: 20_000 });
    expect(proxyEfficiency(0, 0)).toEqual({});
  });

  it('lists the numbers of a sample by name', () => {
    expect(numericFields({ path: 'amesh', run: 2, requestsPerSecond: 10, error: 'x', nan: Number.NaN }, ['run'])).toEqual({ requestsPerSecond: 10 });
  });
});

describe('connection setup rate: tunnel connections per connection', () => {
  const snmp = (passive: number): string =>
    [
      'Ip: Forwarding DefaultTTL',
      'Ip: 1 64',
      'Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails',
      `Tcp: 1 200 120000 -1 10 ${passive} 0`,
      'Udp: InDatagrams',
      'Udp: 0',
    ].join('\n');

  it('reads the Tcp counters of /proc/net/snmp (MaxConn is -1)', () => {
    expect(parseSnmpTcp(snmp(42))).toMatchObject({ ActiveOpens: 10, PassiveOpens: 42, MaxConn: -1 });
    expect(() => parseSnmpTcp('Ip: 1\nIp: 2')).toThrow(/no Tcp/);
  });

  it('is the server side accepts beyond the backend’s one per connection', () => {
    expect(tunnelConnectionsPerConnection(2000, 1000)).toBe(1); // a pair dialing its peer per connection
    expect(tunnelConnectionsPerConnection(1001, 1000)).toBeCloseTo(0.001); // pooled tunnels
    expect(tunnelConnectionsPerConnection(996, 1000)).toBe(0); // wrk stopped with accepts unanswered
    expect(tunnelConnectionsPerConnection(5, 0)).toBeUndefined();
  });
});

describe('memory', () => {
  const stat = (pid: number, ppid: number): ProcStat => ({ pid, ppid, comm: 'x', state: 'S', utime: 0, stime: 0, cutime: 0, cstime: 0 });

  it('KB per connection is the RSS growth over the idle baseline per held connection', () => {
    expect(kbPerConnection(174_708, 222_940, 1000)).toBeCloseTo(48.232);
    expect(kbPerConnection(100, 90, 10)).toBe(-1); // less than idle is reported, not hidden
    expect(() => kbPerConnection(1, 2, 0)).toThrow(RangeError);
  });

  it('reads VmRSS from /proc/<pid>/status', () => {
    expect(parseVmRssKB('Name:\tnode\nVmPeak:\t 999 kB\nVmRSS:\t  174708 kB\nRssAnon:\t 1 kB\n')).toBe(174_708);
    expect(parseVmRssKB('Name:\tkthreadd\nState:\tS\n')).toBeUndefined();
  });

  it('measures a proxy with its children (nginx workers), not its siblings', () => {
    const table = [stat(1, 0), stat(10, 1), stat(11, 10), stat(12, 10), stat(13, 11), stat(20, 1), stat(21, 20)];
    expect(processTree(table, [10]).sort()).toEqual([10, 11, 12, 13]);
    expect(processTree(table, [21, 99]).sort()).toEqual([21]);
  });

  it('names the numbers per held-connection count', () => {
    expect(
      memoryValues({ path: 'amesh', run: 1, idleRssKB: 100, idleHeapUsedKB: 20, idleHeapCommittedKB: 30, held: [{ connections: 1000, rssKB: 130, kbPerConnection: 0.03, secondsToOpen: 2, proxyCpuSeconds: 1, heapUsedKB: 25, heapCommittedKB: 40 }], releasedRssKB: 110, releasedHeapUsedKB: 21 }),
    ).toEqual({ idleRssKB: 100, idleHeapUsedKB: 20, idleHeapCommittedKB: 30, 'heapUsedKB@1000': 25, 'heapCommittedKB@1000': 40, releasedHeapUsedKB: 21, 'rssKB@1000': 130, 'kbPerConnection@1000': 0.03, 'secondsToOpen@1000': 2, 'proxyCpuSeconds@1000': 1, releasedRssKB: 110 });
  });

  it('reads the heap in use after GC from the agent’s answer', () => {
    expect(heapAfterOf('{"collected":true,"heapUsedAfter":2048,"heapTotalAfter":4096,"rssAfter":1}')).toEqual({ used: 2048, total: 4096 });
    expect(heapAfterOf('{"collected":true,"heapUsedAfter":2048}')).toEqual({ used: 2048 });
    expect(heapAfterOf('{"collected":true,"heapUsedAfter":2048,"externalAfter":512}')).toEqual({ used: 2048, external: 512 });
    expect(heapAfterOf('{"collected":true,"heapUsedAfter":2048,"spaces":{"new_space":{"size":1048576,"used":0}}}')).toEqual({ used: 2048, newSpace: 1_048_576 });
    expect(heapAfterOf('{"error":"x"}')).toEqual({});
    expect(heapAfterOf('<html>')).toBeUndefined();
  });

  it('allows a slow TLS pair time to open many connections, bounded', () => {
    expect(openTimeoutMs(1000)).toBe(110_000);
    expect(openTimeoutMs(10_000)).toBe(560_000);
    expect(openTimeoutMs(20_000)).toBe(600_000);
  });

  it('parses the hold client’s events and rejects anything else', () => {
    expect(parseHoldEvent('{"event":"up","connections":1000,"ms":812}')).toEqual({ event: 'up', connections: 1000, ms: 812 });
    expect(parseHoldEvent('{"event":"failed","error":"ECONNRESET","up":9765}')).toEqual({ event: 'failed', error: 'ECONNRESET', up: 9765 });
    expect(parseHoldEvent('{"event":"released","closedWhileHeld":0}')).toEqual({ event: 'released', closedWhileHeld: 0 });
    expect(parseHoldEvent('{"event":"up","connections":"1000","ms":1}')).toBeUndefined();
    expect(parseHoldEvent('(node:1) Warning: something')).toBeUndefined();
  });

  it('reads the soft open-files limit from /proc/<pid>/limits', () => {
    const limits = (soft: string): string =>
      ['Limit                     Soft Limit           Hard Limit           Units', 'Max processes             unlimited            unlimited            processes', `Max open files            ${soft}                20000                files`].join('\n');
    expect(parseOpenFilesLimit(limits('20000'))).toBe(20_000);
    expect(parseOpenFilesLimit(limits('unlimited'))).toBe(Infinity);
    expect(parseOpenFilesLimit('Limit Soft Hard\n')).toBeUndefined();
  });

  it('reads the hard open-files limit, the ceiling for held connections', () => {
    const limits = ['Limit                     Soft Limit           Hard Limit           Units', 'Max open files            1024                 20000                files'].join('\n');
    expect(parseOpenFilesLimit(limits, 'hard')).toBe(20_000);
    expect(parseOpenFilesLimit(limits)).toBe(1024);
  });

  it('counts two descriptors per held connection for a relay pair, one for an amesh agent', () => {
    expect(descriptorsPerConnection('haproxy')).toBe(2);
    expect(descriptorsPerConnection('stunnel')).toBe(2);
    expect(descriptorsPerConnection('amesh')).toBe(1);
    expect(descriptorsPerConnection('amesh-nft')).toBe(1);
  });
});
