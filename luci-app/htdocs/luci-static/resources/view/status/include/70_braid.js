'use strict';
'require baseclass';
'require braid.common as common';

// Status > Overview: the bonded tunnel at a glance (session state, links working, bonded
// rates), refreshed with the overview page; Services > Braid has the details.

return baseclass.extend({
	title: _('Braid'),

	load: function() {
		return common.allowed('luci.braid', 'status').then(function(ok) {
			return ok ? L.resolveDefault(common.callStatus(), null) : false;
		});
	},

	// Nothing (the section stays hidden) for a login the ACL does not let see Braid.
	render: function(res) {
		if (res === false)
			return null;
		var link = E('a', { 'href': L.url('admin/services/braid/status') }, [ _('Details') ]);
		if (!res || !res.running)
			return E('div', { 'class': 'braid-overview' }, [ common.style(), common.badge('stopped'), ' ', E('span', [ (res && res.error) || _('No answer from the Braid backend') ]), ' ', link ]);
		var st = res.status || {}, rows = [], sessions = st.sessions || [];
		if (st.role == 'core') {
			var rx = 0, tx = 0;
			sessions.forEach(function(s) { rx += s.rx_bps || 0; tx += s.tx_bps || 0; });
			rows.push([ _('Edges connected'), '%d'.format(sessions.filter(function(s) { return s.state == 'established'; }).length) ]);
			rows.push([ _('Traffic'), _('down %s, up %s').format(common.rate(rx), common.rate(tx)) ]);
		}
		else {
			var s = sessions[0];
			if (!s)
				rows.push([ _('Session'), E('em', [ st.waiting || _('no session yet') ]) ]);
			else {
				var links = s.links || [], working = links.filter(common.working);
				rows.push([ _('Session'), E([], [ common.badge(s.state, s.established_s), ' ', s.peer ]) ]);
				rows.push([ _('Links working'), E('span', { 'title': working.map(function(l) { return l.name; }).join(', ') },
					[ _('%d of %d').format(working.length, links.length), ' ', E('span', { 'class': 'braid-note' },
						[ working.map(function(l) { return l.name; }).join(', ') ]) ]) ]);
				rows.push([ _('Bonded'), _('down %s, up %s').format(common.rate(s.rx_bps), common.rate(s.tx_bps)) ]);
			}
		}
		return E('div', { 'class': 'braid-overview' }, [
			common.style(),
			E('table', { 'class': 'table braid-summary' }, rows.map(function(r) {
				return E('tr', { 'class': 'tr' }, [ E('td', { 'class': 'td left', 'width': '33%' }, [ r[0] ]), E('td', { 'class': 'td left' }, [ r[1] ]) ]);
			})),
			link
		]);
	}
});
