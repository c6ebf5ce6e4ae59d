// luci-app-braid in a real browser (Debian's chromium, puppeteer-core) against the LuCI
// stand-in and the rpcd/ubus stand-in of server.js (see README.md).
//
//   node tests/luci/run.js [NAME-FILTER]    every test, or those whose name contains the filter
//   LUCI_APP=/some/luci-app node ...        another copy of the app (an older one, to see the
//                                           bug tests fail on it)
//
// One line per test ("ok - ..." / "not ok - ..."), then "N passed, N failed". Screenshots of
// every page at 1280 and 390 px go to target/luci-screens/.
'use strict';

const fs = require('fs');
const path = require('path');
const { run, assert } = require('./harness');

const ROOT = path.resolve(__dirname, '../..');
const SCREENS = process.env.LUCI_SCREENS || path.join(ROOT, 'target/luci-screens');
const VALUES = JSON.parse(fs.readFileSync(path.join(ROOT, 'tests/fixtures/config/values.json'), 'utf8'));
const EDGE_SAMPLE = JSON.parse(fs.readFileSync(path.join(ROOT, 'tests/fixtures/status/edge.json'), 'utf8'));
const CORE_KEY = 'oFreshKeyoFreshKeyoFreshKeyoFreshKeyoFresh0=';
// A real pair: `echo EMLs...= | braid pubkey` prints fKqv...= (and so does stub-braid.js).
const EDGE_PRIVATE = 'EMLs5fqbKGVzLtInLmmEh1lXVTvZOHOgAzlF+PwECVA=';
const EDGE_PUBLIC = 'fKqvQEYrid2QzzywpDMct17NXiyiRdhpQZnTEZjwsEY=';

// What the rpcd stand-in's own error, the daemon's, says (values.json holds the daemon's).
function daemonSays(kind, value) {
	const row = VALUES.find((r) => r.kind === kind && r.value === value);
	assert.ok(row && row.error, `values.json has no error for ${kind} '${value}'`);
	return row.error;
}

// An edge as the package ships it, filled in: comments, the key in a key file, options left
// at their defaults absent.
function edgeConf(tmp) {
	return `# /etc/config/braid
config braid 'main'
	# Start the service.
	option enabled '1'
	option role 'edge'
	option key_file '${tmp}/etc/braid/key'
	option core_host 'core.example.net'
	option core_public_key '${CORE_KEY}'
	list lan '192.168.1.0/24'

config link 'wan'
	option device 'eth1'

config link 'lte'
	option device 'wwan0'
	option quota '20G'

config link 'sat'
	option device 'eth2'
	option role 'backup'

config policy 'voip'
	list dest_port '3478-3481'
	option proto 'udp'
	option class 'realtime'
	option mode 'redundant'
	option priority '7'
`;
}

function coreConf(tmp) {
	return `config braid 'main'
	option enabled '1'
	option role 'core'
	option key_file '${tmp}/etc/braid/key'

config peer 'train042'
	option public_key '${CORE_KEY}'

config policy
	option dscp 'EF'
	option class 'realtime'
`;
}

function edgeWorld(ctx, extra) {
	const tmp = ctx.world.tmp;
	ctx.reset(Object.assign({ braid: edgeConf(tmp), status: 'edge', files: { 'etc/braid/key': EDGE_PRIVATE + '\n' } }, extra));
}

function coreWorld(ctx, extra) {
	const tmp = ctx.world.tmp;
	ctx.reset(Object.assign({ braid: coreConf(tmp), status: 'core', files: { 'etc/braid/key': EDGE_PRIVATE + '\n' } }, extra));
}

const STATUS = 'admin/services/braid/status';
const SETTINGS = 'admin/services/braid/settings';

// The rows of the table (on the page or in `scope`) whose first column is `first`, as
// [ [cell text...] ... ], and its header texts: found by what the operator reads, not by ids,
// so the same test runs against older views.
async function table(page, first, scope) {
	return page.evaluate((first, scope) => {
		const root = scope ? document.querySelector(scope) : document;
		for (const t of root.querySelectorAll('table')) {
			const ths = [ ...t.querySelectorAll('th') ].map((th) => th.innerText.trim());
			if (ths[0] !== first) continue;
			const rows = [ ...t.querySelectorAll('tr') ].filter((tr) => tr.querySelector('td'))
				.map((tr) => [ ...tr.querySelectorAll('td') ].map((td) => td.innerText.replace(/\s+/g, ' ').trim()));
			return { heads: ths, rows };
		}
		return { heads: [], rows: [] };
	}, first, scope || null);
}

async function rows(page, first, scope) { return (await table(page, first, scope)).rows; }

