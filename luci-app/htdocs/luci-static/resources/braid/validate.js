'use strict';
'require baseclass';

// The daemon's value rules (src/config/model.rs), with its messages: each function returns
// true or the message `braid` would print for that option. The one table both are tested
// against is tests/fixtures/config/values.json (cargo test --test config_values, and
// tests/luci/validate.test.js): change a rule there first.

var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
var U64_MAX = BigInt('18446744073709551615');

function chars(s) { return Array.from(s); }

// Only the start of something that might be a secret.
function redact(s) {
	var c = chars(s);
	return c.length <= 6 ? s : c.slice(0, 4).join('') + '...';
}

function splitNumber(s) {
	var m = /^[0-9.]*/.exec(s)[0];
	return [ m, s.substr(m.length).replace(/^\s+/, '') ];
}

// num (decimal, up to 9 fraction digits) times mult, rounded down; null if malformed or
// above 2^64-1.
function scale(num, mult) {
	var i = num.indexOf('.'), int = i < 0 ? num : num.substr(0, i), frac = i < 0 ? '' : num.substr(i + 1);
	if (int === '' || frac.length > 9 || !/^[0-9]*$/.test(frac) || /\.$/.test(num)) return null;
	var v = BigInt(int) * BigInt(mult) + (frac === '' ? BigInt(0) : BigInt(frac) * BigInt(mult) / (BigInt(10) ** BigInt(frac.length)));
	return v > U64_MAX ? null : v;
}

function ipv4(s) {
	return /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/.test(s);
}

function ipv6(s) {
	var halves = s.split('::');
	if (halves.length > 2) return false;
	var groups = function(h) { return h === '' ? [] : h.split(':'); };
	var head = groups(halves[0]), tail = halves.length == 2 ? groups(halves[1]) : [];
	var all = head.concat(tail), n = all.length;
	for (var i = 0; i < all.length; i++) {
		var last = (i == all.length - 1);
		if (last && all[i].indexOf('.') >= 0) {
			if (!ipv4(all[i])) return false;
			n++;
		}
		else if (!/^[0-9a-fA-F]{1,4}$/.test(all[i])) return false;
	}
	return halves.length == 2 ? n < 8 : n == 8;
}

function ip(s) { return ipv4(s) || ipv6(s); }

function range(lo, hi) {
	return function(v) {
		return /^[0-9]+$/.test(v) && BigInt(v) >= BigInt(lo) && BigInt(v) <= BigInt(hi)
			? true : "expected a number %d..%d, got '%s'".format(lo, hi, v);
	};
}

function bytes(v) {
	var bad = "expected a size like '20G', '500M', '4Gi' or plain bytes, got '%s'".format(v);
	var p = splitNumber(v.toLowerCase()), unit = p[1].replace(/b$/, '');
	var mult = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12, ki: 1024, mi: 1048576, gi: 1073741824, ti: 1099511627776 }[unit];
	if (mult == null) return [ null, bad ];
	var n = scale(p[0], mult);
	return n == null ? [ null, bad ] : [ n, true ];
}

