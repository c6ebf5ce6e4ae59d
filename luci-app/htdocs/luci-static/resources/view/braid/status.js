'use strict';
'require view';
'require poll';
'require dom';
'require ui';
'require braid.common as common';

/*
What the backend (rpcd ucode luci.braid, method "status") answers: `braid status --json`
wrapped with whether the daemon answered at all. The full samples, which the daemon's tests
hold it to, are tests/fixtures/status/edge.json and core.json.

{
	"running": true,
	"status": {
		"role": "edge", "version": "0.1.0", "uptime_s": 5400,
		"waiting": "waiting for the address of core_host 'core.example.net' ...",  (only while it waits)
		"sessions": [ {
			"peer": "core.example.net:51830", "state": "established", "established_s": 5390,
			"tx_bps": 24705788, "rx_bps": 20673025, "tx_bytes": 15202623, "rx_bytes": 13851483,
			"links": [ {
				"name": "wan", "id": 0, "device": "eth1", "address": null, "transport": "udp",
				"state": "up", "state_s": 5390, "role": "primary", "over_quota": false,
				"waiting": "waiting for device 'wwan0' to appear",  (state "waiting" only)
				"rtt_ms": 49.2, "rttvar_ms": 0.8, "loss_pct": 0.0,
				"tx_bps": 19134449, "rx_bps": 17862860, "estimate_bps": 24673720, "pacing_bps": 27757928,
				"tx_bytes": 5100000000, "rx_bytes": 27000000000,
				"cwnd_bytes": 194171, "inflight_bytes": 122209, "queued_bytes": 0,
				"quota_bytes": null, "quota_used_bytes": 0
			} ],
			"users": [ { "address": "192.168.1.23", "tx_bytes": 1200000000, "rx_bytes": 9000000000, "flows": 14 } ],
			"classes": [ { "name": "realtime", "mode": "redundant", "priority": 7, "packets": 123456 } ],
			"tx_packets": 14875, "rx_packets": 14272, "resent_packets": 0, "queued_bytes": 0,
			"reorder_timeouts": 3, "reorder_wait_ms": 61.2, "packed_packets": 14868,
			"packed_saved_bytes": 401412, "unpack_errors": 0
		} ],
		"drops": [ { "reason": "given up after resends", "count": 2 } ],
		"refusals": [ { "reason": "handshakes: the edge's key is in no config peer", "count": 3 } ]
	}
}

On a core, each session is one edge (peer: its config peer name), and each link has the
edge's "address" ("198.51.100.7:54721") instead of a "device"; "refused" counts the client
packets its forward policy refused, by reason (in all, and per session). When the daemon does not
answer:

{ "running": false, "error": "braid is not running (no daemon on /var/run/braid.sock)" }

Rates are bits per second measured by the daemon over the last second or two (tx: sent, rx:
received; estimate_bps is the scheduler's estimate), sizes are bytes, *_s are seconds.
*/