// A link's row of the links table, by column name.
async function linkRow(page, name) {
	const t = await table(page, 'Link');
	const r = t.rows.find((x) => x[0] === name);
	assert.ok(r, `no row for link ${name} in ${JSON.stringify(t.rows)}`);
	const out = {};
	t.heads.forEach((h, i) => { out[h] = r[i]; });
	return out;
}

// The link's button with `text` (Take out / Take in), clicked; fails if there is none.
async function clickLink(ctx, page, name, text) {
	const h = await page.evaluateHandle((name, text) => {
		for (const tr of document.querySelectorAll('#view tr')) {
			const td = tr.querySelector('td');
			if (!td || td.innerText.trim() !== name) continue;
			for (const b of tr.querySelectorAll('button')) if (b.innerText.includes(text) && !b.disabled) return b;
		}
		return null;
	}, name, text);
	const el = h.asElement();
	if (!el) throw new Error(`no enabled '${text}' button for link ${name}`);
	await el.click();
	await ctx.settle(page);
}

// Enabled buttons whose text says Take out or Take in.
async function linkButtons(page) {
	return page.$$eval('#view button', (bs) => bs.filter((b) => !b.disabled && /Take (out|in)/.test(b.innerText)).length);
}

// Opens the Edit modal of a grid section row.
async function editRow(ctx, page, sid) {
	await page.$eval(`tr[data-sid="${sid}"] .cbi-button-edit`, (b) => b.click());
	await page.waitForSelector('body.modal-overlay-active .cbi-modal .cbi-map');
	await ctx.settle(page);
}

async function modalSave(ctx, page) {
	await ctx.click(page, '.cbi-modal .cbi-button-positive', 'Save');
	await ctx.settle(page, 300);
}

// Types `value` into the widget of option `opt` (cbid) and returns its validation state.
async function setField(ctx, page, cbid, value) {
	const sel = `[id="widget.${cbid}"]`;
	await page.waitForSelector(sel);
	await ctx.type(page, sel, value);
	return page.$eval(sel, (n) => ({ invalid: n.classList.contains('cbi-input-invalid') }));
}

async function fieldError(page, cbid) {
	return page.evaluate((id) => {
		const el = document.querySelector(`[id="${id}"]`);
		const inst = el && L.dom.findClassInstance(el);
		return inst && inst.getValidationError ? inst.getValidationError() : null;
	}, cbid);
}

function setCalls(ctx) {
	return ctx.calls({ object: 'uci', method: 'set' }).map((c) => ({ section: c.args.section, values: c.args.values }));
}

const tests = [];
const test = (name, opts, fn) => tests.push(typeof opts == 'function' ? { name, fn: opts } : Object.assign({ name, fn }, opts));

// ------------------------------------------------------------------ the eight bugs

test('bug 1: saving a link after changing its weight writes the weight and nothing else', async (ctx) => {
	edgeWorld(ctx);
	const page = await ctx.open(SETTINGS);
	await editRow(ctx, page, 'wan');
	await setField(ctx, page, 'cbid.braid.wan.weight', '5');
	await modalSave(ctx, page);
	assert.deepStrictEqual(setCalls(ctx), [ { section: 'wan', values: { weight: '5' } } ], 'the modal save');
	assert.deepStrictEqual(ctx.calls({ object: 'uci', method: 'delete' }), [], 'nothing removed');
	const indicator = await page.$eval('#indicators', (n) => n.innerText).catch(() => '');
	assert.match(indicator, /Unsaved Changes: 1\b/);
	// Save & Apply: the untouched main section is not written either.
	await ctx.click(page, '.cbi-page-actions .cbi-button-apply', 'Save & Apply');
	await ctx.settle(page, 300);
	assert.deepStrictEqual(setCalls(ctx), [ { section: 'wan', values: { weight: '5' } } ], 'after Save & Apply');
	assert.ok(ctx.world.actions.includes('/etc/init.d/braid reload'), 'ucitrack reload ran: ' + ctx.world.actions.join('; '));
	const wan = ctx.world.config('braid').find((s) => s['.name'] === 'wan');
	assert.deepStrictEqual(Object.keys(wan).filter((k) => !k.startsWith('.')).sort(), [ 'device', 'weight' ]);
	const main = ctx.world.config('braid').find((s) => s['.name'] === 'main');
	assert.deepStrictEqual(Object.keys(main).filter((k) => !k.startsWith('.')).sort(),
		[ 'core_host', 'core_public_key', 'enabled', 'key_file', 'lan', 'role' ]);
	await ctx.assertNoErrors(page);
});

