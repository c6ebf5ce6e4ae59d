'use strict';
'require baseclass';
'require rpc';
'require ui';
'require dom';

// What the Braid views share: the backend calls, units as `braid status` prints them (SI:
// 1 GB = 10^9 bytes, as option quota '20G' means; rates in bit/s), state badges, live graphs
// drawn from the polled status, and the tables of a session (links, users, classes), which
// the status page shows for the edge's session and the edge page for one edge on a core.

var callStatus = rpc.declare({ object: 'luci.braid', method: 'status' });
var callLink = rpc.declare({ object: 'luci.braid', method: 'link', params: [ 'name', 'up' ] });
var callAccess = rpc.declare({
	object: 'session', method: 'access', params: [ 'scope', 'object', 'function' ], expect: { access: false }
});

// Samples kept per graph: 100 polls of 3 s, the last five minutes.
var HISTORY = 100;
var POLL = 3;

var STYLE = [
	'.braid-badge{display:inline-block;padding:1px 8px;border-radius:9px;color:#fff;font-size:12px;white-space:nowrap}',
	'.braid-badge.s-up,.braid-badge.s-established{background:#2e7d32}',
	'.braid-badge.s-degraded,.braid-badge.s-handshaking,.braid-badge.s-waiting{background:#ef6c00}',
	'.braid-badge.s-down{background:#c62828}',
	'.braid-badge.s-admin-down,.braid-badge.s-stopped{background:#757575}',
	'.braid-since{color:#777;font-size:12px;margin-left:4px;white-space:nowrap}',
	'.braid-note{color:#777;font-size:12px}',
	'.braid-graphs{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:12px;margin:8px 0 16px}',
	'.braid-graph{border:1px solid #ddd;border-radius:4px;padding:6px 8px}',
	'.braid-graph h5{margin:0 0 4px;font-size:13px}',
	'.braid-graph svg{width:100%;height:auto;display:block}',
	'.braid-legend{font-size:11px;color:#555}',
	'.braid-legend i{display:inline-block;width:14px;height:3px;vertical-align:middle;margin:0 4px 0 8px}',
	'.braid-summary td:first-child{width:30%;font-weight:500}',
	'.braid-key{font-family:monospace;word-break:break-all}'
].join('\n');

// A table cell holding `s` as text: LuCI's ui.Table puts a string cell in as HTML, and names
// come from the daemon (on a core, an edge names its own links).
function text(s) { return '%h'.format(s == null ? '' : s); }

function fmtRate(bps) {
	var b = Math.max(0, +bps || 0);
	if (b >= 1e9) return '%.2f Gbit/s'.format(b / 1e9);
	if (b >= 1e6) return '%.1f Mbit/s'.format(b / 1e6);
	if (b >= 1e3) return '%.0f kbit/s'.format(b / 1e3);
	return '%d bit/s'.format(b);
}

function fmtBytes(v) {
	var b = Math.max(0, +v || 0);
	if (b >= 1e12) return '%.2f TB'.format(b / 1e12);
	if (b >= 1e9) return '%.2f GB'.format(b / 1e9);
	if (b >= 1e6) return '%.1f MB'.format(b / 1e6);
	if (b >= 1e3) return '%.1f kB'.format(b / 1e3);
	return '%d B'.format(b);
}

function fmtAge(s) {
	s = Math.max(0, Math.floor(+s || 0));
	if (s >= 86400) return '%dd %dh'.format(Math.floor(s / 86400), Math.floor(s % 86400 / 3600));
	if (s >= 3600) return '%dh %dm'.format(Math.floor(s / 3600), Math.floor(s % 3600 / 60));
	if (s >= 60) return '%dm'.format(Math.floor(s / 60));
	return '%ds'.format(s);
}

var STATE_WORDS = {
	'up': _('up'), 'degraded': _('degraded'), 'down': _('down'), 'admin-down': _('taken out'),
	'established': _('established'), 'handshaking': _('handshaking'), 'stopped': _('not running'),
	'waiting': _('waiting')
};

// A coloured state badge, with the time in that state when known.
function badge(state, seconds) {
	return E('span', { 'class': 'braid-state', 'data-state': state }, [
		E('span', { 'class': 'braid-badge s-' + state }, [ STATE_WORDS[state] || state ]),
		seconds != null ? ' ' : '',
		seconds != null ? E('span', { 'class': 'braid-since' }, [ _('for %s').format(fmtAge(seconds)) ]) : ''
	]);
}

