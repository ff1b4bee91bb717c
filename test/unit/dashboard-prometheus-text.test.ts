import { Registry, Counter, Histogram, Gauge } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { histogramQuantile, histogramSeries, labelKey, parsePrometheusText, parseValue } from '../../src/dashboard/prometheus-text.js';

describe('parsePrometheusText', () => {
  it('reads counters, gauges, HELP/TYPE, timestamps and special values', () => {
    const { families, problems } = parsePrometheusText(
      [
        '# HELP istio_tcp_connections_opened_total Connections opened. Second line:\\nwith a backslash \\\\ here',
        '# TYPE istio_tcp_connections_opened_total counter',
        'istio_tcp_connections_opened_total{reporter="destination",source_workload="frontend"} 12 1700000000000',
        'istio_tcp_connections_opened_total{reporter="source",source_workload="frontend",} 3e2',
        '# a plain comment',
        '# TYPE up gauge',
        'up 1',
        'temperature{room="a"} -Inf',
        'ratio NaN',
        'big +Inf',
        '',
      ].join('\n'),
    );
    expect(problems).toEqual([]);
    const tcp = families.get('istio_tcp_connections_opened_total')!;
    expect(tcp.type).toBe('counter');
    expect(tcp.help).toBe('Connections opened. Second line:\nwith a backslash \\ here');
    expect(tcp.samples).toEqual([
      { name: 'istio_tcp_connections_opened_total', labels: { reporter: 'destination', source_workload: 'frontend' }, value: 12, timestampMs: 1700000000000 },
      { name: 'istio_tcp_connections_opened_total', labels: { reporter: 'source', source_workload: 'frontend' }, value: 300 },
    ]);
    expect(families.get('up')).toMatchObject({ type: 'gauge', samples: [{ value: 1, labels: {} }] });
    expect(families.get('temperature')).toMatchObject({ type: 'untyped', samples: [{ value: -Infinity }] });
    expect(Number.isNaN(families.get('ratio')!.samples[0]!.value)).toBe(true);
    expect(families.get('big')!.samples[0]!.value).toBe(Infinity);
  });

  it('unescapes label values and keeps commas, braces and equals signs inside them', () => {
    const { families, problems } = parsePrometheusText('m{path="/a,b{c}=d",quote="say \\"hi\\"",nl="x\\ny",bs="C:\\\\dir"} 1\n');
    expect(problems).toEqual([]);
    expect(families.get('m')!.samples[0]!.labels).toEqual({ path: '/a,b{c}=d', quote: 'say "hi"', nl: 'x\ny', bs: 'C:\\dir' });
  });

  it('groups histogram buckets, sums and counts under the family', () => {
    const text = [
      '# TYPE istio_request_duration_milliseconds histogram',
      'istio_request_duration_milliseconds_bucket{le="1",response_code="200"} 2',
      'istio_request_duration_milliseconds_bucket{le="5",response_code="200"} 8',
      'istio_request_duration_milliseconds_bucket{le="+Inf",response_code="200"} 10',
      'istio_request_duration_milliseconds_sum{response_code="200"} 31.5',
      'istio_request_duration_milliseconds_count{response_code="200"} 10',
      'istio_request_duration_milliseconds_bucket{response_code="503",le="+Inf"} 1',
      'istio_request_duration_milliseconds_sum{response_code="503"} 2',
      'istio_request_duration_milliseconds_count{response_code="503"} 1',
    ].join('\n');
    const { families, problems } = parsePrometheusText(text);
    expect(problems).toEqual([]);
    expect([...families.keys()]).toEqual(['istio_request_duration_milliseconds']);
    const series = histogramSeries(families.get('istio_request_duration_milliseconds')!);
    expect(series).toEqual([
      {
        labels: { response_code: '200' },
        buckets: [
          { le: 1, count: 2 },
          { le: 5, count: 8 },
          { le: Infinity, count: 10 },
        ],
        sum: 31.5,
        count: 10,
      },
      { labels: { response_code: '503' }, buckets: [{ le: Infinity, count: 1 }], sum: 2, count: 1 },
    ]);
  });

  it('reports malformed lines with their numbers and keeps the rest', () => {
    const { families, problems } = parsePrometheusText(
      ['good 1', 'bad{a="x} 1', 'novalue{a="x"}', 'm{a="1",a="2"} 1', 'word{a="x"} abc', 'esc{a="\\q"} 1', 'later 2', '# TYPE t frobnicator', '9lives 1'].join('\n'),
    );
    expect(families.get('good')!.samples[0]!.value).toBe(1);
    expect(families.get('later')!.samples[0]!.value).toBe(2);
    expect(problems.map((p) => p.line)).toEqual([2, 3, 4, 5, 6, 8, 9]);
    expect(problems[0]!.message).toMatch(/unterminated/);
    expect(problems[2]!.message).toMatch(/twice/);
    expect(problems[4]!.message).toMatch(/invalid escape/);
  });

  it('round-trips what prom-client writes', async () => {
    const registry = new Registry();
    const counter = new Counter({ name: 'istio_requests_total', help: 'Requests "quoted" \\ back', labelNames: ['reporter', 'path'], registers: [registry] });
    const histogram = new Histogram({ name: 'istio_request_duration_milliseconds', help: 'd', labelNames: ['reporter'], buckets: [1, 5, 10], registers: [registry] });
    const gauge = new Gauge({ name: 'amesh_pool_size', help: 'g', registers: [registry] });
    counter.inc({ reporter: 'waypoint', path: 'a "b"\nc\\d' }, 7);
    histogram.observe({ reporter: 'waypoint' }, 3);
    histogram.observe({ reporter: 'waypoint' }, 30);
    gauge.set(4);
    const { families, problems } = parsePrometheusText(await registry.metrics());
    expect(problems).toEqual([]);
    expect(families.get('istio_requests_total')).toMatchObject({ type: 'counter', help: 'Requests "quoted" \\ back', samples: [{ labels: { reporter: 'waypoint', path: 'a "b"\nc\\d' }, value: 7 }] });
    const [h] = histogramSeries(families.get('istio_request_duration_milliseconds')!);
    expect(h).toMatchObject({ count: 2, sum: 33, labels: { reporter: 'waypoint' } });
    expect(h!.buckets.map((b) => [b.le, b.count])).toEqual([
      [1, 0],
      [5, 1],
      [10, 1],
      [Infinity, 2],
    ]);
    expect(families.get('amesh_pool_size')!.samples[0]!.value).toBe(4);
  });
});

