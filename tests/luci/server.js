// The test server: serves luci-app-braid's files and the LuCI stand-in (www/), a page per
// menu node, and an rpcd/ubus stand-in that enforces the ACL files the way rpcd and uhttpd do.
//
// ACLs: a login is a list of ACL groups with a level (read or write). The groups come from
// acl/luci-base.json (what luci-base grants every login, see README) and the app's
// root/usr/share/rpcd/acl.d/*.json. A ubus call whose object/method the login's groups do not
// grant is answered with JSON-RPC error -32002 "Access denied" (uhttpd); `uci` calls on a config
// the groups do not grant for reading (get, changes) or writing (set, add, delete, order, rename,
// apply) answer ubus status 6, permission denied (rpcd's uci plugin). Every call is recorded
// with whether it was allowed, so tests can derive the grants the views need.
//
// uci: the committed configs, and per session the staged changes (rpcd's per-session delta),
// which `uci get` shows merged, `uci changes` lists, and `uci apply` commits; apply then runs
// what the app's ucitrack file names (recorded as "/etc/init.d/<init> reload").
//
// luci.braid: the app's real rpcd ucode backend (root/usr/share/rpcd/ucode/luci.braid), run
// here with stand-ins for the few ucode builtins it uses and a stand-in `braid` command
// (stub-braid.js) that answers from tests/fixtures/status/*.json.
'use strict';

const http = require('http');
const fs = require('fs');
const path = require('path');
const os = require('os');
const cp = require('child_process');

const ROOT = path.resolve(__dirname, '../..');

function readJSON(p) { return JSON.parse(fs.readFileSync(p, 'utf8')); }

// ------------------------------------------------------------------ UCI text
// Enough of the UCI syntax for the test configs: config/option/list lines, quotes, comments.
function parseUci(text) {
	const sections = [];
	let cur = null, anon = 0;
	const words = (line) => {
		const out = [];
		const re = /'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g;
		let m;
		while ((m = re.exec(line)) != null) out.push(m[1] ?? m[2] ?? m[3]);
		return out;
	};
	for (const raw of text.split('\n')) {
		const line = raw.replace(/^\s+/, '');
		if (line === '' || line.startsWith('#')) continue;
		const w = words(line);
		if (w[0] === 'config') {
			cur = { '.type': w[1], '.name': w[2] || `cfg${(anon++).toString(16).padStart(6, '0')}`, '.anonymous': !w[2] };
			sections.push(cur);
		}
		else if (w[0] === 'option' && cur) cur[w[1]] = w[2] ?? '';
		else if (w[0] === 'list' && cur) (cur[w[1]] = Array.isArray(cur[w[1]]) ? cur[w[1]] : []).push(w[2] ?? '');
	}
	return sections;
}

function writeUci(sections) {
	const q = (v) => `'${String(v).replace(/'/g, "'\\''")}'`;
	return sections.map((s) => {
		let out = `config ${s['.type']}${s['.anonymous'] ? '' : ' ' + q(s['.name'])}\n`;
		for (const k of Object.keys(s)) {
			if (k.startsWith('.')) continue;
			if (Array.isArray(s[k])) for (const v of s[k]) out += `\tlist ${k} ${q(v)}\n`;
			else out += `\toption ${k} ${q(s[k])}\n`;
		}
		return out;
	}).join('\n');
}