test('bug 1: opening and saving every section untouched writes nothing', async (ctx) => {
	edgeWorld(ctx);
	const page = await ctx.open(SETTINGS);
	for (const sid of [ 'wan', 'lte', 'sat' ]) {
		await editRow(ctx, page, sid);
		await modalSave(ctx, page);
	}
	await ctx.click(page, '.cbi-page-actions .cbi-button-save', 'Save');
	await ctx.settle(page, 300);
	assert.deepStrictEqual(setCalls(ctx), []);
	assert.deepStrictEqual(ctx.calls({ object: 'uci', method: 'delete' }), []);
	await ctx.assertNoErrors(page);
});

test('bug 2: values the daemon refuses are refused in the form, with its words', async (ctx) => {
	edgeWorld(ctx);
	const page = await ctx.open(SETTINGS);
	// The main section: a core public key of "abc".
	const k = await setField(ctx, page, 'cbid.braid.main.core_public_key', 'abc');
	assert.ok(k.invalid, 'core_public_key abc is marked invalid');
	assert.strictEqual(await fieldError(page, 'cbid.braid.main.core_public_key'), daemonSays('key', 'abc'));
	await ctx.click(page, '.cbi-page-actions .cbi-button-save', 'Save');
	await ctx.settle(page, 300);
	assert.deepStrictEqual(setCalls(ctx), [], 'nothing saved while invalid');
	assert.match(await ctx.text(page, '#modal_overlay'), /contains an invalid input value/);
	await page.evaluate(() => L.ui.hideModal());
	await setField(ctx, page, 'cbid.braid.main.core_public_key', CORE_KEY);
	// A link: rate, quota; each message is the daemon's.
	await editRow(ctx, page, 'lte');
	for (const [ opt, kind, value ] of [ [ 'upload', 'rate', '20 mbps' ], [ 'quota', 'quota', '20GB/month' ], [ 'weight', 'weight', '0' ] ]) {
		const r = await setField(ctx, page, `cbid.braid.lte.${opt}`, value);
		assert.ok(r.invalid, `${opt} '${value}' is marked invalid`);
		assert.strictEqual(await fieldError(page, `cbid.braid.lte.${opt}`), daemonSays(kind, value));
	}
	await ctx.click(page, '.cbi-modal .cbi-button-positive', 'Save');
	await ctx.settle(page, 300);
	assert.deepStrictEqual(setCalls(ctx), [], 'the modal refuses to save');
	await page.evaluate(() => L.ui.hideModal());
	// A policy: ports and DSCP names in its list fields.
	await editRow(ctx, page, 'voip');
	for (const [ opt, kind, value ] of [ [ 'dest_port', 'ports', '0' ], [ 'dscp', 'dscp', 'AF51' ] ]) {
		const r = await setField(ctx, page, `cbid.braid.voip.${opt}`, value);
		assert.ok(r.invalid, `${opt} '${value}' is marked invalid`);
		assert.strictEqual(await fieldError(page, `cbid.braid.voip.${opt}`), daemonSays(kind, value));
	}
	// And good values pass.
	assert.strictEqual((await setField(ctx, page, 'cbid.braid.voip.dscp', 'EF')).invalid, false);
	await page.evaluate(() => L.ui.hideModal());
});

test('bug 3: Take out shows at once, and the last working link is taken out only when confirmed', async (ctx) => {
	edgeWorld(ctx);
	const page = await ctx.open(STATUS);
	await clickLink(ctx, page, 'wan', 'Take out');
	await ctx.settle(page, 200);
	// No poll ran: the page asked for the status itself after the call.
	assert.match((await linkRow(page, 'wan')).State, /taken out/);
	assert.deepStrictEqual(ctx.calls({ object: 'luci.braid', method: 'link' }).map((c) => c.args), [ { name: 'wan', up: false } ]);
	// lte is now the only working link (sat is taken out in the sample).
	await clickLink(ctx, page, 'lte', 'Take out');
	assert.ok(await page.$('body.modal-overlay-active'), 'asked before taking out the last working link');
	assert.match(await ctx.text(page, '#modal_overlay'), /only link that works/);
	await ctx.click(page, '#modal_overlay button', 'Cancel');
	assert.strictEqual(ctx.calls({ object: 'luci.braid', method: 'link' }).length, 1, 'cancel takes nothing out');
	await clickLink(ctx, page, 'lte', 'Take out');
	await ctx.click(page, '#modal_overlay .cbi-button-negative', 'Take out');
	await ctx.settle(page, 200);
	assert.deepStrictEqual(ctx.calls({ object: 'luci.braid', method: 'link' }).map((c) => c.args.name), [ 'wan', 'lte' ]);
	assert.match((await linkRow(page, 'lte')).State, /taken out/);
	await ctx.assertNoErrors(page);
});

