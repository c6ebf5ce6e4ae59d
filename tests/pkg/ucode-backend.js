// Runs the rpcd ucode backend luci.braid under node with stand-ins for the few ucode builtins
// and modules it uses (ucode's syntax is a subset of JavaScript; no ucode interpreter here):
//   node ucode-backend.js BACKEND STUB_BRAID [CONTROL_SOCKET]
// Prints one JSON line per call: the calls a test script then checks.
'use strict';
const fs = require('fs');
const cp = require('child_process');

const [backend, stubBraid, socket] = process.argv.slice(2);
let src = fs.readFileSync(backend, 'utf8')
	.replace(/^import .*$/mg, '')
	.replace(/\/usr\/sbin\/braid/g, stubBraid);

const builtins = {
	cursor: () => ({
		load: () => true,
		get: (pkg, sec, opt) => (pkg == 'braid' && sec == 'main' && opt == 'control_socket') ? (socket || null) : null,
	}),
	popen: (cmd) => {
		const r = cp.spawnSync('/bin/sh', [ '-c', cmd ], { encoding: 'utf8' });
		return { read: () => r.stdout, close: () => r.status };
	},
	replace: (s, pat, rep) => typeof pat == 'string' ? s.split(pat).join(rep) : s.replace(new RegExp(pat.source, 'g'), rep),
	trim: (s) => s == null ? s : s.trim(),
	json: (s) => JSON.parse(s),
	match: (s, re) => s.match(re),
	type: (v) => v == null ? null : Array.isArray(v) ? 'array' : typeof v == 'boolean' ? 'bool' : typeof v == 'number' ? (Number.isInteger(v) ? 'int' : 'double') : typeof v == 'string' ? 'string' : 'object',
};
const load = new Function(...Object.keys(builtins), src);
const methods = load(...Object.values(builtins))['luci.braid'];

const calls = [
	[ 'status', {} ],
	[ 'link', { name: 'wan', up: false } ],
	[ 'link', { name: 'wwan', up: true } ],
	[ 'link', { name: "wan'; reboot; '", up: true } ],
	[ 'link', {} ],
];
for (const [m, args] of calls)
	console.log(JSON.stringify({ method: m, args, reply: methods[m].call({ args }) }));