// ------------------------------------------------------------------ ACL
function globMatch(pattern, s) {
	const re = new RegExp('^' + pattern.split('*').map((x) => x.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$');
	return re.test(s);
}

function loadAcls(appDir) {
	const groups = Object.assign({}, readJSON(path.join(__dirname, 'acl/luci-base.json')));
	const dir = path.join(appDir, 'root/usr/share/rpcd/acl.d');
	for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : [])
		if (f.endsWith('.json')) Object.assign(groups, readJSON(path.join(dir, f)));
	return groups;
}

// A login: { groups: { name: 'read' | 'write' } }. rpcd: a group granted at 'write' gives its
// read and write lists, at 'read' only its read list.
function grants(acls, login, scope) {
	const out = [];
	for (const [g, level] of Object.entries(login.groups)) {
		const acl = acls[g];
		if (!acl) continue;
		for (const lvl of level === 'write' ? [ 'read', 'write' ] : [ 'read' ]) {
			const part = acl[lvl] && acl[lvl][scope];
			if (part) out.push({ lvl, part });
		}
	}
	return out;
}

function ubusAllowed(acls, login, object, method) {
	return grants(acls, login, 'ubus').some(({ part }) =>
		Object.entries(part).some(([obj, methods]) => globMatch(obj, object) && methods.some((m) => globMatch(m, method))));
}

function uciAllowed(acls, login, config, perm) {
	return grants(acls, login, 'uci').some(({ lvl, part }) =>
		lvl === perm && part.some((c) => globMatch(c, config)));
}

// ------------------------------------------------------------------ the world a test runs in
class World {
	constructor(appDir) {
		this.appDir = appDir;
		this.acls = loadAcls(appDir);
		this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'braid-luci-'));
		this.reset({});
	}

	// opts: { braid: uci text, network: uci text, status: 'edge'|'core'|'down'|'garbage',
	//         statusPatch: {fields of every session}, statusTop: {fields of the status itself},
	//         logins: {sid: {groups}}, features: {}, netdevs: {}, ifaces: [], wifi: bool }
	reset(opts) {
		this.calls = [];
		this.actions = [];
		this.uci = {};
		this.staged = {};
		this.opts = opts;
		for (const [name, text] of Object.entries({ braid: opts.braid || '', network: opts.network || NETWORK, wireless: WIRELESS, luci: "config core 'main'\n\toption lang 'auto'\n" }))
			this.uci[name] = parseUci(text);
		fs.rmSync(path.join(this.tmp, 'etc'), { recursive: true, force: true });
		fs.mkdirSync(path.join(this.tmp, 'etc/braid'), { recursive: true });
		for (const [p, content] of Object.entries(opts.files || {})) {
			const full = path.join(this.tmp, p);
			fs.mkdirSync(path.dirname(full), { recursive: true });
			fs.writeFileSync(full, content, { mode: 0o600 });
		}
		fs.writeFileSync(path.join(this.tmp, 'stub-state.json'), JSON.stringify({ status: opts.status || 'edge', patch: opts.statusPatch || null, top: opts.statusTop || null, vary: !!opts.vary, down: [], log: [] }));
		this.logins = Object.assign({
			operator: { groups: { 'luci-base': 'write', 'unauthenticated': 'read', 'luci-app-braid': 'write' } },
			viewer: { groups: { 'luci-base': 'read', 'unauthenticated': 'read', 'luci-app-braid': 'read' } },
			nobody: { groups: { 'luci-base': 'write', 'unauthenticated': 'read' } }
		}, opts.logins || {});
	}

	stub() { return JSON.parse(fs.readFileSync(path.join(this.tmp, 'stub-state.json'), 'utf8')); }

	config(name) { return this.uci[name]; }

	// The config as `uci get` shows it to `sid`: committed plus that session's staged changes.
	view(sid, name) {
		const secs = JSON.parse(JSON.stringify(this.uci[name] || []));
		for (const ch of (this.staged[sid] || {})[name] || []) applyChange(secs, ch);
		return secs;
	}

	call(sid, object, method, args) {
		const login = this.logins[sid];
		const rec = { sid, object, method, args, allowed: true };
		this.calls.push(rec);
		if (!login && !(object === 'session' && method === 'access')) {
			rec.allowed = false;
			return { error: { code: -32002, message: 'Access denied' } };
		}
		if (object !== 'session' && !ubusAllowed(this.acls, login, object, method)) {
			rec.allowed = false;
			return { error: { code: -32002, message: 'Access denied' } };
		}
		const r = this.dispatch(sid, login, object, method, args || {}, rec);
		rec.result = r;
		return { result: r };
	}

	dispatch(sid, login, object, method, args, rec) {
		const deny = () => { rec.allowed = false; return [ 6 ]; };
		if (object === 'session' && method === 'access') {
			if (!login) return [ 0, { access: false } ];
			const ok = args.scope === 'uci' ? uciAllowed(this.acls, login, args.object, args['function'])
				: args.scope === 'ubus' ? ubusAllowed(this.acls, login, args.object, args['function']) : false;
			return [ 0, { access: ok } ];
		}
		if (object === 'uci') {
			const need = [ 'get', 'changes', 'state', 'configs' ].includes(method) ? 'read' : 'write';
			if (method === 'changes') {
				const out = {};
				for (const [c, chs] of Object.entries(this.staged[sid] || {}))
					if (uciAllowed(this.acls, login, c, 'read') && chs.length) out[c] = chs;
				return [ 0, { changes: out } ];
			}
			if (method === 'apply' || method === 'confirm' || method === 'rollback') {
				if (method !== 'apply') return [ 0 ];
				const st = this.staged[sid] || {};
				for (const c of Object.keys(st)) {
					if (!uciAllowed(this.acls, login, c, 'write')) return deny();
				}
				for (const [c, chs] of Object.entries(st)) {
					if (!chs.length) continue;
					for (const ch of chs) applyChange(this.uci[c] = this.uci[c] || [], ch);
					this.actions.push(`commit ${c}`);
					for (const t of ucitrack(this.appDir))
						if (t.config === c && t.init) this.actions.push(`/etc/init.d/${t.init} reload`);
				}
				this.staged[sid] = {};
				return [ 0 ];
			}
			if (!args.config || !uciAllowed(this.acls, login, args.config, need)) return deny();
			if (method === 'get') {
				const values = {};
				this.view(sid, args.config).forEach((s, i) => { values[s['.name']] = Object.assign({ '.index': i }, s); });
				return [ 0, { values } ];
			}
			const st = (this.staged[sid] = this.staged[sid] || {});
			const chs = (st[args.config] = st[args.config] || []);
			if (method === 'set') {
				for (const [k, v] of Object.entries(args.values || {})) chs.push([ 'set', args.section, k, v ]);
				return [ 0 ];
			}
			if (method === 'add') {
				const name = args.name || `cfg${Math.floor(Math.random() * 0xffffff).toString(16)}`;
				chs.push([ 'add', name, args.type ]);
				for (const [k, v] of Object.entries(args.values || {})) chs.push([ 'set', name, k, v ]);
				return [ 0, { section: name } ];
			}
			if (method === 'delete') {
				if (Array.isArray(args.options)) for (const o of args.options) chs.push([ 'remove', args.section, o ]);
				else if (args.option) chs.push([ 'remove', args.section, args.option ]);
				else chs.push([ 'remove', args.section ]);
				return [ 0 ];
			}
			if (method === 'order' || method === 'rename') return [ 0 ];
			return [ 3 ];
		}
		if (object === 'luci.braid') return this.backend(method, args);
		if (object === 'luci' && method === 'getFeatures') return [ 0, Object.assign({ wifi: !!this.opts.wifi }, this.opts.features || {}) ];
		if (object === 'network.interface' && method === 'dump') return [ 0, { 'interface': this.opts.ifaces || IFACES } ];
		if (object === 'luci-rpc' && method === 'getNetworkDevices') return [ 0, this.opts.netdevs || NETDEVS ];
		if (object === 'luci-rpc' && method === 'getBoardJSON') return [ 0, { model: { id: 'test', name: 'Test router' }, network: { wan: { device: 'eth1' } } } ];
		if (object === 'luci-rpc' && method === 'getWirelessDevices') return [ 0, {} ];
		if (object === 'luci-rpc' && method === 'getHostHints') return [ 0, {} ];
		if (object === 'network' && method === 'get_proto_handlers') return [ 0, { dhcp: {}, static: {}, pppoe: {}, qmi: {} } ];
		return [ 3 ];
	}

	// The app's rpcd ucode backend, loaded afresh for each call (as rpcd would for a new
	// process), with ucode's builtins as stand-ins and paths moved into this world's tmp.
	backend(method, args) {
		const src0 = fs.readFileSync(path.join(this.appDir, 'root/usr/share/rpcd/ucode/luci.braid'), 'utf8');
		const stub = path.join(__dirname, 'stub-braid.sh');
		const src = src0.replace(/^import .*$/mg, '')
			.replace(/\/usr\/sbin\/braid/g, stub)
			.replace(/(['"`])\/etc\/braid\//g, `$1${this.tmp}/etc/braid/`);
		const world = this;
		const cursor = () => ({
			load: () => true,
			unload: () => true,
			get: (conf, sid, opt) => {
				const s = (world.uci[conf] || []).find((x) => x['.name'] === sid);
				if (!s) return null;
				return opt == null ? s['.type'] : (s[opt] ?? null);
			},
			set: (conf, sid, opt, val) => {
				const s = (world.uci[conf] || []).find((x) => x['.name'] === sid);
				if (s) s[opt] = val;
				world.actions.push(`backend: uci set ${conf}.${sid}.${opt}`);
				return true;
			},
			delete: (conf, sid, opt) => {
				const s = (world.uci[conf] || []).find((x) => x['.name'] === sid);
				if (s) delete s[opt];
				world.actions.push(`backend: uci delete ${conf}.${sid}.${opt}`);
				return true;
			},
			commit: (conf) => { world.actions.push(`backend: uci commit ${conf}`); return true; }
		});
		const env = Object.assign({}, process.env, { BRAID_STUB_STATE: path.join(this.tmp, 'stub-state.json'), BRAID_STUB_FIXTURES: path.join(ROOT, 'tests/fixtures/status') });
		const builtins = {
			cursor,
			popen: (cmd, mode) => {
				const r = cp.spawnSync('/bin/sh', [ '-c', cmd ], { encoding: 'utf8', env });
				world.actions.push(`backend: ${cmd.replace(world.tmp, '<tmp>').replace(stub, 'braid')}`);
				return { read: () => r.stdout, close: () => r.status };
			},
			replace: (s, pat, rep) => typeof pat == 'string' ? String(s).split(pat).join(rep) : String(s).replace(new RegExp(pat.source, 'g'), rep),
			trim: (s) => s == null ? s : String(s).trim(),
			json: (s) => JSON.parse(s),
			match: (s, re) => s == null ? null : String(s).match(re),
			type: (v) => v == null ? null : Array.isArray(v) ? 'array' : typeof v == 'boolean' ? 'bool' : typeof v == 'number' ? (Number.isInteger(v) ? 'int' : 'double') : typeof v == 'string' ? 'string' : typeof v == 'function' ? 'function' : 'object',
			length: (v) => v == null ? null : typeof v == 'object' && !Array.isArray(v) ? Object.keys(v).length : v.length,
			substr: (s, off, len) => String(s).substr(off, len),
			index: (s, n) => s == null ? -1 : s.indexOf(n),
			split: (s, sep) => String(s).split(sep),
			sprintf: (fmt, ...a) => fmt.replace(/%[sd]/g, () => String(a.shift())),
		};
		const fn = new Function(...Object.keys(builtins), src);
		const methods = fn(...Object.values(builtins))['luci.braid'];
		if (!methods[method]) return [ 3 ];
		return [ 0, methods[method].call({ args }) ];
	}
}

function applyChange(secs, ch) {
	const [ op, sid, a, b ] = ch;
	let s = secs.find((x) => x['.name'] === sid);
	if (op === 'add') { if (!s) secs.push({ '.type': a, '.name': sid, '.anonymous': /^cfg/.test(sid) }); return; }
	if (!s) return;
	if (op === 'set') s[a] = Array.isArray(b) ? b.slice() : String(b);
	if (op === 'remove') {
		if (a == null) secs.splice(secs.indexOf(s), 1);
		else delete s[a];
	}
}

function ucitrack(appDir) {
	const dir = path.join(appDir, 'root/usr/share/ucitrack');
	return (fs.existsSync(dir) ? fs.readdirSync(dir) : []).filter((f) => f.endsWith('.json')).map((f) => readJSON(path.join(dir, f)));
}

const NETWORK = `config interface 'loopback'
	option device 'lo'
	option proto 'static'

config interface 'lan'
	option device 'br-lan'
	option proto 'static'

config interface 'wan'
	option device 'eth1'
	option proto 'dhcp'

config interface 'lte'
	option device 'wwan0'
	option proto 'qmi'
	option password 'carrier-secret'
`;
const WIRELESS = "config wifi-iface 'default_radio0'\n\toption key 'wifi-secret'\n";
const IFACES = [
	{ 'interface': 'lan', up: true, proto: 'static', device: 'br-lan', l3_device: 'br-lan' },
	{ 'interface': 'wan', up: true, proto: 'dhcp', device: 'eth1', l3_device: 'eth1' },
	{ 'interface': 'lte', up: true, proto: 'qmi', device: 'wwan0', l3_device: 'wwan0' },
	{ 'interface': 'sat', up: false, proto: 'dhcp', device: 'eth2', l3_device: 'eth2' }
];
const NETDEVS = {
	'lo': { up: true, devtype: 'loopback' },
	'br-lan': { up: true, bridge: true, devtype: 'bridge', mac: '02:00:00:00:00:01' },
	'eth0': { up: true, devtype: 'ethernet', mac: '02:00:00:00:00:02' },
	'eth1': { up: true, devtype: 'ethernet', mac: '02:00:00:00:00:03' },
	'eth2': { up: false, devtype: 'ethernet', mac: '02:00:00:00:00:04' },
	'wwan0': { up: true, devtype: 'ethernet', mac: '02:00:00:00:00:05' }
};

// ------------------------------------------------------------------ HTTP
const TYPES = { '.js': 'application/javascript', '.css': 'text/css', '.html': 'text/html', '.svg': 'image/svg+xml', '.png': 'image/png', '.json': 'application/json' };

function menuNodes(appDir) {
	const nodes = {};
	const dir = path.join(appDir, 'root/usr/share/luci/menu.d');
	for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) Object.assign(nodes, readJSON(path.join(dir, f)));
	nodes['admin/status/overview'] = { title: 'Overview', action: { type: 'view', path: 'status/index' } };
	return nodes;
}

function includes(appDir) {
	const dir = path.join(appDir, 'htdocs/luci-static/resources/view/status/include');
	return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.js')).map((f) => f.replace(/\.js$/, '')).sort() : [];
}

function page(world, reqPath, query) {
	const nodes = menuNodes(world.appDir);
	let node = nodes[reqPath], p = reqPath;
	while (node && node.action && node.action.type === 'alias') { p = node.action.path; node = nodes[p]; }
	if (!node || node.action.type !== 'view') return null;
	const sid = query.get('login') || 'operator';
	const login = world.logins[sid];
	// The dispatcher: a node gated on ACL groups is shown when the login has them, and is
	// read-only when none of them is granted at write level (LuCI's nodespec.readonly).
	const top = Object.keys(nodes).filter((k) => p.startsWith(k) && nodes[k].depends && nodes[k].depends.acl)
		.map((k) => nodes[k].depends.acl).pop() || [];
	const levels = top.map((g) => login && login.groups[g]);
	const satisfied = levels.every((l) => l);
	const readonly = !levels.some((l) => l === 'write');
	const tabs = Object.keys(nodes).filter((k) => k.startsWith('admin/services/braid/') && nodes[k].title)
		.sort((a, b) => (nodes[a].order || 0) - (nodes[b].order || 0));
	const env = {
		sessionid: sid, token: 'token', resource: '/luci-static/resources', media: '/luci-static/bootstrap',
		scriptname: '/cgi-bin/luci', ubuspath: '/ubus', requestpath: p.split('/'), buildid: Date.now(),
		nodespec: { satisfied, readonly, action: node.action }, pollinterval: 5,
		pollscale: +(query.get('pollscale') || 1), features: { wifi: !!world.opts.wifi },
		includes: includes(world.appDir)
	};
	const menu = p.startsWith('admin/services/braid') ? `<ul class="tabs">${tabs.map((k) =>
		`<li class="tabmenu-item${k === p ? ' active' : ''}"><a href="/cgi-bin/luci/${k}?login=${encodeURIComponent(sid)}">${nodes[k].title}</a></li>`).join('')}</ul>` : '';
	return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${node.title || 'LuCI'} - Test router - LuCI</title>
<link rel="stylesheet" href="/luci-static/bootstrap/cascade.css">
<script>window.LuCIEnv = ${JSON.stringify(env)};</script>
<script src="/luci-static/resources/luci.js"></script>
<script src="/stand.js"></script>
</head><body class="lang_en" data-page="${p.replace(/\//g, '-')}">
<header><div class="fill"><div class="container"><a class="brand" href="#">Test router</a><div id="indicators" class="pull-right"></div></div></div></header>
<div id="maincontent" class="container">${menu}<div id="view"></div></div>
<footer>Powered by a LuCI stand-in (tests/luci)</footer>
<script>L.require('ui').then(function() { return L.require('view.${node.action.path.replace(/\//g, '.')}'); }).catch(function(e) { window.__stand.viewFailed(e); });</script>
</body></html>`;
}

function start(opts) {
	const appDir = path.resolve(opts.appDir || path.join(ROOT, 'luci-app'));
	const world = new World(appDir);
	const roots = [ path.join(appDir, 'htdocs'), path.join(__dirname, 'www') ];
	const server = http.createServer((req, res) => {
		const url = new URL(req.url, 'http://x');
		if (req.method === 'POST' && url.pathname === '/ubus') {
			let body = '';
			req.on('data', (c) => body += c);
			req.on('end', () => {
				let msg;
				try { msg = JSON.parse(body); } catch (e) { res.writeHead(400); return res.end(); }
				const [ sid, object, method, args ] = msg.params || [];
				const r = world.call(sid, object, method, args);
				res.writeHead(200, { 'Content-Type': 'application/json' });
				res.end(JSON.stringify(Object.assign({ jsonrpc: '2.0', id: msg.id }, r)));
			});
			return;
		}
		if (url.pathname.startsWith('/cgi-bin/luci/')) {
			const html = page(world, url.pathname.substr('/cgi-bin/luci/'.length), url.searchParams);
			res.writeHead(html ? 200 : 404, { 'Content-Type': 'text/html' });
			return res.end(html || 'no such page');
		}
		if (url.pathname === '/favicon.ico') {
			res.writeHead(204);
			return res.end();
		}
		if (url.pathname === '/stand.js') {
			res.writeHead(200, { 'Content-Type': 'application/javascript' });
			return res.end(fs.readFileSync(path.join(__dirname, 'stand.js')));
		}
		for (const r of roots) {
			const f = path.join(r, path.normalize(url.pathname));
			if (f.startsWith(r) && fs.existsSync(f) && fs.statSync(f).isFile()) {
				res.writeHead(200, { 'Content-Type': TYPES[path.extname(f)] || 'application/octet-stream', 'Cache-Control': 'no-store' });
				return res.end(fs.readFileSync(f));
			}
		}
		res.writeHead(404);
		res.end('not found');
	});
	return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
		resolve({ url: `http://127.0.0.1:${server.address().port}`, world, close: () => { server.close(); fs.rmSync(world.tmp, { recursive: true, force: true }); } });
	}));
}

module.exports = { start, parseUci, writeUci, ubusAllowed, uciAllowed, loadAcls };
