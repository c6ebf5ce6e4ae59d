// luci-app-braid's validators (braid/validate.js) against the daemon's parser, on the table
// tests/config_values.rs keeps equal to what `braid` says: same verdict, same message.
// Run: node tests/luci/validate.test.js (no browser). Prints "N passed, N failed".
'use strict';
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '../..');

// The module as LuCI loads it: String.format and a baseclass from the stand-in.
function loadValidate(appDir) {
	global.window = global;
	global.document = { getElementById: () => null, querySelector: () => null, addEventListener() {}, dispatchEvent() {} };
	require('./www/luci-static/resources/luci.js');
	const src = fs.readFileSync(path.join(appDir, 'htdocs/luci-static/resources/braid/validate.js'), 'utf8');
	const ret = new Function('L', 'baseclass', src)(global.L, global.L.Class);
	return ret.instantiate([]);
}

const appDir = path.resolve(process.env.LUCI_APP || path.join(ROOT, 'luci-app'));
const v = loadValidate(appDir);
const table = JSON.parse(fs.readFileSync(path.join(ROOT, 'tests/fixtures/config/values.json'), 'utf8'));
let pass = 0, fail = 0;
for (const row of table) {
	const got = v[row.kind](row.value);
	const want = row.error == null ? true : row.error;
	if (got === want) pass++;
	else {
		fail++;
		console.log(`not ok - ${row.kind} '${row.value}': braid says ${JSON.stringify(want)}, LuCI says ${JSON.stringify(got)}`);
	}
}
console.log(`ok - ${pass} of ${table.length} values judged as braid judges them`);
console.log(`${fail ? 0 : 1} passed, ${fail ? 1 : 0} failed`);
process.exit(fail ? 1 : 0);
