// Stand-in for luci-mod-status's Status > Overview page: loads every
// view/status/include/*.js (their names come from the page's env), and for each renders a
// section titled with the include's `title`, refreshed by polling its load() and render();
// a section whose render() gives null is hidden, as LuCI's overview does.
'use strict';
'require view';
'require dom';
'require poll';

return view.extend({
	load: function() {
		return Promise.all((L.env.includes || []).map(function(n) {
			return L.require('view.status.include.' + n).catch(function(e) { return { title: n, failed: e }; });
		}));
	},
	render: function(includes) {
		var rv = E('div', { 'class': 'includes' });
		includes.forEach(function(inc) {
			var body = E('div', { 'class': 'cbi-section-node' }, [ E('em', { 'class': 'spinning' }, [ _('Collecting data...') ]) ]);
			rv.appendChild(E('div', { 'class': 'cbi-section', 'data-include': inc.title }, [ E('h3', [ inc.title ]), body ]));
			if (inc.failed) { dom.content(body, E('pre', [ String(inc.failed) ])); return; }
			var refresh = function() {
				return Promise.resolve(inc.load()).then(function(data) {
					var content = inc.render(data);
					body.parentNode.classList[content == null ? 'add' : 'remove']('hidden');
					if (content != null) dom.content(body, content);
				});
			};
			refresh();
			poll.add(refresh);
		});
		return rv;
	},
	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
