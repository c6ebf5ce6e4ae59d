// Stand-in for LuCI's uci.js: configurations loaded over ubus (`uci get`), changes staged in
// the browser (values / creates / changes / deletes, with LuCI's rules: a set of a value,
// even the same one, is a change; an unset of an option that is not there is nothing), sent
// by save() as `uci add/set/delete` and applied with `uci apply` + `uci confirm`.
'use strict';
'require rpc';
'require baseclass';

var callLoad = rpc.declare({ object: 'uci', method: 'get', params: [ 'config' ], expect: { values: { } }, reject: true });
var callAdd = rpc.declare({ object: 'uci', method: 'add', params: [ 'config', 'type', 'name', 'values' ], expect: { section: '' }, reject: true });
var callSet = rpc.declare({ object: 'uci', method: 'set', params: [ 'config', 'section', 'values' ], reject: true });
var callDelete = rpc.declare({ object: 'uci', method: 'delete', params: [ 'config', 'section', 'options' ], reject: true });
var callApply = rpc.declare({ object: 'uci', method: 'apply', params: [ 'timeout', 'rollback' ], reject: true });
var callConfirm = rpc.declare({ object: 'uci', method: 'confirm', reject: true });
var callChanges = rpc.declare({ object: 'uci', method: 'changes', expect: { changes: { } } });

