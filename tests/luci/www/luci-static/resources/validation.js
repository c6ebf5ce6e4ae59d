// Stand-in for LuCI's validation.js: the `datatype` expressions luci-app-braid's forms use
// (port, portrange, host, hostname, ipaddr, cidr, macaddr, uciname, range(a,b), min, max,
// maxlength(n), integer, uinteger, and(), or(), list()) and a validator that runs a datatype,
// then the option's own validate function, and marks the field invalid with the message.
'use strict';
'require baseclass';

function v4(s) {
	var m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
	return !!m && m.slice(1).every(function(x) { return +x <= 255; });
}
function v6(s) {
	if (!/^[0-9a-fA-F:.]+$/.test(s) || s.indexOf(':') < 0) return false;
	var dbl = s.split('::');
	if (dbl.length > 2) return false;
	var parts = s.replace('::', ':x:').split(':').filter(function(p) { return p !== ''; });
	return parts.length <= 8 && parts.every(function(p) { return p == 'x' || /^[0-9a-fA-F]{1,4}$/.test(p) || v4(p); });
}

var types = {
	integer: function(v) { return /^-?\d+$/.test(v) ? true : _('valid integer value'); },
	uinteger: function(v) { return /^\d+$/.test(v) ? true : _('positive integer value'); },
	port: function(v) { return /^\d+$/.test(v) && +v <= 65535 ? true : _('valid port value'); },
	portrange: function(v) {
		var m = /^(\d+)(?:[-:](\d+))?$/.exec(v);
		return m && +m[1] <= 65535 && (!m[2] || (+m[2] <= 65535 && +m[1] <= +m[2])) ? true : _('valid port or port range (port1-port2)');
	},
	ip4addr: function(v) { return v4(v) ? true : _('valid IPv4 address'); },
	ip6addr: function(v) { return v6(v) ? true : _('valid IPv6 address'); },
	ipaddr: function(v) { return v4(v) || v6(v) ? true : _('valid IP address'); },
	cidr: function(v) {
		var m = /^([^/]+)\/(\d+)$/.exec(v);
		return m && ((v4(m[1]) && +m[2] <= 32) || (v6(m[1]) && +m[2] <= 128)) ? true : _('valid IPv4 or IPv6 CIDR');
	},
	hostname: function(v) {
		return v.length <= 253 && /^[a-zA-Z0-9_]([a-zA-Z0-9_.-]*[a-zA-Z0-9_])?$/.test(v) ? true : _('valid hostname');
	},
	host: function(v) { return types.hostname(v) === true || types.ipaddr(v) === true ? true : _('valid hostname or IP address'); },
	macaddr: function(v) { return /^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/.test(v) ? true : _('valid MAC address'); },
	uciname: function(v) { return /^[a-zA-Z0-9_]+$/.test(v) ? true : _('valid UCI identifier'); },
	network: function(v) { return /^[a-zA-Z0-9_]+$/.test(v) ? true : _('valid UCI identifier'); },
	range: function(v, lo, hi) {
		return /^-?\d+(\.\d+)?$/.test(v) && +v >= +lo && +v <= +hi ? true : _('value between %f and %f').format(lo, hi);
	},
	min: function(v, lo) { return /^-?\d+(\.\d+)?$/.test(v) && +v >= +lo ? true : _('value greater or equal to %f').format(lo); },
	max: function(v, hi) { return /^-?\d+(\.\d+)?$/.test(v) && +v <= +hi ? true : _('value smaller or equal to %f').format(hi); },
	maxlength: function(v, n) { return v.length <= +n ? true : _('value with at most %d characters').format(n); },
	minlength: function(v, n) { return v.length >= +n ? true : _('value with at least %d characters').format(n); }
};

// Parses `name(arg, arg)` with nested and()/or()/list().
function compile(expr) {
	var m = /^([a-zA-Z0-9_]+)(?:\((.*)\))?$/.exec(String(expr).trim());
	if (!m || !(m[1] in types || m[1] == 'and' || m[1] == 'or' || m[1] == 'list'))
		throw new Error('Unknown datatype ' + expr);
	var args = [], depth = 0, cur = '';
	(m[2] || '').split('').forEach(function(c) {
		if (c == '(') depth++;
		if (c == ')') depth--;
		if (c == ',' && !depth) { args.push(cur.trim()); cur = ''; } else cur += c;
	});
	if (cur.trim() !== '') args.push(cur.trim());
	var name = m[1];
	if (name == 'and' || name == 'or') {
		var subs = args.map(compile);
		return function(v) {
			var errs = [];
			for (var i = 0; i < subs.length; i++) {
				var r = subs[i](v);
				if (name == 'or' && r === true) return true;
				if (name == 'and' && r !== true) return r;
				errs.push(r);
			}
			return name == 'and' ? true : errs.join(' ' + _('or') + ' ');
		};
	}
	if (name == 'list') {
		var sub = compile(args[0]);
		return function(v) {
			var items = L.toArray(v);
			for (var i = 0; i < items.length; i++) { var r = sub(items[i]); if (r !== true) return r; }
			return true;
		};
	}
	return function(v) { return types[name].apply(null, [ v ].concat(args)); };
}

var Validator = baseclass.extend({
	__init__: function(field, type, optional, vfunc) {
		this.field = field;
		this.optional = optional;
		this.vfunc = vfunc;
		this.check = type ? compile(type) : null;
		this.error = null;
	},
	validate: function() {
		var v = this.field.value != null ? String(this.field.value) : '';
		var res = true;
		if (v === '' && !this.optional) res = _('non-empty value');
		else if (v !== '' && this.check) res = this.check(v);
		if (res === true && typeof this.vfunc == 'function') {
			var r = this.vfunc(v);
			if (r !== true) { this.error = String(r); return this.mark(false); }
		}
		if (res !== true) { this.error = _('Expecting: %s').format(res); return this.mark(false); }
		this.error = null;
		return this.mark(true);
	},
	mark: function(ok) {
		this.field.classList[ok ? 'remove' : 'add']('cbi-input-invalid');
		this.field.dispatchEvent(new CustomEvent(ok ? 'validation-success' : 'validation-failure', { bubbles: true, detail: { message: this.error } }));
		return ok;
	}
});

return baseclass.extend({
	types: types,
	compile: compile,
	create: function(field, type, optional, vfunc) { return new Validator(field, type, optional, vfunc); }
});
