'use strict';
'require view';
'require poll';
'require dom';
'require braid.common as common';

// On a core: one connected edge (?edge=<config peer name>): its session, links with the
// addresses they come from, rates and graphs, users and classes.

function edgeName() {
	return new URLSearchParams(window.location.search).get('edge') || '';
}

return view.extend({
	hist: new common.History(),

	load: function() {
		return common.callStatus();
	},

	renderEdge: function(res) {
		var name = edgeName(), out = [ common.style(), E('h2', [ _('Edge %s').format(name) ]),
			E('p', [ E('a', { 'href': L.url('admin/services/braid/status') }, [ _('« All edges') ]) ]) ];
		if (!res || !res.running) {
			out.push(common.notRunning(res));
			return E([], out);
		}
		var st = res.status || {};
		if (st.role != 'core') {
			out.push(E('p', [ E('em', [ _('This router is an edge: see Services > Braid > Status.') ]) ]));
			return E([], out);
		}
		var s = (st.sessions || []).filter(function(x) { return x.peer == name; })[0];
		if (!s)
			out.push(E('p', [ E('em', [ _('Edge %s is not connected.').format(name) ]) ]));
		else
			out.push(common.renderSession(s, this.hist, { id: 'braid-edge', core: true, peerLabel: _('Edge') }));
		return E([], out);
	},

	render: function(res) {
		poll.add(L.bind(function() {
			return common.callStatus().then(L.bind(function(r) {
				dom.content(document.querySelector('#braid-edge-page'), this.renderEdge(r));
			}, this));
		}, this), common.POLL);
		return E('div', { 'id': 'braid-edge-page' }, [ this.renderEdge(res) ]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
