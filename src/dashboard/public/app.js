/* amesh dashboard page: polls /api/graph, /api/services and /api/namespaces and draws them with
 * cytoscape (graph) and uPlot (charts), both served by the dashboard itself (no CDN).
 * Plain browser JavaScript, no bundler. The graph is also written to a visually hidden table
 * (#graph-data) and to window.__dashboard, for screen readers and tests. */
/* global window, document, CSS, cytoscape, uPlot, ResizeObserver */
'use strict';

(function main() {
  const state = {
    intervalMs: 5000,
    cy: undefined,
    nodeKey: '',
    selected: undefined,
    charts: new Map(), // service id → { rate, latency, key }
    graph: { nodes: [], edges: [] },
    services: [],
    chartsDrawn: 0,
    rounds: 0,
  };
  window.__dashboard = state;

  const $ = (selector) => document.querySelector(selector);
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'class') node.className = v;
      else if (k.startsWith('data-')) node.setAttribute(k, String(v));
      else node[k] = v;
    }
    for (const child of children) if (child !== undefined && child !== null) node.append(child instanceof window.Node ? child : String(child));
    return node;
  };

  async function getJson(path) {
    const res = await fetch(path, { cache: 'no-store' });
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return res.json();
  }

  // ---- formatting (mirrors graph-model.ts) ------------------------------------------------------
  const fmt = {
    rate(v, unit) {
      if (v === null || v === undefined) return '–';
      const digits = v >= 100 ? 0 : v > 0 && v < 0.1 ? 2 : 1;
      return `${v.toFixed(digits)}${unit ? ` ${unit}` : ''}`;
    },
    ms(v) {
      if (v === null || v === undefined) return '–';
      if (v >= 1000) return `${(v / 1000).toFixed(1)} s`;
      return v < 1 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`;
    },
    pct(v) {
      if (v === null || v === undefined) return '–';
      return v === 0 ? '0%' : v < 1 ? `${v.toFixed(1)}%` : `${Math.round(v)}%`;
    },
    bytes(v) {
      if (v === null || v === undefined) return '–';
      const units = ['B/s', 'kB/s', 'MB/s', 'GB/s'];
      let i = 0;
      while (v >= 1000 && i < units.length - 1) {
        v /= 1000;
        i++;
      }
      return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
    },
  };

  // ---- graph -----------------------------------------------------------------------------------
  const NODE_STYLE = {
    workload: { shape: 'round-rectangle', color: '#eef2f8', border: '#3b4a63' },
    service: { shape: 'triangle', color: '#cfdcf5', border: '#2f5fb3' },
    waypoint: { shape: 'diamond', color: '#f4e7c5', border: '#9a6b00' },
    gateway: { shape: 'hexagon', color: '#e3f0e6', border: '#1f6f3a' },
    unknown: { shape: 'ellipse', color: '#f1f1f1', border: '#8a8f99' },
  };

  function edgeColor(e) {
    if (e.rate === 0) return '#b8bfcc';
    if (e.errorRate !== undefined && e.errorRate !== null && e.errorRate >= 0.05) return '#cf222e';
    if (e.errorRate > 0) return '#bf8700';
    return e.protocol === 'tcp' ? '#4a78c2' : '#4b5a73';
  }

  function edgeWidth(e) {
    return e.rate > 0 ? Math.min(7, 1.5 + Math.log10(1 + e.rate) * 2) : 1;
  }

  function ensureGraph() {
    if (state.cy) return state.cy;
    state.cy = cytoscape({
      container: $('#graph'),
      wheelSensitivity: 0.3,
      minZoom: 0.2,
      maxZoom: 3,
      style: [
        {
          selector: 'node',
          style: {
            shape: 'data(shape)',
            'background-color': 'data(color)',
            'border-color': 'data(border)',
            'border-width': 1.5,
            label: 'data(display)',
            'text-valign': 'bottom',
            'text-margin-y': 6,
            'text-wrap': 'wrap',
            'font-size': 12,
            color: '#1c2230',
            width: 38,
            height: 30,
          },
        },
        { selector: 'node[kind = "service"]', style: { width: 34, height: 30 } },
        { selector: 'node:selected', style: { 'border-width': 3, 'border-color': '#2f6feb' } },
        {
          selector: 'edge',
          style: {
            'curve-style': 'bezier',
            'target-arrow-shape': 'triangle',
            'arrow-scale': 0.9,
            width: 'data(width)',
            'line-color': 'data(color)',
            'target-arrow-color': 'data(color)',
            label: 'data(label)',
            'font-size': 11,
            color: '#1c2230',
            'text-background-color': '#ffffff',
            'text-background-opacity': 0.9,
            'text-background-padding': 2,
            'text-rotation': 'autorotate',
            'text-margin-y': -10,
          },
        },
        { selector: 'edge[protocol = "tcp"]', style: { 'line-style': 'dashed' } },
        { selector: 'edge[?idle]', style: { 'line-style': 'dotted', color: '#7d8596' } },
        { selector: 'edge:selected', style: { 'line-color': '#2f6feb', 'target-arrow-color': '#2f6feb' } },
      ],
    });
    state.cy.on('tap', 'node, edge', (evt) => select(evt.target.id()));
    state.cy.on('tap', (evt) => {
      if (evt.target === state.cy) select(undefined);
    });
    new ResizeObserver(() => state.cy && state.cy.resize()).observe($('#graph'));
    return state.cy;
  }

  function nodeDisplay(n) {
    const lines = [n.name];
    if (n.kind === 'workload' && n.version) lines[0] = `${n.name}`;
    if (n.namespace) lines.push(n.kind === 'service' ? `svc · ${n.namespace}` : n.namespace);
    return lines.join('\n');
  }

  function layout(cy) {
    // Left to right: breadthfirst from the nodes nothing points at, then x/y swapped.
    const roots = cy.nodes().filter((n) => n.indegree(false) === 0);
    cy.layout({
      name: 'breadthfirst',
      directed: true,
      roots: roots.length ? roots : undefined,
      spacingFactor: 1.15,
      padding: 40,
      animate: false,
      transform: (_node, p) => ({ x: p.y * 2.3, y: p.x * 0.8 }),
    }).run();
    cy.fit(undefined, 50);
  }

  function renderGraph(graph) {
    const cy = ensureGraph();
    const nodeKey = graph.nodes.map((n) => n.id).join('|') + '#' + graph.edges.map((e) => e.id).join('|');
    const elements = [
      ...graph.nodes.map((n) => {
        const s = NODE_STYLE[n.kind] || NODE_STYLE.unknown;
        return { group: 'nodes', data: { ...n, display: nodeDisplay(n), shape: s.shape, color: s.color, border: s.border } };
      }),
      ...graph.edges.map((e) => ({ group: 'edges', data: { ...e, width: edgeWidth(e), color: edgeColor(e), idle: e.rate === 0 } })),
    ];
    if (nodeKey !== state.nodeKey) {
      cy.elements().remove();
      cy.add(elements);
      layout(cy);
      state.nodeKey = nodeKey;
    } else {
      for (const item of elements) cy.getElementById(item.data.id).data(item.data);
    }
    $('#graph-empty').hidden = graph.nodes.length > 0;
    renderGraphTable(graph);
    if (state.selected) select(state.selected);
  }

  function renderGraphTable(graph) {
    const body = $('#graph-data tbody');
    body.replaceChildren(
      ...graph.nodes.map((n) => el('tr', { 'data-kind': 'node', 'data-id': n.id, 'data-node-kind': n.kind }, el('td', {}, n.kind), el('td', {}, n.id), el('td', {}), el('td', {}), el('td', {}))),
      ...graph.edges.map((e) =>
        el(
          'tr',
          { 'data-kind': 'edge', 'data-id': e.id, 'data-source': e.source, 'data-target': e.target, 'data-protocol': e.protocol, 'data-rate': e.rate, 'data-mtls': e.mtls, 'data-label': e.label },
          el('td', {}, `${e.protocol} edge`),
          el('td', {}, e.id),
          el('td', {}, e.source),
          el('td', {}, e.target),
          el('td', {}, e.label),
        ),
      ),
    );
  }

  function select(id) {
    state.selected = id;
    const box = $('#selection');
    for (const card of document.querySelectorAll('#services .service')) card.classList.toggle('selected', card.dataset.id === id);
    if (!id) {
      box.hidden = true;
      return;
    }
    const node = state.graph.nodes.find((n) => n.id === id);
    const edge = state.graph.edges.find((e) => e.id === id);
    const rows = [];
    let title = '';
    if (node) {
      title = `${node.kind} ${node.name}`;
      rows.push(['namespace', node.namespace || '–']);
      if (node.app) rows.push(['app', node.app]);
      if (node.version) rows.push(['version', node.version]);
      const out = state.graph.edges.filter((e) => e.source === id).reduce((a, e) => a + e.rate, 0);
      const inn = state.graph.edges.filter((e) => e.target === id).reduce((a, e) => a + e.rate, 0);
      rows.push(['in / out', `${fmt.rate(inn)} / ${fmt.rate(out)} per s`]);
      const card = document.querySelector(`#services .service[data-id="${CSS.escape(id)}"]`);
      if (card) card.scrollIntoView({ block: 'nearest' });
    } else if (edge) {
      title = `${edge.protocol.toUpperCase()} ${edge.source.replace(/^\w+:/, '')} → ${edge.target.replace(/^\w+:/, '')}`;
      rows.push(['traffic', edge.label]);
      rows.push(['mTLS', edge.mtls]);
      if (edge.p50Ms !== undefined) rows.push(['p50 / p99', `${fmt.ms(edge.p50Ms)} / ${fmt.ms(edge.p99Ms)}`]);
      rows.push([edge.protocol === 'http' ? 'codes' : 'flags', Object.entries(edge.codes).map(([c, r]) => `${c}: ${fmt.rate(r)}/s`).join(', ') || '–']);
      rows.push(['bytes', fmt.bytes(edge.bytesPerSecond)]);
      rows.push(['reported by', edge.reporter]);
      if (edge.via) rows.push(['via waypoint', edge.via]);
    } else {
      box.hidden = true;
      return;
    }
    box.replaceChildren(el('h3', {}, title), el('dl', {}, ...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])));
    box.hidden = false;
  }

  // ---- golden signals --------------------------------------------------------------------------
  const CHART_WIDTH = 346;

  function chartData(history, keys) {
    return [history.map((p) => p.t), ...keys.map((k) => history.map((p) => (p[k] === undefined ? null : p[k])))];
  }

  function makeChart(container, title, series, data) {
    // A series with `scale: 'pct'` (error %) gets its own axis on the right, 0-100 at most.
    const pct = series.some((s) => s.scale === 'pct');
    const axis = { stroke: '#5d6678', grid: { stroke: '#eef0f4' }, font: '10px system-ui' };
    const opts = {
      title,
      width: CHART_WIDTH,
      height: 120,
      cursor: { drag: { x: false, y: false } },
      legend: { show: true, live: false },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] }, ...(pct ? { pct: { range: (_u, _min, max) => [0, Math.min(100, Math.max(5, Math.ceil(max * 1.2)))] } } : {}) },
      axes: [
        { ...axis, size: 28 },
        { ...axis, size: 44 },
        ...(pct ? [{ ...axis, scale: 'pct', side: 1, size: 34, grid: { show: false }, values: (_u, ticks) => ticks.map((t) => `${t}%`) }] : []),
      ],
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 1.6, fill: s.fill, scale: s.scale || 'y', spanGaps: false, points: { show: data[0].length < 3 } }))],
    };
    const chart = new uPlot(opts, data, container);
    state.chartsDrawn++;
    return chart;
  }

  function serviceCard(s) {
    const l = s.latest;
    const http = s.protocol === 'http';
    const figures = http
      ? [
          ['requests', `${fmt.rate(l.rps)}/s`],
          ['errors', fmt.pct(l.errorPct), l.errorPct > 5],
          ['p50', fmt.ms(l.p50Ms)],
          ['p99', fmt.ms(l.p99Ms)],
        ]
      : [
          ['connections', `${fmt.rate(l.cps)}/s`],
          ['in', fmt.bytes(l.bytesInPerSecond)],
          ['out', fmt.bytes(l.bytesOutPerSecond)],
          ['', ''],
        ];
    const card = el(
      'div',
      { class: 'service', 'data-id': s.id, 'data-protocol': s.protocol },
      el('div', { class: 'service-head' }, el('span', { class: 'service-name' }, s.name), el('span', { class: 'protocol' }, s.protocol)),
      el('div', { class: 'figures' }, ...figures.map(([k, v, bad]) => el('div', { class: 'figure' }, el('b', { class: bad ? 'bad' : '' }, v), k))),
      el('div', { class: 'chart', 'data-chart': 'rate' }),
      el('div', { class: 'chart', 'data-chart': 'latency' }),
    );
    card.addEventListener('click', () => {
      if (state.cy && state.cy.getElementById(s.id).nonempty()) {
        state.cy.elements().unselect();
        state.cy.getElementById(s.id).select();
      }
      select(s.id);
    });
    return card;
  }

  function chartSpecs(s) {
    if (s.protocol === 'http') {
      return {
        rate: { title: 'requests/s · errors %', keys: ['rps', 'errorPct'], series: [{ label: 'req/s', color: '#2f6feb', fill: 'rgba(47,111,235,0.08)' }, { label: 'err %', color: '#cf222e', scale: 'pct' }] },
        latency: { title: 'latency ms', keys: ['p50Ms', 'p99Ms'], series: [{ label: 'p50', color: '#1f883d' }, { label: 'p99', color: '#bf8700' }] },
      };
    }
    return {
      rate: { title: 'connections/s', keys: ['cps'], series: [{ label: 'conn/s', color: '#4a78c2', fill: 'rgba(74,120,194,0.08)' }] },
      latency: { title: 'bytes/s', keys: ['bytesInPerSecond', 'bytesOutPerSecond'], series: [{ label: 'in', color: '#6e40c9' }, { label: 'out', color: '#1f883d' }] },
    };
  }

  function renderServices(services) {
    const box = $('#services');
    const key = services.map((s) => `${s.id}:${s.protocol}`).join('|');
    if (key !== box.dataset.key) {
      for (const c of state.charts.values()) {
        c.rate.destroy();
        c.latency.destroy();
      }
      state.charts.clear();
      box.replaceChildren(...(services.length ? services.map(serviceCard) : [el('div', { class: 'no-services' }, 'No service traffic yet.')]));
      box.dataset.key = key;
      for (const s of services) {
        const card = box.querySelector(`.service[data-id="${CSS.escape(s.id)}"]`);
        const specs = chartSpecs(s);
        state.charts.set(s.id, {
          rate: makeChart(card.querySelector('[data-chart=rate]'), specs.rate.title, specs.rate.series, chartData(s.history, specs.rate.keys)),
          latency: makeChart(card.querySelector('[data-chart=latency]'), specs.latency.title, specs.latency.series, chartData(s.history, specs.latency.keys)),
        });
      }
    } else {
      for (const s of services) {
        const charts = state.charts.get(s.id);
        const specs = chartSpecs(s);
        charts.rate.setData(chartData(s.history, specs.rate.keys));
        charts.latency.setData(chartData(s.history, specs.latency.keys));
        const fresh = serviceCard(s).querySelector('.figures');
        box.querySelector(`.service[data-id="${CSS.escape(s.id)}"] .figures`).replaceWith(fresh);
      }
    }
  }

  // ---- namespaces ------------------------------------------------------------------------------
  function podsCell(p) {
    const redirection = [p.redirected ? `${p.redirected} redirected` : '', p.pending ? `${p.pending} pending` : ''].filter(Boolean).join(', ');
    return el('span', {}, `${p.enrolled} / ${p.total} enrolled`, redirection ? el('span', { class: 'names' }, ` · ${redirection}`) : null);
  }

  function renderNamespaces(res) {
    const body = $('#namespaces tbody');
    $('#namespaces-note').textContent = res.available ? '' : `Kubernetes API: ${res.error || 'unavailable'}`;
    if (!res.namespaces.length) {
      body.replaceChildren(el('tr', {}, el('td', { colSpan: 7, class: 'names' }, res.available ? 'no namespaces' : 'not available')));
      return;
    }
    const names = (list, fmtItem) => (list.length ? el('span', {}, `${list.length} `, el('span', { class: 'names' }, list.map(fmtItem).join(', '))) : el('span', { class: 'names' }, '–'));
    body.replaceChildren(
      ...res.namespaces.map((n) =>
        el(
          'tr',
          { 'data-namespace': n.name },
          el('td', {}, n.name),
          el('td', {}, el('span', { class: `pill ${n.dataplaneMode === 'ambient' ? 'ambient' : ''}` }, n.dataplaneMode || 'not enrolled')),
          el('td', {}, n.pods.total ? podsCell(n.pods) : '–'),
          el('td', {}, names(n.waypoints, (w) => `${w.name} (for ${w.for}${w.programmed === 'True' ? '' : `, programmed ${w.programmed}`})`)),
          el('td', {}, n.useWaypoint || '–'),
          el('td', {}, names(n.authorizationPolicies, (p) => `${p.name} (${p.action})`)),
          el('td', {}, names(n.peerAuthentications, (p) => `${p.name} (${p.mode})`)),
        ),
      ),
    );
  }

  // ---- status and polling ----------------------------------------------------------------------
  function renderStatus(graph) {
    const ok = graph.targets.filter((t) => t.ok).length;
    const failed = graph.targets.filter((t) => !t.ok);
    const when = graph.timeMs ? new Date(graph.timeMs).toLocaleTimeString() : 'never';
    const parts = [`${ok}/${graph.targets.length} proxies scraped`, `updated ${when}`];
    const status = $('#status');
    status.replaceChildren(parts.join(' · '));
    if (failed.length) status.append(' · ', el('span', { class: 'bad', title: failed.map((t) => `${t.id}: ${t.error}`).join('\n') }, `${failed.length} failing`));
    if (graph.discoveryError) status.append(' · ', el('span', { class: 'bad', title: graph.discoveryError }, 'discovery failing'));
    $('#window').textContent = graph.windowSeconds ? `rates over the last ${Math.round(graph.windowSeconds)} s` : 'waiting for a second scrape';
  }

  async function poll() {
    try {
      const [graph, services, namespaces] = await Promise.all([getJson('/api/graph'), getJson('/api/services'), getJson('/api/namespaces')]);
      state.graph = graph;
      state.services = services.services;
      if (graph.intervalSeconds) state.intervalMs = Math.max(1000, graph.intervalSeconds * 1000);
      renderGraph(graph);
      renderServices(services.services);
      renderNamespaces(namespaces);
      renderStatus(graph);
      state.rounds++;
      document.body.dataset.ready = 'true';
    } catch (err) {
      $('#status').replaceChildren(el('span', { class: 'bad' }, `cannot reach the dashboard server: ${err.message}`));
    }
    window.setTimeout(poll, state.intervalMs);
  }

  poll();
})();