test('bug 4: a read-only login gets no Take out, and a refused call is shown, not thrown', async (ctx) => {
	edgeWorld(ctx);
	let page = await ctx.open(STATUS, { login: 'viewer' });
	assert.strictEqual(await linkButtons(page), 0, 'no enabled Take out/in for a read-only login');
	await ctx.assertNoErrors(page);
	page = await ctx.open(SETTINGS, { login: 'viewer' });
	const enabledSave = await page.$$eval('.cbi-page-actions button', (bs) => bs.filter((b) => !b.disabled).length);
	assert.strictEqual(enabledSave, 0, 'settings are read-only');
	assert.strictEqual(await page.$('#braid-genkey'), null, 'no Generate key');
	await ctx.assertNoErrors(page);
	// The daemon refuses (it stopped meanwhile): the message is on the page.
	page = await ctx.open(STATUS);
	ctx.world.stub();
	fs.writeFileSync(path.join(ctx.world.tmp, 'stub-state.json'), JSON.stringify(Object.assign(ctx.world.stub(), { status: 'down' })));
	await clickLink(ctx, page, 'wan', 'Take out');
	await ctx.settle(page, 200);
	assert.match(await ctx.text(page, '#maincontent'), /braid is not running \(no daemon on \/var\/run\/braid.sock\)/);
	await ctx.assertNoErrors(page);
});

