'use strict';
'require view';
'require rpc';
'require poll';
'require dom';
'require ui';

/*
What the backend (rpcd ucode luci.braid, method "status") answers: `braid status --json`
wrapped with whether the daemon answered at all.

{
	"running": true,
	"status": {
		"role": "edge",
		"version": "0.1.0",
		"uptime_s": 5400,
		"sessions": [ {
			"peer": "core.example.net",
			"state": "established",
			"established_s": 5390,
			"links": [ {
				"name": "wan", "id": 0, "device": "eth1", "state": "up", "role": "primary",
				"rtt_ms": 31.5, "rttvar_ms": 2.1, "loss_pct": 0.2,
				"tx_bps": 8200000, "rx_bps": 41000000, "pacing_bps": 20000000,
				"tx_bytes": 5100000000, "rx_bytes": 27000000000,
				"quota_bytes": null, "quota_used_bytes": 0
			} ],
			"users": [ { "address": "192.168.1.23", "tx_bytes": 1200000, "rx_bytes": 90000000, "flows": 14 } ],
			"classes": [ { "name": "realtime", "mode": "redundant", "priority": 7, "packets": 123456 } ],
			"tx_packets": 9000000, "rx_packets": 21000000, "resent_packets": 4100
		} ],
		"drops": [ { "reason": "replay", "count": 3 } ]
	}
}

or, when the daemon does not answer:

{ "running": false, "error": "braid is not running (no daemon on /var/run/braid.sock)" }
*/

var callStatus = rpc.declare({
	object: 'luci.braid',
	method: 'status'
});

var callLink = rpc.declare({
	object: 'luci.braid',
	method: 'link',
	params: [ 'name', 'up' ]
});

function bps(v) {
	return '%.2mbit/s'.format(+v || 0);
}

function bytes(v) {
	return '%1024.2mB'.format(+v || 0);
}

function duration(s) {
	s = +s || 0;
	var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
	return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + m + 'm';
}

function quota(l) {
	if (l.quota_bytes == null)
		return E('em', _('none'));
	var pct = l.quota_bytes > 0 ? 100 * l.quota_used_bytes / l.quota_bytes : 0;
	return '%s / %s (%.0f%%)'.format(bytes(l.quota_used_bytes), bytes(l.quota_bytes), pct);
}

function linkButton(l) {
	var up = (l.state == 'admin-down');
	return E('button', {
		'class': 'btn cbi-button ' + (up ? 'cbi-button-apply' : 'cbi-button-reset'),
		'click': ui.createHandlerFn(this, function() {
			return callLink(l.name, up).then(function(res) {
				if (!res || !res.ok)
					ui.addNotification(null, E('p', (res && res.error) || _('The daemon refused the request')));
			});
		})
	}, [ up ? _('Take in') : _('Take out') ]);
}

function table(id, headers, rows, empty) {
	var t = new ui.Table(headers, { id: id }, E('em', [ empty ]));
	t.update(rows);
	return t.render();
}

function renderSession(sess, i) {
	return E([], [
		E('h3', [ _('Session with %h').format(sess.peer), ' · ', sess.state, ' · ', duration(sess.established_s) ]),
		E('p', [ _('%d packets sent, %d received, %d resent').format(sess.tx_packets, sess.rx_packets, sess.resent_packets) ]),
		table('braid-links-' + i,
			[ _('Link'), _('Device'), _('State'), _('Role'), _('RTT'), _('Loss'), _('Upload'), _('Download'),
			  _('Pacing'), _('Sent'), _('Received'), _('Quota'), '' ],
			(sess.links || []).map(function(l) {
				return [ l.name, l.device, l.state, l.role,
					'%.1f ms (±%.1f)'.format(l.rtt_ms, l.rttvar_ms), '%.1f%%'.format(l.loss_pct),
					bps(l.tx_bps), bps(l.rx_bps), bps(l.pacing_bps), bytes(l.tx_bytes), bytes(l.rx_bytes),
					quota(l), linkButton(l) ];
			}), _('No links')),
		E('h4', [ _('Top users') ]),
		table('braid-users-' + i, [ _('Address'), _('Flows'), _('Sent'), _('Received') ],
			(sess.users || []).map(function(u) {
				return [ u.address, u.flows, bytes(u.tx_bytes), bytes(u.rx_bytes) ];
			}), _('No users')),
		E('h4', [ _('Classes') ]),
		table('braid-classes-' + i, [ _('Class'), _('Mode'), _('Priority'), _('Packets') ],
			(sess.classes || []).map(function(c) {
				return [ c.name, c.mode, c.priority, c.packets ];
			}), _('No classes'))
	]);
}

function renderStatus(res) {
	var out = [ E('h2', [ _('Braid') ]) ];

	if (!res || !res.running) {
		out.push(E('div', { 'class': 'alert-message warning' }, [
			E('p', [ _('Braid is not running.') ]),
			E('pre', [ (res && res.error) || '' ]),
			E('p', [ _('Enable it under Services > Braid > Settings, or run /etc/init.d/braid start.') ])
		]));
		return E([], out);
	}

	var st = res.status || {};
	out.push(E('p', [ _('Role %h, version %h, up %s').format(st.role, st.version, duration(st.uptime_s)) ]));
	(st.sessions || []).forEach(function(s, i) { out.push(renderSession(s, i)); });
	if (!(st.sessions || []).length)
		out.push(E('p', [ E('em', [ _('No session yet: the core has not answered.') ]) ]));
	out.push(E('h4', [ _('Dropped or rejected packets') ]));
	out.push(table('braid-drops', [ _('Reason'), _('Packets') ],
		(st.drops || []).map(function(d) { return [ d.reason, d.count ]; }), _('None')));
	return E([], out);
}

return view.extend({
	load: function() {
		return callStatus();
	},

	render: function(res) {
		poll.add(function() {
			return callStatus().then(function(r) {
				dom.content(document.querySelector('#braid-status'), renderStatus(r));
			});
		}, 5);
		return E('div', { 'id': 'braid-status' }, [ renderStatus(res) ]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
