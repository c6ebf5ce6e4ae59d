// A stand-in for the `braid` command line, as luci.braid calls it:
//   braid status --json [--socket P]   the fixture of the role in the state file (edge, core),
//                                      links taken down shown admin-down; 'down': not running;
//                                      with `vary`, rates that change from call to call
//   braid link up|down NAME [...]      recorded; refused on a core, as the daemon does
//   braid genkey / braid pubkey        a fresh X25519 key / the public key of the one on stdin
// State: $BRAID_STUB_STATE (JSON: status, down, log); fixtures: $BRAID_STUB_FIXTURES.
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const path = require('path');

const statePath = process.env.BRAID_STUB_STATE;
const state = JSON.parse(fs.readFileSync(statePath, 'utf8'));
const args = process.argv.slice(2);
state.log.push(args.join(' '));
const save = () => fs.writeFileSync(statePath, JSON.stringify(state));
const fail = (msg) => { save(); process.stderr.write(msg + '\n'); process.exit(1); };

const PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');
function pub(privB64) {
	const raw = Buffer.from(privB64, 'base64');
	if (raw.length != 32 || !/^[A-Za-z0-9+/]{43}=$/.test(privB64)) return null;
	const key = crypto.createPrivateKey({ key: Buffer.concat([ PKCS8, raw ]), format: 'der', type: 'pkcs8' });
	return crypto.createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
}

if (state.status === 'down' && args[0] !== 'genkey' && args[0] !== 'pubkey')
	fail('braid is not running (no daemon on /var/run/braid.sock)');
switch (args[0]) {
case 'status': {
	if (state.status === 'garbage') { save(); process.stdout.write('warning: something\n{"role":'); process.exit(0); }
	const st = JSON.parse(fs.readFileSync(path.join(process.env.BRAID_STUB_FIXTURES, `${state.status}.json`), 'utf8'));
	// vary: rates and RTTs that wander from one call to the next, for graphs worth a look.
	const n = state.n = (state.n || 0) + 1;
	Object.assign(st, state.top || {});
	for (const s of st.sessions) {
		Object.assign(s, state.patch || {});
		if (state.vary) {
			let rx = 0, tx = 0;
			s.links.forEach((l, i) => {
				const f = Math.max(0.05, 1 + 0.35 * Math.sin(n / 5 + i * 1.7) + 0.12 * Math.sin(n / 1.3 + i));
				l.rx_bps = Math.round(l.rx_bps * f);
				l.tx_bps = Math.round(l.tx_bps * (2 - f) * 0.9);
				if (l.rtt_ms) l.rtt_ms = +(l.rtt_ms * (1 + 0.25 * Math.max(0, Math.sin(n / 4 + i)) * f)).toFixed(1);
				rx += l.rx_bps;
				tx += l.tx_bps;
			});
			s.rx_bps = Math.round(rx * 0.93);
			s.tx_bps = Math.round(tx * 0.91);
		}
		for (const l of s.links)
			if (state.down.includes(l.name)) Object.assign(l, { state: 'admin-down', state_s: 0, tx_bps: 0, rx_bps: 0 });
	}
	save();
	process.stdout.write(JSON.stringify(st, null, 2) + '\n');
	break;
}
case 'link': {
	if (state.status === 'core') fail('braid link: links are managed by the edge; run `braid link` there');
	const [ , dir, name ] = args;
	state.down = state.down.filter((n) => n !== name);
	if (dir === 'down') state.down.push(name);
	save();
	break;
}
case 'genkey': {
	const k = crypto.randomBytes(32);
	k[0] &= 248; k[31] = (k[31] & 127) | 64;
	save();
	process.stdout.write(k.toString('base64') + '\n');
	break;
}
case 'pubkey': {
	const p = pub(fs.readFileSync(0, 'utf8').trim());
	if (!p) fail('braid pubkey: expected a 32-byte key in base64 (44 characters, as \'braid genkey\' prints) on stdin');
	save();
	process.stdout.write(p + '\n');
	break;
}
default:
	fail(`braid: unknown command '${args[0]}'`);
}