test('bug 5: on a core, plain addresses and no Take out', async (ctx) => {
	coreWorld(ctx);
	let page = await ctx.open(STATUS);
	assert.strictEqual(await linkButtons(page), 0, 'no Take out on a core');
	const text = await ctx.text(page, '#view');
	assert.doesNotMatch(text, /\b[A-Z][a-z]+\(/, 'no Rust Debug text');
	assert.ok(text.includes('train042'));
	assert.ok(text.includes('handshakes: the edge\'s key is in no config peer'), 'refused handshakes in plain words');
	assert.ok(text.includes('to the cloud metadata service (169.254.169.254)'), 'the forward policy\'s refusals');
	page = await ctx.open('admin/services/braid/edge?edge=train042');
	assert.deepStrictEqual((await rows(page, 'Link')).map((r) => r[1]), [ '198.51.100.7:54721 UDP', '[2001:db8::17]:40112 TCP' ]);
	assert.doesNotMatch(await ctx.text(page, '#view'), /\b[A-Z][a-z]+\(/, 'no Rust Debug text');
	await ctx.assertNoErrors(page);
});

test('bug 6: measured rates each way, the estimate apart, SI units', async (ctx) => {
	edgeWorld(ctx);
	const page = await ctx.open(STATUS);
	const lte = await linkRow(page, 'lte');
	assert.strictEqual(lte.Quota, '12.30 GB / 20.00 GB (62%)', "quota '20G' is 20 GB, as the config means");
	const wan = await linkRow(page, 'wan');
	assert.strictEqual(wan.Down, '17.9 Mbit/s', 'rx_bps, measured');
	assert.strictEqual(wan.Up, '19.1 Mbit/s', 'tx_bps, measured, not the estimate');
	assert.strictEqual(wan.Estimate, '24.7 Mbit/s', 'the estimate in its own column');
	const sat = await linkRow(page, 'sat');
	assert.strictEqual(sat.Up, '0 bit/s', 'a link taken out sends nothing');
	assert.match(await ctx.text(page, '#view'), /Bonded\s+down 20\.7 Mbit\/s, up 24\.7 Mbit\/s/);
	await ctx.assertNoErrors(page);
});

test('bug 7: empty tables say what is empty', async (ctx) => {
	edgeWorld(ctx, { statusPatch: { users: [], classes: [] } });
	const page = await ctx.open(STATUS);
	for (let i = 0; i < 2; i++) {
		assert.deepStrictEqual(await rows(page, 'Address'), [ [ 'No users' ] ]);
		assert.deepStrictEqual(await rows(page, 'Class'), [ [ 'No classes' ] ]);
		// And still after a poll.
		await page.evaluate(() => window.__stand.poll());
		await ctx.settle(page);
	}
});

test('bug 8: with luci-base and this app only, the uplink device list is filled', async (ctx) => {
	edgeWorld(ctx);
	const page = await ctx.open(SETTINGS);
	const hint = await page.$eval('#cbi-braid-link .cbi-section-create-name', (n) => n.placeholder);
	assert.match(hint, /lte, sat, wan/, 'Add uplink offers the netifd interfaces');
	await editRow(ctx, page, 'wan');
	const choices = await page.$$eval('[id="widget.cbid.braid.wan.device"] option', (os) => os.map((o) => o.value).filter(Boolean));
	for (const d of [ 'eth1', 'eth2', 'wwan0' ])
		assert.ok(choices.includes(d), `device ${d} offered: ${choices}`);
	const denied = ctx.calls().filter((c) => !c.allowed).map((c) => `${c.object} ${c.method} ${c.args && c.args.config || ''}`.trim());
	assert.deepStrictEqual(denied.filter((d) => !DENIED_BY_DESIGN[d]), [], 'calls the ACL refuses');
	await ctx.assertNoErrors(page);
});

test('names from the daemon are shown as text, never as markup', async (ctx) => {
	const evil = '<img src=x onerror="window.__pwned=1">';
	const link = Object.assign({}, EDGE_SAMPLE.sessions[0].links[0], { name: evil, device: evil });
	edgeWorld(ctx, { statusPatch: { links: [ link ], users: [ { address: evil, flows: 1, tx_bytes: 1, rx_bytes: 1 } ],
		classes: [ { name: evil, mode: evil, priority: 0, packets: 1 } ] } });
	const page = await ctx.open(STATUS);
	assert.strictEqual(await page.$$eval('#view img', (i) => i.length), 0);
	assert.strictEqual(await page.evaluate(() => window.__pwned), undefined);
	const t = await ctx.text(page, '#view');
	assert.ok(t.split(evil).length >= 5, 'the names are there, as text');
	await ctx.assertNoErrors(page);
});

// ------------------------------------------------------------------ the ACL, derived

// Calls the views make that the ACL refuses on purpose; network.js tolerates each.
const DENIED_BY_DESIGN = {
	'uci get network': 'holds PPPoE and modem passwords; the device list comes from luci-rpc and network.interface',
	'uci get wireless': 'holds Wi-Fi keys'
};

test('ACL: grants exactly what the views call, read split from write', async (ctx) => {
	const used = new Set(), seen = [];
	const visit = async (login, route, act) => {
		const page = await ctx.open(route, { login });
		if (act) await act(page);
		await page.evaluate(() => window.__stand.poll()).catch(() => {});
		await ctx.settle(page);
	};
	edgeWorld(ctx, { wifi: true });
	await visit('operator', STATUS, async (page) => { await clickLink(ctx, page, 'wan', 'Take out'); });
	await visit('operator', SETTINGS, async (page) => {
		await editRow(ctx, page, 'wan');
		await setField(ctx, page, 'cbid.braid.wan.weight', '3');
		await modalSave(ctx, page);
		await ctx.click(page, '.cbi-page-actions .cbi-button-apply', 'Save & Apply');
		await ctx.click(page, 'ul.cbi-tabmenu a', 'Key');
		await ctx.click(page, '#braid-genkey', 'Generate');
		await ctx.click(page, '#modal_overlay .cbi-button-negative', 'Generate');
	});
	await visit('operator', 'admin/status/overview');
	await visit('viewer', STATUS);
	await visit('viewer', SETTINGS);
	seen.push(...ctx.world.calls);
	coreWorld(ctx);
	await visit('operator', STATUS);
	await visit('operator', 'admin/services/braid/edge?edge=train042');
	await visit('operator', SETTINGS);
	seen.push(...ctx.world.calls);
	const acl = JSON.parse(fs.readFileSync(path.join(process.env.LUCI_APP || path.join(ROOT, 'luci-app'), 'root/usr/share/rpcd/acl.d/luci-app-braid.json'), 'utf8'))['luci-app-braid'];
	// Every call of the operator is allowed, but for the ones refused by design.
	const refused = seen.filter((c) => c.sid === 'operator' && !c.allowed).map((c) => `${c.object} ${c.method} ${c.args && c.args.config || ''}`.trim());
	assert.deepStrictEqual([ ...new Set(refused) ].filter((d) => !DENIED_BY_DESIGN[d]), [], 'refused calls of a full login');
	for (const d of Object.keys(DENIED_BY_DESIGN)) assert.ok(refused.includes(d), `${d} is called and refused`);
	// The viewer was refused nothing but writes it never tried (its buttons are gone).
	const vref = seen.filter((c) => c.sid === 'viewer' && !c.allowed).map((c) => `${c.object} ${c.method} ${c.args && c.args.config || ''}`.trim());
	assert.deepStrictEqual([ ...new Set(vref) ].filter((d) => !DENIED_BY_DESIGN[d]), [], 'refused calls of a read-only login');
	// Every grant is used: each ubus method of the app's ACL by a call of that level, and each
	// uci config.
	for (const lvl of [ 'read', 'write' ])
		for (const [ obj, methods ] of Object.entries(acl[lvl].ubus || {}))
			for (const m of methods) {
				if (!seen.some((c) => c.object === obj && c.method === m && c.allowed)) used.add(`unused grant: ${lvl} ubus ${obj} ${m}`);
			}
	for (const conf of acl.read.uci)
		if (!seen.some((c) => c.object === 'uci' && c.method === 'get' && c.args.config === conf && c.allowed)) used.add(`unused grant: read uci ${conf}`);
	for (const conf of acl.write.uci)
		if (!seen.some((c) => c.object === 'uci' && c.method === 'set' && c.args.config === conf && c.allowed)) used.add(`unused grant: write uci ${conf}`);
	assert.deepStrictEqual([ ...used ], []);
	// Read is split from write: writes are in write only.
	const writes = [ 'link', 'genkey' ];
	assert.deepStrictEqual((acl.read.ubus['luci.braid'] || []).filter((m) => writes.includes(m)), []);
});

// ------------------------------------------------------------------ features

test('graphs: per link up/down and RTT, and the bonded total beside the links, grow with each poll', async (ctx) => {
	edgeWorld(ctx);
	const page = await ctx.open(STATUS);
	const graphs = await page.$$eval('.braid-graph', (gs) => gs.map((g) => g.getAttribute('data-graph')));
	assert.deepStrictEqual(graphs, [ 'bonded', 'link-wan', 'rtt-wan', 'link-lte', 'rtt-lte', 'link-sat', 'rtt-sat' ]);
	for (let i = 0; i < 3; i++) await page.evaluate(() => window.__stand.poll());
	await ctx.settle(page);
	const pts = await page.$$eval('[data-graph="bonded"] polyline', (ls) => ls.map((l) => [ l.getAttribute('data-series'), +l.getAttribute('data-points') ]));
	assert.deepStrictEqual(pts, [ [ 'bonded-down', 4 ], [ 'bonded-up', 4 ], [ 'links-down', 4 ], [ 'links-up', 4 ] ]);
	const legend = await ctx.text(page, '[data-graph="bonded"] .braid-legend');
	assert.match(legend, /down 20\.7 Mbit\/s/);
	assert.match(legend, /links down 22\.2 Mbit\/s/);
	const svgOk = await page.$eval('[data-graph="link-wan"] svg', (s) => s.namespaceURI === 'http://www.w3.org/2000/svg' && s.getBoundingClientRect().width > 100);
	assert.ok(svgOk, 'an SVG drawn in the page');
	await ctx.assertNoErrors(page);
});

test('badges: coloured state with the time in it', async (ctx) => {
	edgeWorld(ctx);
	const page = await ctx.open(STATUS);
	const badges = await page.$$eval('#braid-s0-links .braid-state', (bs) => bs.map((b) => [ b.getAttribute('data-state'), b.innerText.replace(/\s+/g, ' ').trim(), getComputedStyle(b.firstElementChild).backgroundColor ]));
	assert.deepStrictEqual(badges.map((b) => b.slice(0, 2)), [ [ 'up', 'up for 1h 29m' ], [ 'degraded', 'degraded for 42s' ], [ 'admin-down', 'taken out for 10m' ] ]);
	assert.strictEqual(new Set(badges.map((b) => b[2])).size, 3, 'three colours');
});

test('waiting: what a booting edge waits for, on the status page and the overview', async (ctx) => {
	// As `braid status --json` says it while the edge waits (src/control.rs): the daemon's
	// own wait, and a link whose device has not appeared yet.
	const wwan = Object.assign({}, EDGE_SAMPLE.sessions[0].links[0], { name: 'lte', device: 'wwan0', state: 'waiting', state_s: 12, waiting: "waiting for device 'wwan0' to appear" });
	edgeWorld(ctx, { statusTop: { waiting: "waiting for the address of core_host 'core.example.net'" }, statusPatch: { links: [ wwan ] } });
	const page = await ctx.open(STATUS);
	assert.match(await ctx.text(page, '.braid-waiting'), /waiting for the address of core_host 'core\.example\.net'/);
	const row = await linkRow(page, 'lte');
	assert.match(row.State, /waiting for 12s/);
	assert.match(row.State, /waiting for device 'wwan0' to appear/);
	await ctx.assertNoErrors(page);
	// No session yet: the overview says what the edge waits for instead of a bare "no session".
	ctx.world.reset(Object.assign({}, ctx.world.opts, { statusTop: { sessions: [], waiting: "waiting for the address of core_host 'core.example.net'" } }));
	const ov = await ctx.open('admin/status/overview');
	assert.match(await ctx.text(ov, '[data-include="Braid"]'), /Session\s+waiting for the address of core_host/);
	await ctx.assertNoErrors(ov);
});

test('Status > Overview: session state, links working, bonded rate', async (ctx) => {
	edgeWorld(ctx);
	const page = await ctx.open('admin/status/overview');
	const text = await ctx.text(page, '[data-include="Braid"]');
	assert.match(text, /established for 1h 29m/);
	assert.match(text, /Links working\s+2 of 3/);
	assert.match(text, /down 20\.7 Mbit\/s, up 24\.7 Mbit\/s/);
	await ctx.assertNoErrors(page);
	ctx.world.reset(Object.assign({}, ctx.world.opts, { status: 'down' }));
	await page.evaluate(() => window.__stand.poll());
	await ctx.settle(page);
	assert.match(await ctx.text(page, '[data-include="Braid"]'), /not running/);
	// A login without the Braid ACL sees no Braid section at all.
	const other = await ctx.open('admin/status/overview', { login: 'nobody' });
	assert.ok(await other.$eval('[data-include="Braid"]', (n) => n.classList.contains('hidden')));
	await ctx.assertNoErrors(other);
});

test('keys: the public key from the key file with a copy button; a new key; the private key never sent', async (ctx) => {
	edgeWorld(ctx);
	const ctxb = ctx.browser.defaultBrowserContext();
	await ctxb.overridePermissions(ctx.srv.url, [ 'clipboard-read', 'clipboard-write', 'clipboard-sanitized-write' ]);
	const page = await ctx.open(SETTINGS);
	await ctx.click(page, 'ul.cbi-tabmenu a', 'Key');
	const pub = await page.$eval('#braid-public-key', (i) => i.value);
	assert.strictEqual(pub, EDGE_PUBLIC, 'what braid pubkey gives for the key file');
	await ctx.click(page, '#braid-key button', 'Copy');
	assert.strictEqual(await page.evaluate(() => navigator.clipboard.readText()), pub);
	await ctx.click(page, '#braid-genkey', 'Generate');
	await ctx.click(page, '#modal_overlay .cbi-button-negative', 'Generate');
	await ctx.settle(page, 300);
	const pub2 = await page.$eval('#braid-public-key', (i) => i.value);
	assert.notStrictEqual(pub2, pub);
	assert.match(pub2, /^[A-Za-z0-9+/]{43}=$/);
	const keyNow = fs.readFileSync(path.join(ctx.world.tmp, 'etc/braid/key'), 'utf8').trim();
	assert.strictEqual((fs.statSync(path.join(ctx.world.tmp, 'etc/braid/key')).mode & 0o777), 0o600);
	// No reply the browser got holds a private key.
	const replies = JSON.stringify(ctx.world.calls.map((c) => c.result));
	assert.ok(!replies.includes(EDGE_PRIVATE) && !replies.includes(keyNow), 'a private key reached the browser');
	assert.strictEqual(await page.$('[id="widget.cbid.braid.main.private_key"]'), null, 'no private key field');
	await ctx.assertNoErrors(page);
});

test('keys: an inline private_key is moved to the key file by Generate, and shown as a risk', async (ctx) => {
	const tmp = ctx.world.tmp;
	ctx.reset({ braid: edgeConf(tmp).replace(`option key_file '${tmp}/etc/braid/key'`, `option private_key '${EDGE_PRIVATE}'`), status: 'edge' });
	const page = await ctx.open(SETTINGS);
	await ctx.click(page, 'ul.cbi-tabmenu a', 'Key');
	assert.match(await ctx.text(page, '#braid-key'), /stored in \/etc\/config\/braid/);
	assert.strictEqual(await page.$eval('#braid-public-key', (i) => i.value), EDGE_PUBLIC);
	await ctx.click(page, '#braid-genkey', 'Generate');
	await ctx.click(page, '#modal_overlay .cbi-button-negative', 'Generate');
	await ctx.settle(page, 300);
	const main = ctx.world.config('braid').find((s) => s['.name'] === 'main');
	assert.strictEqual(main.private_key, undefined);
	assert.strictEqual(main.key_file, `${tmp}/etc/braid/key`);
	assert.doesNotMatch(await ctx.text(page, '#braid-key'), /stored in \/etc\/config\/braid/);
});

test('device picker and interface names: uplinks are netifd interfaces, devices are picked', async (ctx) => {
	edgeWorld(ctx);
	const page = await ctx.open(SETTINGS);
	const add = '#cbi-braid-link .cbi-section-create-name';
	await ctx.type(page, add, 'wan2');
	assert.ok(await page.$eval(add, (n) => n.classList.contains('cbi-input-invalid')), 'wan2 is no netifd interface');
	assert.ok(await page.$eval('#cbi-braid-link .cbi-section-create .cbi-button-add', (b) => b.disabled));
	await ctx.type(page, add, 'wan');
	assert.ok(await page.$eval(add, (n) => n.classList.contains('cbi-input-invalid')), 'wan exists already');
	await ctx.type(page, add, 'lan');
	// lan is an interface but not an uplink candidate; lte-style names pass.
	await ctx.type(page, add, 'sat');
	assert.ok(await page.$eval(add, (n) => n.classList.contains('cbi-input-invalid')), 'sat exists already');
	await editRow(ctx, page, 'lte');
	const sel = '[id="widget.cbid.braid.lte.device"]';
	await page.select(sel, 'eth2');
	await modalSave(ctx, page);
	assert.deepStrictEqual(setCalls(ctx), [ { section: 'lte', values: { device: 'eth2' } } ]);
	await ctx.assertNoErrors(page);
});

test('roles: edge-only and core-only sections show for their role', async (ctx) => {
	edgeWorld(ctx);
	let page = await ctx.open(SETTINGS);
	assert.ok(await page.$('#cbi-braid-link'), 'uplinks on an edge');
	assert.strictEqual(await page.$('#cbi-braid-peer'), null, 'no edges list on an edge');
	assert.ok(await page.$('#cbi-braid-policy'));
	coreWorld(ctx);
	page = await ctx.open(SETTINGS);
	assert.strictEqual(await page.$('#cbi-braid-link'), null, 'no uplinks on a core');
	assert.ok(await page.$('#cbi-braid-peer'), 'edges allowed on a core');
	const hidden = await page.$eval('[data-field="cbid.braid.main.core_host"]', (n) => n.classList.contains('hidden'));
	assert.ok(hidden, 'core address hidden on a core');
	await ctx.assertNoErrors(page);
});

test('core: a page per connected edge with its links, users and rates', async (ctx) => {
	coreWorld(ctx);
	let page = await ctx.open(STATUS);
	assert.deepStrictEqual((await rows(page, 'Edge')).map((r) => r.slice(0, 3)), [ [ 'train042', 'established for 1h 29m', '2 / 2' ] ]);
	const href = await page.$eval('#braid-edges a', (a) => a.getAttribute('href'));
	assert.match(href, /admin\/services\/braid\/edge\?edge=train042$/);
	page = await ctx.open('admin/services/braid/edge?edge=train042');
	const links = await rows(page, 'Link');
	assert.deepStrictEqual(links.map((r) => [ r[0], r[1] ]), [ [ 'wan', '198.51.100.7:54721 UDP' ], [ 'lte', '[2001:db8::17]:40112 TCP' ] ]);
	assert.deepStrictEqual((await rows(page, 'Address')).map((r) => r[0]), [ '192.168.1.23' ]);
	assert.ok((await page.$$('.braid-graph')).length >= 5);
	await ctx.assertNoErrors(page);
});

test('descriptions: what the shipped file\'s comments said is on the form', async (ctx) => {
	edgeWorld(ctx);
	const page = await ctx.open(SETTINGS);
	const d = await page.$$eval('.cbi-value-description', (ds) => ds.map((x) => x.textContent).join('\n'));
	for (const re of [ /braid pubkey/, /1280\.\.9000/, /at most 15 characters/ ]) assert.match(d, re);
	await editRow(ctx, page, 'lte');
	const m = await ctx.text(page, '#modal_overlay');
	for (const re of [ /20 GB \(20,000,000,000 bytes/, /backup: only when nothing else is up/, /short month uses its last day/ ]) assert.match(m, re);
});

test('screens: the status page with five minutes of live graphs', { timeout: 60000 }, async (ctx) => {
	edgeWorld(ctx, { vary: true });
	for (const [ width, polls ] of [ [ 1280, 104 ], [ 390, 15 ] ]) {
		const page = await ctx.open(STATUS, { width });
		for (let i = 0; i < polls; i++) await page.evaluate(() => window.__stand.poll());
		await ctx.settle(page);
		const n = await page.$eval('[data-graph="link-wan"] polyline', (l) => +l.getAttribute('data-points'));
		assert.strictEqual(n, Math.min(100, polls + 1), 'samples kept: five minutes at most');
		await ctx.assertNoErrors(page);
		await ctx.screenshot(page, 'status-edge-live');
		if (width == 1280) {
			// The README's picture: the session, the links and the first row of graphs.
			const bottom = await page.$eval('.braid-graphs', (g) => g.children[2].getBoundingClientRect().bottom + window.scrollY + 8);
			await page.screenshot({ path: path.join(SCREENS, 'status-readme.png'), clip: { x: 40, y: 90, width: 1200, height: bottom - 90 } });
		}
	}
});

test('screens: every page at 1280 and 390 px without errors', async (ctx) => {
	edgeWorld(ctx);
	await ctx.screens(STATUS, 'status-edge');
	await ctx.screens(SETTINGS, 'settings-edge');
	await ctx.screens('admin/status/overview', 'overview-edge');
	await ctx.screens(STATUS, 'status-edge-readonly', { login: 'viewer' });
	coreWorld(ctx);
	await ctx.screens(STATUS, 'status-core');
	await ctx.screens('admin/services/braid/edge?edge=train042', 'edge-train042');
	await ctx.screens(SETTINGS, 'settings-core');
	edgeWorld(ctx, { status: 'down' });
	await ctx.screens(STATUS, 'status-stopped');
});

run(tests, process.argv[2]).then((code) => process.exit(code));

module.exports = { EDGE_SAMPLE };