describe('helpers', () => {
  it('parseValue follows the format', () => {
    expect(parseValue('1.5e3')).toBe(1500);
    expect(parseValue('-0.25')).toBe(-0.25);
    expect(parseValue('.5')).toBe(0.5);
    expect(parseValue('')).toBeUndefined();
    expect(parseValue('1,5')).toBeUndefined();
  });

  it('labelKey is independent of label order and can omit one label', () => {
    expect(labelKey({ b: '2', a: '1' })).toBe(labelKey({ a: '1', b: '2' }));
    expect(labelKey({ a: '1', le: '5' }, 'le')).toBe(labelKey({ a: '1' }));
  });

  it('histogramQuantile interpolates like Prometheus', () => {
    const buckets = [
      { le: 1, count: 2 },
      { le: 5, count: 8 },
      { le: 10, count: 10 },
      { le: Infinity, count: 10 },
    ];
    expect(histogramQuantile(0.5, buckets)).toBeCloseTo(1 + 4 * (3 / 6));
    expect(histogramQuantile(0.99, buckets)).toBeCloseTo(5 + 5 * ((9.9 - 8) / 2));
    expect(histogramQuantile(0.1, buckets)).toBeCloseTo(0.5);
    // The rank falls in +Inf: the highest finite bound.
    expect(histogramQuantile(0.99, [{ le: 1, count: 1 }, { le: Infinity, count: 10 }])).toBe(1);
    expect(histogramQuantile(0.5, [{ le: Infinity, count: 0 }])).toBeUndefined();
    expect(histogramQuantile(0.5, [])).toBeUndefined();
  });
});