return baseclass.extend({
	__init__: function() {
		this.state = { newidx: 0, values: {}, creates: {}, changes: {}, deletes: {} };
		this.loaded = {};
	},

	createSID: function(conf) {
		var v = this.state.values, n = this.state.creates, sid;
		do { sid = 'new%06x'.format(Math.floor(Math.random() * 0xFFFFFF)); }
		while ((n[conf] && n[conf][sid]) || (v[conf] && v[conf][sid]));
		return sid;
	},

	resolveSID: function(conf, sid) {
		if (typeof sid != 'string') return sid;
		var m = /^@([a-zA-Z0-9_-]+)\[(-?[0-9]+)\]$/.exec(sid);
		if (m) {
			var s = this.sections(conf, m[1]), i = +m[2];
			var x = s[i >= 0 ? i : s.length + i];
			return x ? x['.name'] : null;
		}
		return sid;
	},

	load: function(packages) {
		var self = this, pkgs = [], tasks = [];
		L.toArray(packages).forEach(function(p) {
			if (!self.state.values[p]) { pkgs.push(p); tasks.push(callLoad(p)); }
		});
		return Promise.all(tasks).then(function(responses) {
			for (var i = 0; i < responses.length; i++) {
				self.state.values[pkgs[i]] = responses[i];
				self.loaded[pkgs[i]] = true;
			}
			if (responses.length) document.dispatchEvent(new CustomEvent('uci-loaded'));
			return pkgs;
		});
	},

	unload: function(packages) {
		var self = this;
		L.toArray(packages).forEach(function(p) {
			delete self.state.values[p]; delete self.state.creates[p];
			delete self.state.changes[p]; delete self.state.deletes[p];
			delete self.loaded[p];
		});
	},

	add: function(conf, type, name) {
		var n = this.state.creates, sid = name || this.createSID(conf);
		n[conf] = n[conf] || {};
		n[conf][sid] = { '.type': type, '.name': sid, '.create': name, '.anonymous': !name, '.index': 1000 + this.state.newidx++ };
		return sid;
	},

	remove: function(conf, sid) {
		var v = this.state.values, n = this.state.creates, c = this.state.changes, d = this.state.deletes;
		if (n[conf] && n[conf][sid]) delete n[conf][sid];
		else if (v[conf] && v[conf][sid]) { d[conf] = d[conf] || {}; d[conf][sid] = true; }
		if (c[conf] && c[conf][sid]) delete c[conf][sid];
	},

	sections: function(conf, type, cb) {
		var sa = [], v = this.state.values[conf], n = this.state.creates[conf], c = this.state.changes[conf], d = this.state.deletes[conf];
		if (!v) return sa;
		for (var s in v)
			if (!d || d[s] !== true)
				if (!type || v[s]['.type'] == type)
					sa.push(Object.assign({}, v[s], c ? c[s] : null));
		if (n)
			for (var s in n)
				if (!type || n[s]['.type'] == type)
					sa.push(Object.assign({}, n[s]));
		sa.sort(function(a, b) { return a['.index'] - b['.index']; });
		for (var i = 0; i < sa.length; i++) sa[i]['.index'] = i;
		if (typeof cb == 'function') for (var i = 0; i < sa.length; i++) cb.call(this, sa[i], sa[i]['.name']);
		return sa;
	},

	get: function(conf, sid, opt) {
		var v = this.state.values, n = this.state.creates, c = this.state.changes, d = this.state.deletes;
		sid = this.resolveSID(conf, sid);
		if (sid == null) return null;
		if (n[conf] && n[conf][sid]) {
			if (opt == null) return n[conf][sid];
			return n[conf][sid][opt];
		}
		if (opt != null) {
			if (d[conf] && d[conf][sid]) {
				if (d[conf][sid] === true) return undefined;
				if (d[conf][sid].indexOf(opt) > -1) return undefined;
			}
			if (c[conf] && c[conf][sid] && c[conf][sid][opt] != null) return c[conf][sid][opt];
			if (v[conf] && v[conf][sid]) return v[conf][sid][opt];
			return undefined;
		}
		if (v[conf]) return v[conf][sid];
		return undefined;
	},

	set: function(conf, sid, opt, val) {
		var v = this.state.values, n = this.state.creates, c = this.state.changes, d = this.state.deletes;
		sid = this.resolveSID(conf, sid);
		if (sid == null || opt == null || opt.charAt(0) == '.') return;
		if (n[conf] && n[conf][sid]) {
			if (val != null) n[conf][sid][opt] = val;
			else delete n[conf][sid][opt];
		}
		else if (val != null && val !== '') {
			if (d[conf] && d[conf][sid] === true) return;
			if (!v[conf] || !v[conf][sid]) return;
			c[conf] = c[conf] || {};
			c[conf][sid] = c[conf][sid] || {};
			if (d[conf] && d[conf][sid]) d[conf][sid] = d[conf][sid].filter(function(o) { return o !== opt; });
			c[conf][sid][opt] = val;
		}
		else {
			if (!(v[conf] && v[conf][sid] && v[conf][sid].hasOwnProperty(opt)) &&
			    !(c[conf] && c[conf][sid] && c[conf][sid].hasOwnProperty(opt)))
				return;
			d[conf] = d[conf] || {};
			d[conf][sid] = d[conf][sid] || [];
			if (d[conf][sid] !== true) d[conf][sid].push(opt);
		}
	},

	unset: function(conf, sid, opt) { return this.set(conf, sid, opt, null); },

	get_first: function(conf, type, opt) {
		var s = this.sections(conf, type)[0];
		return s ? this.get(conf, s['.name'], opt) : null;
	},

	save: function() {
		var n = this.state.creates, c = this.state.changes, d = this.state.deletes, self = this, tasks = [], pkgs = {};
		for (var conf in d)
			for (var sid in d[conf]) {
				var o = d[conf][sid];
				if (o === true) tasks.push(callDelete(conf, sid, null));
				else if (o.length) tasks.push(callDelete(conf, sid, o));
				pkgs[conf] = true;
			}
		for (var conf in n)
			for (var sid in n[conf]) {
				var p = { config: conf, values: {} };
				for (var k in n[conf][sid]) {
					if (k == '.type') p.type = n[conf][sid][k];
					else if (k == '.create') p.name = n[conf][sid][k];
					else if (k.charAt(0) != '.') p.values[k] = n[conf][sid][k];
				}
				tasks.push(callAdd(p.config, p.type, p.name, p.values));
				pkgs[conf] = true;
			}
		for (var conf in c)
			for (var sid in c[conf]) {
				tasks.push(callSet(conf, sid, c[conf][sid]));
				pkgs[conf] = true;
			}
		return Promise.all(tasks).then(function() {
			var names = Object.keys(pkgs);
			self.unload(names);
			return self.load(names);
		});
	},

	apply: function(timeout) {
		var self = this, date = new Date();
		if (typeof timeout != 'number' || timeout < 1) timeout = 10;
		return callApply(timeout, true).then(function() { return callConfirm(); });
	},

	changes: function() { return callChanges(); }
});