return view.extend({
	hist: new common.History(),

	load: function() {
		return Promise.all([
			common.callStatus(),
			common.allowed('luci.braid', 'link')
		]);
	},

	// Take a link out (or back in); taking out the last working link is confirmed first. The
	// page shows the result at once: it asks for the status again instead of waiting to poll.
	handleLink: function(link, links, ev) {
		var up = (link.state == 'admin-down');
		var others = links.filter(function(l) { return l !== link && common.working(l); });
		var act = L.bind(function() {
			return common.callLink(link.name, up).then(L.bind(function(res) {
				if (!res || !res.ok)
					common.error((res && res.error) || _('The daemon refused to take %s %s').format(link.name, up ? _('in') : _('out')));
				return this.refresh();
			}, this)).catch(L.bind(function(e) {
				common.error(e);
				return this.refresh();
			}, this));
		}, this);
		if (up || others.length || !common.working(link))
			return act();
		return new Promise(function(resolve) {
			ui.showModal(_('Take out the last working link?'), [
				E('p', [ _('%s is the only link that works now. Taking it out stops the bonded tunnel: clients fall back to the plain uplink until a link is back or you take it in again.').format(link.name) ]),
				E('div', { 'class': 'right' }, [
					E('button', { 'class': 'cbi-button', 'click': function() { ui.hideModal(); resolve(); } }, [ _('Cancel') ]), ' ',
					E('button', { 'class': 'cbi-button cbi-button-negative', 'click': function() { ui.hideModal(); resolve(act()); } }, [ _('Take out') ])
				])
			]);
		});
	},

	linkButton: function(link, links) {
		var up = (link.state == 'admin-down');
		return E('button', {
			'class': 'btn cbi-button ' + (up ? 'cbi-button-apply' : 'cbi-button-reset'),
			'data-link': link.name,
			'click': ui.createHandlerFn(this, 'handleLink', link, links)
		}, [ up ? _('Take in') : _('Take out') ]);
	},

	renderEdges: function(st) {
		var t = new ui.Table([ _('Edge'), _('Session'), _('Links working'), _('Down'), _('Up'), _('Users'), '' ],
			{ id: 'braid-edges', placeholder: E('em', [ _('No edge connected') ]) });
		t.update((st.sessions || []).map(function(s) {
			var links = s.links || [];
			return [
				common.text(s.peer),
				[ s.state, common.badge(s.state, s.established_s) ],
				'%d / %d'.format(links.filter(common.working).length, links.length),
				[ s.rx_bps, common.rate(s.rx_bps) ],
				[ s.tx_bps, common.rate(s.tx_bps) ],
				(s.users || []).length,
				E('a', { 'class': 'btn cbi-button', 'href': L.url('admin/services/braid/edge') + '?edge=' + encodeURIComponent(s.peer) }, [ _('Details') ])
			];
		}));
		return t.render();
	},

	renderStatus: function(res) {
		var out = [ common.style(), E('h2', [ _('Braid') ]) ];
		if (!res || !res.running) {
			out.push(common.notRunning(res));
			return E([], out);
		}
		var st = res.status || {}, self = this, core = (st.role == 'core');
		out.push(E('p', [ core ? _('Core, version %s, up %s').format(st.version, common.age(st.uptime_s))
			: _('Edge, version %s, up %s').format(st.version, common.age(st.uptime_s)) ]));
		// What the edge waits for before it can bond (the core's address, a link's device).
		if (st.waiting)
			out.push(E('p', { 'class': 'alert-message warning braid-waiting' }, [ st.waiting ]));
		if (core) {
			out.push(E('h3', [ _('Edges') ]));
			out.push(this.renderEdges(st));
			var total = { peer: _('all edges'), state: 'established', links: [], rx_bps: 0, tx_bps: 0 };
			(st.sessions || []).forEach(function(s) { total.rx_bps += s.rx_bps || 0; total.tx_bps += s.tx_bps || 0; });
			out.push(common.chart(_('All edges'), [
				{ key: 'down', label: _('down'), color: '#1565c0', values: this.hist.push('core/total', total).map(function(s) { return s.rx_bps; }) },
				{ key: 'up', label: _('up'), color: '#2e7d32', values: this.hist.get('core/total').map(function(s) { return s.tx_bps; }) }
			], common.rate, { id: 'core-total' }));
		}
		else {
			(st.sessions || []).forEach(function(s, i) {
				out.push(E('h3', [ _('Session with %s').format(s.peer) ]));
				out.push(common.renderSession(s, self.hist, {
					id: 'braid-s' + i,
					peerLabel: _('Core'),
					actions: self.canLink ? L.bind(self.linkButton, self) : null
				}));
			});
			if (!(st.sessions || []).length)
				out.push(E('p', [ E('em', [ _('No session yet: the core has not answered.') ]) ]));
		}
		out.push(E('h4', [ _('Dropped or rejected packets') ]));
		out.push(common.dropsTable(st.drops));
		// What the daemon refused on purpose: handshakes and connections over a limit or from
		// unknown keys; on a core, client packets its forward policy does not let through.
		out.push(E('h4', [ _('Refused handshakes and connections') ]));
		out.push(common.dropsTable(st.refusals, 'braid-refusals', _('Count')));
		if (core) {
			out.push(E('h4', [ _('Refused by the forward policy') ]));
			out.push(common.dropsTable(st.refused, 'braid-refused'));
		}
		return E([], out);
	},

	refresh: function() {
		return common.callStatus().then(L.bind(function(r) {
			dom.content(document.querySelector('#braid-status'), this.renderStatus(r));
		}, this)).catch(function(e) { common.error(e); });
	},

	render: function(data) {
		this.canLink = data[1];
		poll.add(L.bind(this.refresh, this), common.POLL);
		return E('div', { 'id': 'braid-status' }, [ this.renderStatus(data[0]) ]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
