// The browser side of the tests: Debian's chromium driven by puppeteer-core, one page per test
// against server.js. Each test gets a fresh world (uci configs, logins, daemon state), opens
// pages as a login at a width, clicks and types like an operator, and asserts on the page,
// the ubus calls recorded by the rpcd stand-in and the uci changes that reached it.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const assert = require('assert');
const server = require('./server');

const ROOT = path.resolve(__dirname, '../..');
const SCREENS = process.env.LUCI_SCREENS || path.join(ROOT, 'target/luci-screens');
const CHROMIUM = process.env.CHROMIUM || [ '/usr/bin/chromium', '/usr/bin/chromium-browser' ].find((p) => fs.existsSync(p));

// The flags the machine notes list for headless Chromium as root on a closed network.
const FLAGS = [ '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
	'--disable-background-networking', '--disable-component-update', '--disable-sync',
	'--disable-dev-shm-usage', '--hide-scrollbars', '--font-render-hinting=none' ];

class Ctx {
	constructor(srv, browser, name) {
		this.srv = srv;
		this.browser = browser;
		this.name = name;
		this.pages = [];
		this.errors = [];
	}

	get world() { return this.srv.world; }

	reset(opts) { this.world.reset(opts || {}); }

	// Opens `route` (a menu path) as `login` at `width` px and waits for the view to render.
	async open(route, opts) {
		opts = Object.assign({ login: 'operator', width: 1280 }, opts);
		const page = await this.browser.newPage();
		this.pages.push(page);
		page.errors = [];
		page.on('pageerror', (e) => page.errors.push('pageerror: ' + e.message));
		page.on('console', (m) => { if (m.type() === 'error') page.errors.push('console: ' + m.text()); });
		page.on('dialog', (d) => { page.errors.push('dialog: ' + d.message()); d.dismiss(); });
		await page.setViewport({ width: opts.width, height: opts.height || 900 });
		const q = new URLSearchParams({ login: opts.login });
		await page.goto(`${this.srv.url}/cgi-bin/luci/${route}${route.includes('?') ? '&' : '?'}${q}`, { waitUntil: 'load' });
		const ok = await page.evaluate(() => window.__stand.ready.then(() => true, (e) => String(e))).catch((e) => String(e));
		if (ok !== true) throw new Error(`view at ${route} failed: ${ok}\n${(await this.pageErrors(page)).join('\n')}`);
		// Time does not pass by itself: a test polls when it means to (window.__stand.poll()).
		await page.evaluate(() => L.Poll.stop());
		await this.settle(page);
		return page;
	}

	// Waits until no request is pending and the DOM stops changing for a moment.
	async settle(page, ms) {
		await page.waitForNetworkIdle({ idleTime: ms || 150, timeout: 5000 }).catch(() => {});
	}

	async pageErrors(page) {
		const inPage = await page.evaluate(() => window.__stand ? window.__stand.errors.slice() : []).catch(() => []);
		return page.errors.concat(inPage.filter((e) => !page.errors.some((x) => x.includes(e))));
	}

	async assertNoErrors(page) {
		const errs = (await this.pageErrors(page)).filter((e) => !/favicon/.test(e));
		assert.deepStrictEqual(errs, [], 'JS errors on the page');
	}

	async text(page, sel) {
		return page.$eval(sel || 'body', (n) => n.innerText.replace(/[ \t]+/g, ' '));
	}

	async screenshot(page, name) {
		fs.mkdirSync(SCREENS, { recursive: true });
		const w = page.viewport().width;
		const file = path.join(SCREENS, `${name}-${w}.png`);
		await page.screenshot({ path: file, fullPage: true });
		return file;
	}

	// Both widths: renders `route`, checks for errors and saves the screenshots.
	async screens(route, name, opts) {
		for (const width of [ 1280, 390 ]) {
			const page = await this.open(route, Object.assign({}, opts, { width }));
			await this.assertNoErrors(page);
			const wide = await page.evaluate(() => document.documentElement.scrollWidth);
			assert.ok(wide <= width, `${route} at ${width} px is ${wide} px wide`);
			await this.screenshot(page, name);
			await page.close();
		}
	}

	// Clicks the first element matching `sel` whose text includes `text` (if given).
	async click(page, sel, text) {
		const handles = await page.$$(sel);
		for (const h of handles) {
			const t = await h.evaluate((n) => n.innerText || n.value || n.title || '');
			const visible = await h.evaluate((n) => !!(n.offsetWidth || n.offsetHeight || n.getClientRects().length));
			if (visible && (text == null || t.includes(text))) {
				await h.click();
				await this.settle(page);
				return h;
			}
		}
		throw new Error(`nothing to click: ${sel}${text ? ` with text '${text}'` : ''}`);
	}

	async type(page, sel, value) {
		await page.$eval(sel, (n) => { n.value = ''; });
		await page.type(sel, value);
		await page.$eval(sel, (n) => { n.dispatchEvent(new Event('blur')); n.dispatchEvent(new Event('change', { bubbles: true })); });
	}

	calls(filter) {
		return this.world.calls.filter((c) => !filter || Object.entries(filter).every(([k, v]) => c[k] === v));
	}

	async close() {
		for (const p of this.pages) await p.close().catch(() => {});
	}
}

async function run(tests, filter) {
	if (!CHROMIUM) {
		console.log('not ok - chromium installed (apt-get install chromium)');
		console.log('0 passed, 1 failed');
		return 1;
	}
	let puppeteer;
	try { puppeteer = require('puppeteer-core'); }
	catch (e) {
		console.log('not ok - puppeteer-core installed (cd tests/luci && npm ci)');
		console.log('0 passed, 1 failed');
		return 1;
	}
	const srv = await server.start({ appDir: process.env.LUCI_APP });
	const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'braid-chromium-'));
	const browser = await puppeteer.launch({
		executablePath: CHROMIUM, headless: true, args: FLAGS.concat([ `--user-data-dir=${profile}` ]),
		protocolTimeout: 60000
	});
	let pass = 0, fail = 0;
	const t0 = Date.now();
	for (const t of tests) {
		if (filter && !t.name.includes(filter)) continue;
		const ctx = new Ctx(srv, browser, t.name);
		ctx.reset({});
		try {
			const limit = t.timeout || 30000;
			let timer;
			await Promise.race([ t.fn(ctx), new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timed out after ${limit / 1000} s`)), limit); }) ]);
			clearTimeout(timer);
			pass++;
			console.log(`ok - ${t.name}`);
		}
		catch (e) {
			fail++;
			console.log(`not ok - ${t.name}`);
			console.log(String(e && e.stack || e).split('\n').slice(0, 12).map((l) => '#   ' + l).join('\n'));
		}
		finally {
			await ctx.close();
		}
	}
	await browser.close();
	srv.close();
	fs.rmSync(profile, { recursive: true, force: true });
	console.log(`# ${((Date.now() - t0) / 1000).toFixed(1)} s; screenshots in ${path.relative(ROOT, SCREENS)}/`);
	console.log(`${pass} passed, ${fail} failed`);
	return fail ? 1 : 0;
}

module.exports = { run, Ctx, assert };