// ------------------------------------------------------------------ graphs
// One history per key (a link, or the bonded total): samples of the polled status.
var History = baseclass.extend({
	__init__: function() { this.series = {}; },
	push: function(key, sample) {
		var s = this.series[key] || (this.series[key] = []);
		s.push(sample);
		while (s.length > HISTORY) s.shift();
		return s;
	},
	get: function(key) { return this.series[key] || []; }
});

function niceMax(v) {
	if (!(v > 0)) return 1;
	var p = Math.pow(10, Math.floor(Math.log10(v))), m = v / p;
	return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

function esc(s) { return String(s).replace(/[&<>"']/g, function(c) { return '&#' + c.charCodeAt(0) + ';'; }); }

// An SVG line chart (as LuCI's realtime graphs, drawn from polled values): `lines` are
// { label, color, values, dash }, over the last HISTORY samples, with the scale's top
// written at the left and the latest values in the legend.
function chart(title, lines, fmt, opts) {
	opts = opts || {};
	var W = 300, H = 90, max = 0;
	lines.forEach(function(l) { l.values.forEach(function(v) { if (v > max) max = v; }); });
	max = niceMax(max);
	var grid = '', paths = '';
	for (var g = 1; g <= 3; g++) {
		var y = (H * g / 4).toFixed(1);
		grid += '<line x1="0" y1="' + y + '" x2="' + W + '" y2="' + y + '" stroke="#eee" stroke-width="1"/>';
	}
	lines.forEach(function(l) {
		var n = l.values.length;
		if (!n) return;
		var pts = l.values.map(function(v, i) {
			var x = W - (n - 1 - i) * (W / (HISTORY - 1));
			return x.toFixed(1) + ',' + (H - (Math.max(0, v) / max) * (H - 4)).toFixed(1);
		});
		if (n == 1) pts.unshift((W - 2) + ',' + pts[0].split(',')[1]);
		paths += '<polyline class="braid-line" data-series="' + esc(l.key || l.label) + '" data-points="' + n + '" fill="none" stroke="' + l.color +
			'" stroke-width="1.6"' + (l.dash ? ' stroke-dasharray="4 3"' : '') + ' points="' + pts.join(' ') + '"/>';
	});
	var svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ' + W + ' ' + (H + 14) + '" role="img" aria-label="' + esc(title) + '">' +
		'<rect x="0" y="0" width="' + W + '" height="' + H + '" fill="#fafafa" stroke="#ddd"/>' + grid + paths +
		'<text x="3" y="11" font-size="9" fill="#666">' + esc(fmt(max)) + '</text>' +
		'<text x="3" y="' + (H + 11) + '" font-size="9" fill="#888">' + esc(_('last %d min').format(Math.round(HISTORY * POLL / 60))) + '</text>' +
		'<text x="' + (W - 3) + '" y="' + (H + 11) + '" font-size="9" fill="#888" text-anchor="end">' + esc(_('now')) + '</text></svg>';
	return E('div', { 'class': 'braid-graph', 'data-graph': opts.id || title }, [
		E('h5', [ title ]),
		dom.parse(svg),
		E('div', { 'class': 'braid-legend' }, lines.map(function(l) {
			var last = l.values.length ? l.values[l.values.length - 1] : 0;
			return E('span', [ E('i', { 'style': 'background:' + l.color }), '%s %s'.format(l.label, fmt(last)) ]);
		}))
	]);
}

var DOWN = '#1565c0', UP = '#2e7d32', SUM = '#9e9e9e', RTT = '#6a1b9a';

// ------------------------------------------------------------------ a session
function working(l) { return l.state == 'up' || l.state == 'degraded'; }

function quota(l) {
	if (l.quota_bytes == null) return E('em', [ _('none') ]);
	var pct = l.quota_bytes > 0 ? 100 * l.quota_used_bytes / l.quota_bytes : 0;
	return E('span', { 'title': _('%d of %d bytes').format(l.quota_used_bytes, l.quota_bytes) },
		[ '%s / %s (%.0f%%)'.format(fmtBytes(l.quota_used_bytes), fmtBytes(l.quota_bytes), pct) ]);
}

function role(l) {
	return l.over_quota ? E('span', { 'title': _('Past its quota') }, [ l.role, ' ', E('em', [ _('(quota)') ]) ]) : text(l.role);
}

function usersTable(id, users) {
	var t = new ui.Table([ _('Address'), _('Flows'), _('Sent'), _('Received') ], { id: id, placeholder: E('em', [ _('No users') ]) });
	t.update((users || []).map(function(u) {
		return [ text(u.address), u.flows, [ u.tx_bytes, fmtBytes(u.tx_bytes) ], [ u.rx_bytes, fmtBytes(u.rx_bytes) ] ];
	}));
	return t.render();
}

function classesTable(id, classes) {
	var t = new ui.Table([ _('Class'), _('Mode'), _('Priority'), _('Packets') ], { id: id, placeholder: E('em', [ _('No classes') ]) });
	t.update((classes || []).map(function(c) { return [ text(c.name), text(c.mode), c.priority, c.packets ]; }));
	return t.render();
}

// The graphs of a session: the bonded total beside the sum of its links, then per link its
// throughput each way and its RTT. `hist` keeps the samples across polls.
function graphs(hist, prefix, sess) {
	var links = sess.links || [];
	var sumRx = 0, sumTx = 0;
	links.forEach(function(l) { sumRx += l.rx_bps || 0; sumTx += l.tx_bps || 0; });
	var b = hist.push(prefix + '/bonded', { rx: sess.rx_bps || 0, tx: sess.tx_bps || 0, lrx: sumRx, ltx: sumTx });
	var out = [ chart(_('Bonded'), [
		{ key: 'bonded-down', label: _('down'), color: DOWN, values: b.map(function(s) { return s.rx; }) },
		{ key: 'bonded-up', label: _('up'), color: UP, values: b.map(function(s) { return s.tx; }) },
		{ key: 'links-down', label: _('links down'), color: SUM, dash: true, values: b.map(function(s) { return s.lrx; }) },
		{ key: 'links-up', label: _('links up'), color: '#c0ca33', dash: true, values: b.map(function(s) { return s.ltx; }) }
	], fmtRate, { id: 'bonded' }) ];
	links.forEach(function(l) {
		var h = hist.push(prefix + '/' + l.name, { rx: l.rx_bps || 0, tx: l.tx_bps || 0, rtt: l.rtt_ms || 0 });
		out.push(chart(l.device ? '%s (%s)'.format(l.name, l.device) : l.name, [
			{ key: 'down', label: _('down'), color: DOWN, values: h.map(function(s) { return s.rx; }) },
			{ key: 'up', label: _('up'), color: UP, values: h.map(function(s) { return s.tx; }) }
		], fmtRate, { id: 'link-' + l.name }));
		out.push(chart(_('%s RTT').format(l.name), [
			{ key: 'rtt', label: _('RTT'), color: RTT, values: h.map(function(s) { return s.rtt; }) }
		], function(v) { return '%.1f ms'.format(v); }, { id: 'rtt-' + l.name }));
	});
	return E('div', { 'class': 'braid-graphs' }, out);
}

return baseclass.extend({
	callStatus: callStatus,
	callLink: callLink,
	callAccess: callAccess,
	POLL: POLL,
	text: text,
	rate: fmtRate,
	bytes: fmtBytes,
	age: fmtAge,
	badge: badge,
	chart: chart,
	History: History,
	working: working,

	style: function() { return E('style', [ STYLE ]); },

	// May this login call `object`/`method`? (What the ACL grants, asked of rpcd.)
	allowed: function(object, method) {
		return L.resolveDefault(callAccess('ubus', object, method), false);
	},

	// Shows an error the way LuCI apps do: a notification at the top of the view.
	error: function(msg) {
		ui.addNotification(null, E('p', [ String(msg && msg.message || msg) ]), 'error');
	},

	// A session: its state, bonded rates, the links table (with `actions(link)` in the last
	// column when given), graphs, users and classes.
	renderSession: function(sess, hist, opts) {
		opts = opts || {};
		var id = opts.id || 'braid', links = sess.links || [];
		var sumRx = 0, sumTx = 0;
		links.forEach(function(l) { sumRx += l.rx_bps || 0; sumTx += l.tx_bps || 0; });
		var up = links.filter(working).length;
		var summary = E('table', { 'class': 'table braid-summary' }, [
			E('tr', { 'class': 'tr' }, [ E('td', { 'class': 'td' }, [ opts.peerLabel || _('Peer') ]), E('td', { 'class': 'td' }, [ sess.peer ]) ]),
			E('tr', { 'class': 'tr' }, [ E('td', { 'class': 'td' }, [ _('Session') ]), E('td', { 'class': 'td' }, [ badge(sess.state, sess.established_s) ]) ]),
			E('tr', { 'class': 'tr' }, [ E('td', { 'class': 'td' }, [ _('Links working') ]), E('td', { 'class': 'td', 'id': id + '-working' }, [ _('%d of %d').format(up, links.length) ]) ]),
			E('tr', { 'class': 'tr' }, [ E('td', { 'class': 'td' }, [ _('Bonded') ]), E('td', { 'class': 'td', 'id': id + '-bonded' }, [ E('span', [
				_('down %s, up %s').format(fmtRate(sess.rx_bps), fmtRate(sess.tx_bps)), ' ',
				E('span', { 'class': 'braid-note' }, [ _('(links: down %s, up %s, with tunnel overhead, copies and resends)').format(fmtRate(sumRx), fmtRate(sumTx)) ])
			]) ]) ]),
			E('tr', { 'class': 'tr' }, [ E('td', { 'class': 'td' }, [ _('Packets') ]), E('td', { 'class': 'td' }, [
				_('%d sent, %d received, %d resent').format(sess.tx_packets, sess.rx_packets, sess.resent_packets) ]) ])
		]);
		var captions = [ _('Link'), opts.core ? _('Address') : _('Device'), _('State'), _('Role'), _('RTT'), _('Loss'),
			_('Down'), _('Up'), _('Estimate'), _('Quota') ];
		if (opts.actions) captions.push('');
		var t = new ui.Table(captions, { id: id + '-links', placeholder: E('em', [ _('No links') ]) });
		t.update(links.map(function(l) {
			var row = [
				text(l.name),
				opts.core ? E('span', [ l.address || '-', ' ', E('small', [ (l.transport || '').toUpperCase() ]) ]) : text(l.device || '-'),
				[ l.state, l.waiting ? E([], [ badge(l.state, l.state_s), E('div', { 'class': 'braid-note braid-waiting' }, [ l.waiting ]) ])
					: badge(l.state, l.state_s) ],
				role(l),
				[ l.rtt_ms, '%.1f ms (±%.1f)'.format(l.rtt_ms, l.rttvar_ms) ],
				[ l.loss_pct, '%.1f%%'.format(l.loss_pct) ],
				[ l.rx_bps, fmtRate(l.rx_bps) ],
				[ l.tx_bps, fmtRate(l.tx_bps) ],
				[ l.estimate_bps, E('span', { 'title': _('What the scheduler estimates the link carries') }, [ fmtRate(l.estimate_bps) ]) ],
				quota(l)
			];
			if (opts.actions) row.push(opts.actions(l, links));
			return row;
		}));
		return E('div', { 'class': 'braid-session', 'data-peer': sess.peer }, [
			summary,
			E('h4', [ _('Links') ]),
			t.render(),
			graphs(hist, id, sess),
			E('h4', [ _('Top users') ]),
			usersTable(id + '-users', sess.users),
			E('h4', [ _('Classes') ]),
			classesTable(id + '-classes', sess.classes)
		]);
	},

	dropsTable: function(drops, id, what) {
		var t = new ui.Table([ _('Reason'), what || _('Packets') ], { id: id || 'braid-drops', placeholder: E('em', [ _('None') ]) });
		t.update((drops || []).filter(function(d) { return d.count > 0; }).map(function(d) { return [ text(d.reason), d.count ]; }));
		return t.render();
	},

	notRunning: function(res) {
		return E('div', { 'class': 'alert-message warning' }, [
			E('h4', [ _('Braid is not running') ]),
			E('pre', { 'style': 'white-space:pre-wrap' }, [ (res && res.error) || '' ]),
			E('p', [ _('Enable it under Services > Braid > Settings, or run /etc/init.d/braid start.') ])
		]);
	}
});