return baseclass.extend({
	// Upload and download caps in bits/s: 20mbit, 512kbit, 1gbit, 1.5mbit, 100000.
	rate: function(v) {
		var bad = "expected a rate like '20mbit', '512kbit', '1gbit' or plain bits/s, got '%s'".format(v);
		var p = splitNumber(v.toLowerCase()), unit = p[1];
		if (/bps$/.test(unit) || /b\/s$/.test(unit))
			return "'%s': write rates in bits with 'kbit', 'mbit' or 'gbit' ('bps' is ambiguous)".format(v);
		var mult = { '': 1, bit: 1, k: 1e3, kbit: 1e3, m: 1e6, mbit: 1e6, g: 1e9, gbit: 1e9, t: 1e12, tbit: 1e12 }[unit];
		if (mult == null) return bad;
		return scale(p[0], mult) == null ? bad : true;
	},

	// A data allowance: 20G, 500M (powers of 1000), 4Gi (of 1024); not 0.
	quota: function(v) {
		var r = bytes(v);
		if (r[1] !== true) return r[1];
		return r[0] == BigInt(0) ? "a quota of 0 bytes: remove the option for no quota, or use role 'never'" : true;
	},

	// The daemon's memory budget: 16M, 512K, 1G (powers of 1024 however written), 4M..64G.
	memory: function(v) {
		var bad = "expected a memory size like '16M', '512K' or '1G', got '%s'".format(v);
		var p = splitNumber(v.toLowerCase()), unit = p[1].replace(/b$/, '').replace(/i$/, '');
		var shift = { '': 0, k: 10, m: 20, g: 30 }[unit];
		if (shift == null) return bad;
		var num = p[0], i = num.indexOf('.'), int = i < 0 ? num : num.substr(0, i), frac = i < 0 ? '' : num.substr(i + 1);
		if (int === '' || frac.length > 6 || !/^[0-9]*$/.test(frac) || /\.$/.test(num)) return bad;
		var m = BigInt(2) ** BigInt(shift);
		var n = BigInt(int) * m + (frac === '' ? BigInt(0) : BigInt(frac) * m / (BigInt(10) ** BigInt(frac.length)));
		if (n < BigInt(4194304) || n > BigInt(68719476736))
			return "'%s' is out of range: between '4M' and '64G' (the edge's default is '16M', the core's '64M')".format(v);
		return true;
	},

	// The size of a quota in bytes (null if not a size): to show what '20G' means.
	quotaBytes: function(v) { return bytes(v)[0]; },

	dscp: function(v) {
		var bad = "expected a DSCP value 0..63 or a name like 'EF', 'CS6', 'AF41', got '%s'".format(v);
		if (/^[0-9]+$/.test(v)) return +v < 64 ? true : bad;
		var u = v.toUpperCase();
		if (u == 'EF' || u == 'LE' || u == 'VA') return true;
		if (/^CS[0-7]$/.test(u)) return true;
		if (/^AF[1-4][1-3]$/.test(u)) return true;
		return bad;
	},

	// One src_port/dest_port entry: ports and ranges (80, 1000-2000, 1000:2000), commas between.
	ports: function(v) {
		var items = v.split(',');
		for (var i = 0; i < items.length; i++) {
			var s = items[i], bad = "expected a port 1..65535 or a range like '8000-8080', got '%s'".format(s);
			var num = function(t) { return /^[0-9]+$/.test(t) && +t > 0 && +t <= 65535 ? +t : null; };
			var m = /^([^-:]*)[-:](.*)$/.exec(s), lo, hi;
			if (m) { lo = num(m[1]); hi = lo == null ? null : num(m[2]); }
			else lo = hi = num(s);
			if (lo == null || hi == null) return bad;
			if (lo > hi) return "port range '%s' ends before it starts".format(s);
		}
		return true;
	},

	port: function(v) {
		return /^[0-9]+$/.test(v) && +v > 0 && +v <= 65535 ? true : "expected a port 1..65535, got '%s'".format(v);
	},

	// A public key as `braid pubkey` prints it: 32 bytes in standard base64 (44 characters).
	key: function(v) {
		var bad = "expected a 32-byte key in base64 (44 characters, as 'braid genkey' prints), got '%s'".format(redact(v));
		var t = v.trim();
		if (t.length != 44 || t.charAt(43) != '=' || t.charAt(42) == '=') return bad;
		for (var i = 0; i < 43; i++)
			if (B64.indexOf(t.charAt(i)) < 0) return bad;
		return (B64.indexOf(t.charAt(42)) & 3) ? bad : true;
	},

	cidr: function(v) {
		var bad = "expected an address or subnet like '192.168.1.0/24' or 'fd00::/64', got '%s'".format(v);
		var i = v.indexOf('/'), a = i < 0 ? v : v.substr(0, i), p = i < 0 ? null : v.substr(i + 1);
		if (!ip(a)) return bad;
		var max = ipv4(a) ? 32 : 128;
		if (p != null && !(/^[0-9]+$/.test(p) && +p <= max))
			return "expected a prefix length 0..%d after '/', got '%s'".format(max, v);
		return true;
	},

	mac: function(v) {
		var parts = v.split(/[:-]/);
		var ok = parts.length == 6 && parts.every(function(p) { return /^([0-9a-fA-F]{2}|\+[0-9a-fA-F])$/.test(p); });
		return ok ? true : "expected a MAC address like '02:00:00:aa:bb:cc', got '%s'".format(v);
	},

	host: function(v) {
		var ok = v !== '' && new TextEncoder().encode(v).length <= 253 && (ip(v) || /^[A-Za-z0-9._-]+$/.test(v));
		return ok ? true : "expected an IP address or host name like 'core.example.net', got '%s'".format(v);
	},

	ifname: function(v) {
		var ok = v !== '' && new TextEncoder().encode(v).length <= 15 && v != '.' && v != '..' && !/[\/:\s\x00-\x1f]/.test(v);
		return ok ? true : "expected an interface name of 1..15 characters without '/', ':' or spaces, got '%s'".format(v);
	},

	weight: range(1, 1000),
	priority: range(0, 7),
	mtu: range(1280, 9000),
	reset_day: range(1, 31),

	'class': function(v) {
		return /^[A-Za-z0-9_-]{1,32}$/.test(v) ? true
			: "expected a class name of letters, digits, '_' or '-' (at most 32), got '%s'".format(v);
	},

	// For form options: an empty value is "not set" (the option is removed), otherwise `kind`.
	optional: function(kind) {
		var self = this;
		return function(section_id, value) {
			return (value == null || value === '') ? true : self[kind](String(value));
		};
	}
});
