// Stand-in for LuCI's client framework core (luci-base's luci.js): the global `L`, `E`, `_`,
// String.prototype.format, and the built-in modules `baseclass`, `dom`, `poll`, `request`,
// `session` and `view`. Written for Braid's browser tests from LuCI's documented API; only what
// luci-app-braid uses. See tests/luci/README.md for what is covered and how it differs.
'use strict';

(function(window, document) {
	// ------------------------------------------------------------------ classes (baseclass)
	// extend() makes a subclass whose constructor runs __init__; this.super(name, args) calls
	// the next implementation of `name` up the prototype chain from the one running now.
	var superStacks = new WeakMap();

	function Class() {}

	Class.prototype.super = function(key, callArgs) {
		var stacks = superStacks.get(this);
		if (!stacks) superStacks.set(this, stacks = {});
		var stack = stacks[key] || (stacks[key] = []);
		var from = stack.length ? stack[stack.length - 1] : Object.getPrototypeOf(this);
		var proto = Object.getPrototypeOf(from);
		while (proto && !Object.prototype.hasOwnProperty.call(proto, key))
			proto = Object.getPrototypeOf(proto);
		if (!proto) return null;
		var fn = proto[key];
		if (arguments.length < 2) return fn;
		if (typeof fn != 'function') throw new ReferenceError(key + ' is not a function in base class');
		if (typeof callArgs != 'object' || callArgs == null)
			callArgs = Array.prototype.slice.call(arguments, 1);
		stack.push(proto);
		try { return fn.apply(this, callArgs); }
		finally { stack.pop(); }
	};

	Class.prototype.varargs = function(args, offset) {
		return Array.prototype.slice.call(arguments, 2).concat(Array.prototype.slice.call(args, offset));
	};

	function classExtend(Parent, props) {
		// A class without an __init__ of its own runs its parent's through super(), so that
		// the parent's own super('__init__') continues from there.
		var C = function() {
			if (!(this instanceof C)) throw new TypeError('Constructor must not be called without "new"');
			if (Object.prototype.hasOwnProperty.call(Object.getPrototypeOf(this), '__init__')) {
				if (typeof this.__init__ == 'function') this.__init__.apply(this, arguments);
			}
			else this.super('__init__', arguments);
		};
		C.prototype = Object.create(Parent.prototype);
		Object.getOwnPropertyNames(props || {}).forEach(function(k) {
			Object.defineProperty(C.prototype, k, Object.getOwnPropertyDescriptor(props, k));
		});
		Object.defineProperty(C.prototype, 'constructor', { value: C, writable: true });
		C.extend = function(p) { return classExtend(C, p); };
		C.singleton = function(p) { return new (classExtend(C, p))(); };
		C.instantiate = function(args) { var o = Object.create(C.prototype); C.apply(o, args || []); return o; };
		C.call = function(self, method) {
			return C.prototype[method].apply(self, Array.prototype.slice.call(arguments, 2));
		};
		C.isSubclass = function(X) { return typeof X == 'function' && (X === C || X.prototype instanceof C); };
		return C;
	}
	Class.extend = function(p) { return classExtend(Class, p); };
	Class.singleton = function(p) { return new (classExtend(Class, p))(); };
	Class.isSubclass = function(X) { return typeof X == 'function' && (X === Class || X.prototype instanceof Class); };

	// ------------------------------------------------------------------ String.format
	// LuCI's printf: %s %d %i %f %x %c %q %h (HTML-escaped) %t (seconds as 1d 2h 3m 4s)
	// %m (SI prefixes; %1024.2m for powers of 1024), with width, precision and padding.
	function escapeHTML(s) {
		return String(s).replace(/&/g, '&#38;').replace(/"/g, '&#34;').replace(/'/g, '&#39;')
			.replace(/</g, '&#60;').replace(/>/g, '&#62;');
	}

	String.prototype.format = function() {
		var args = arguments, ai = 0, str = this, out = '';
		var re = /^%(-?)(0|\x20|'.)?(\d+)?(\.\d+)?(%|c|d|i|f|x|X|s|q|h|t|m)/, m;
		while (str.length) {
			var i = str.indexOf('%');
			if (i < 0) { out += str; break; }
			out += str.substr(0, i);
			str = str.substr(i);
			if (!(m = re.exec(str))) { out += '%'; str = str.substr(1); continue; }
			str = str.substr(m[0].length);
			var left = m[1] == '-', pad = m[2] ? (m[2].charAt(0) == "'" ? m[2].charAt(1) : m[2]) : ' ';
			var width = m[3] ? +m[3] : null, prec = m[4] ? +m[4].substr(1) : null, conv = m[5];
			if (conv == '%') { out += '%'; continue; }
			var p = args[ai++], s;
			switch (conv) {
			case 'c': s = String.fromCharCode(parseInt(p, 10) || 0); break;
			case 'd': case 'i': s = String(Math.trunc(Number(p) || 0)); break;
			case 'f': s = (Number(p) || 0).toFixed(prec != null ? prec : 6); break;
			case 'x': s = (Math.trunc(Number(p) || 0)).toString(16); break;
			case 'X': s = (Math.trunc(Number(p) || 0)).toString(16).toUpperCase(); break;
			case 'q': s = JSON.stringify(String(p == null ? '' : p)); break;
			case 'h': s = escapeHTML(p == null ? '' : p); break;
			case 't': {
				var t = Math.max(0, Math.floor(Number(p) || 0)), d = Math.floor(t / 86400);
				var h = Math.floor(t % 86400 / 3600), mi = Math.floor(t % 3600 / 60), se = t % 60;
				s = d ? '%dd %dh %dm %ds'.format(d, h, mi, se) : h ? '%dh %dm %ds'.format(h, mi, se)
					: mi ? '%dm %ds'.format(mi, se) : '%ds'.format(se);
				break;
			}
			case 'm': {
				var base = width || 1000, pr = prec != null ? prec : 2, v = parseFloat(p || 0), u = 0;
				var units = [ ' ', ' K', ' M', ' G', ' T', ' P', ' E' ];
				while (u < units.length - 1 && Math.abs(v) >= base) { v /= base; u++; }
				s = (u ? v.toFixed(pr) : String(v)) + units[u];
				width = null;
				break;
			}
			default: s = p == null ? '' : String(p);
			}
			if (width != null && s.length < width)
				s = left ? s + ' '.repeat(width - s.length)
					: (pad == '0' && /^-/.test(s) ? '-' + '0'.repeat(width - s.length) + s.substr(1) : pad.repeat(width - s.length) + s);
			out += s;
		}
		return out;
	};
	String.prototype.nobr = function() { return this.replace(/[\s\n]+/g, '\u00a0'); };
	String.format = function(fmt) { return String.prototype.format.apply(fmt, Array.prototype.slice.call(arguments, 1)); };

	// ------------------------------------------------------------------ dom
	var instances = new WeakMap();
	var dom = Class.singleton({
		elem: function(e) { return e != null && typeof e == 'object' && 'nodeType' in e; },
		parse: function(s) {
			return new DOMParser().parseFromString(s, 'text/html').body.firstChild;
		},
		matches: function(node, sel) { return this.elem(node) && node.nodeType == 1 && node.matches(sel); },
		parent: function(node, sel) {
			if (this.elem(node) && node.closest) return node.closest(sel);
			while (node && !this.matches(node, sel)) node = node.parentNode;
			return node;
		},
		// As in LuCI: items of an array are nodes or text; a lone string is HTML (innerHTML),
		// which is why views format untrusted text with %h or wrap it in an array.
		append: function(node, children) {
			if (!this.elem(node)) return null;
			if (Array.isArray(children)) {
				for (var i = 0; i < children.length; i++)
					if (this.elem(children[i])) node.appendChild(children[i]);
					else if (children[i] != null) node.appendChild(document.createTextNode('' + children[i]));
				return node.lastChild;
			}
			if (typeof children == 'function') return this.append(node, children(node));
			if (this.elem(children)) return node.appendChild(children);
			if (children != null) { node.innerHTML = '' + children; return node.lastChild; }
			return null;
		},
		content: function(node, children) {
			if (!this.elem(node)) return null;
			while (node.firstChild) node.removeChild(node.firstChild);
			return this.append(node, children);
		},
		attr: function(node, key, val) {
			if (!this.elem(node)) return;
			if (typeof key == 'object' && key != null) {
				for (var k in key) this.attr(node, k, key[k]);
				return;
			}
			if (val == null) return;
			if (typeof val == 'function') { node.addEventListener(key, val); return; }
			if (typeof val == 'object') val = JSON.stringify(val);
			node.setAttribute(key, val === true ? '' : String(val));
		},
		// E(tag | [nodes] | node | '<html>', [attributes], [children]): attributes whose
		// value is a function become event listeners.
		create: function(html, attr, data) {
			var elem;
			if (!(attr instanceof Object) || Array.isArray(attr) || this.elem(attr)) {
				data = attr;
				attr = null;
			}
			if (Array.isArray(html)) {
				elem = document.createDocumentFragment();
				for (var i = 0; i < html.length; i++) elem.appendChild(this.create(html[i]));
			}
			else if (this.elem(html)) elem = html;
			else if (html.charAt(0) == '<') elem = this.parse(html);
			else elem = document.createElement(html);
			if (!elem) return null;
			if (attr) this.attr(elem, attr);
			this.append(elem, data);
			return elem;
		},
		bindClassInstance: function(node, inst) { instances.set(node, inst); },
		findClassInstance: function(node) {
			for (; node; node = node.parentNode)
				if (instances.has(node)) return instances.get(node);
			return null;
		},
		callClassMethod: function(node, method) {
			var inst = this.findClassInstance(node);
			if (!inst || typeof inst[method] != 'function') return null;
			return inst[method].apply(inst, Array.prototype.slice.call(arguments, 2));
		},
		isEmpty: function(node, ignoreFn) {
			for (var c = node.firstElementChild; c; c = c.nextElementSibling)
				if (!c.classList.contains('hidden') && (!ignoreFn || !ignoreFn(c))) return false;
			return true;
		}
	});

	// ------------------------------------------------------------------ request, poll, session
	var request = Class.singleton({
		post: function(url, data, opt) {
			return fetch(url, {
				method: 'POST',
				headers: { 'Content-Type': 'application/json' },
				body: JSON.stringify(data),
				credentials: 'same-origin'
			}).then(function(r) {
				return r.text().then(function(t) {
					return { ok: r.ok, status: r.status, statusText: r.statusText, json: function() { return JSON.parse(t); }, text: function() { return t; } };
				});
			});
		},
		get: function(url) {
			return fetch(url).then(function(r) { return r.text().then(function(t) { return { ok: r.ok, status: r.status, text: function() { return t; }, json: function() { return JSON.parse(t); } }; }); });
		}
	});

	// poll.add(fn, interval) runs fn every `interval` seconds once started (LuCI starts the
	// poller when the page has loaded). Tests drive it with window.__stand.poll().
	var poll = Class.singleton({
		queue: [],
		add: function(fn, interval) {
			var e = { fn: fn, interval: interval || L.env.pollinterval || 5, next: 0 };
			this.queue.push(e);
			if (this.running) this.schedule(e);
			return true;
		},
		remove: function(fn) {
			this.queue = this.queue.filter(function(e) { if (e.fn === fn) clearTimeout(e.timer); return e.fn !== fn; });
		},
		schedule: function(e) {
			var self = this;
			clearTimeout(e.timer);
			e.timer = setTimeout(function() {
				Promise.resolve().then(e.fn).catch(function(err) { console.error(err); }).then(function() {
					if (self.running && self.queue.indexOf(e) >= 0) self.schedule(e);
				});
			}, e.interval * 1000 * (L.env.pollscale || 1));
		},
		start: function() {
			if (this.running) return false;
			this.running = true;
			this.queue.forEach(this.schedule, this);
			return true;
		},
		stop: function() {
			this.running = false;
			this.queue.forEach(function(e) { clearTimeout(e.timer); });
			return true;
		},
		active: function() { return !!this.running; },
		// Test hook: run every poll function once, now, and wait for all of them.
		runOnce: function() {
			return Promise.all(this.queue.map(function(e) { return Promise.resolve().then(e.fn); }));
		}
	});

	var session = Class.singleton({
		getID: function() { return L.env.sessionid; },
		getToken: function() { return L.env.token; },
		getLocalData: function(k) {
			try { var d = JSON.parse(window.sessionStorage.getItem('luci-session-store') || '{}'); return k ? d[k] : d; }
			catch (e) { return null; }
		},
		setLocalData: function(k, v) {
			var d = this.getLocalData() || {};
			d[k] = v;
			window.sessionStorage.setItem('luci-session-store', JSON.stringify(d));
			return true;
		}
	});

	// ------------------------------------------------------------------ the module loader
	// A module is a file under luci-static/resources/ (`view.braid.status` is
	// view/braid/status.js) whose body starts with 'use strict' and 'require X [as Y]' lines
	// and returns a value; a returned class is instantiated, as LuCI does.
	var modules = {}, builtins = {};

	function requireModule(name, from) {
		if (builtins[name]) return Promise.resolve(builtins[name]);
		if (modules[name]) return modules[name];
		var url = L.env.resource + '/' + name.replace(/\./g, '/') + '.js';
		modules[name] = fetch(url + '?v=' + L.env.buildid).then(function(r) {
			if (!r.ok) throw new Error('Unable to load module ' + name + ' (HTTP ' + r.status + ')' + (from ? ' required by ' + from : ''));
			return r.text();
		}).then(function(src) {
			var deps = [], names = [], re = /^\s*(?:'use strict';|'require\s+([a-zA-Z0-9_.]+)(?:\s+as\s+([a-zA-Z0-9_]+))?';|\/\/[^\n]*|\/\*[\s\S]*?\*\/)/, m, s = src;
			while ((m = re.exec(s)) != null && m[0].length) {
				if (m[1]) { deps.push(m[1]); names.push(m[2] || m[1].replace(/^.*\./, '')); }
				s = s.substr(m[0].length);
			}
			return Promise.all(deps.map(function(d) { return requireModule(d, name); })).then(function(instances) {
				var fn;
				try {
					fn = new Function(['L', '_', 'N_', 'E'].concat(names).join(','), src + '\n//# sourceURL=' + url);
				}
				catch (e) { throw new SyntaxError(name + ': ' + e.message); }
				var ret = fn.apply(window, [L, L.translate, L.ntranslate, E].concat(instances));
				if (Class.isSubclass(ret)) ret = ret.instantiate([L]);
				return ret;
			});
		});
		return modules[name];
	}

	// ------------------------------------------------------------------ L
	var L = window.L = Class.singleton({
		env: window.LuCIEnv || {},
		Class: Class,
		dom: dom,
		Poll: poll,
		Request: request,
		require: function(name) { return requireModule(name); },
		translate: function(s) { return s; },
		ntranslate: function(n, s, p) { return n == 1 ? s : p; },
		url: function() {
			return [ this.env.scriptname || '/cgi-bin/luci' ].concat(Array.prototype.slice.call(arguments).filter(function(x) { return x != null && x !== ''; })).join('/');
		},
		resource: function() {
			return [ this.env.resource ].concat(Array.prototype.slice.call(arguments)).join('/');
		},
		media: function() { return [ this.env.media || '/luci-static/bootstrap' ].concat(Array.prototype.slice.call(arguments)).join('/'); },
		bind: function(fn, self) {
			var args = Array.prototype.slice.call(arguments, 2);
			return function() { return fn.apply(self, args.concat(Array.prototype.slice.call(arguments))); };
		},
		isObject: function(v) { return v != null && typeof v == 'object' && !Array.isArray(v); },
		isArguments: function(v) { return Object.prototype.toString.call(v) == '[object Arguments]'; },
		toArray: function(v) {
			if (v == null) return [];
			if (Array.isArray(v)) return v;
			if (L.isObject(v)) return [ v ];
			var s = String(v).trim();
			return s != '' ? s.split(/\s+/) : [];
		},
		sortedKeys: function(obj) { return Object.keys(obj || {}).sort(L.naturalCompare); },
		naturalCompare: function(a, b) {
			return String(a == null ? '' : a).localeCompare(String(b == null ? '' : b), undefined, { numeric: true });
		},
		resolveDefault: function(value, defvalue) {
			return Promise.resolve(value).catch(function() { return defvalue; });
		},
		raise: function(type, fmt) {
			var msg = fmt ? String.prototype.format.apply(fmt, Array.prototype.slice.call(arguments, 2)) : type;
			var e = new Error(msg);
			e.name = type || 'Error';
			throw e;
		},
		error: function(type, fmt) {
			try { L.raise.apply(L, arguments); }
			catch (e) {
				if (!e.reported) {
					e.reported = true;
					var v = document.querySelector('#view');
					if (v && L.ui) dom.content(v, E('div', { 'class': 'alert-message error' }, [ E('h4', _('Runtime error')), E('pre', [ e.message ]) ]));
				}
				throw e;
			}
		},
		hasSystemFeature: function(feat, sub) {
			var f = (this.env.features || {})[feat];
			return sub ? !!(f && f[sub]) : !!f;
		},
		// Whether the menu node of this page is satisfied (null: no node) and writable.
		hasViewPermission: function() {
			var n = this.env.nodespec;
			if (!L.isObject(n) || !n.satisfied) return null;
			return !n.readonly;
		},
		get: function(url, args, cb) { return request.get(url).then(cb); },
		post: function(url, args, cb) { return request.post(url, args).then(cb); },
		halt: function() { poll.stop(); },
		run: function() { poll.start(); }
	});

	var E = window.E = function() { return dom.create.apply(dom, arguments); };
	window._ = function(s) { return s; };
	window.N_ = function(n, s, p) { return n == 1 ? s : p; };
	window.cbi_update_table = function(table, data, placeholder) {
		var t = new L.ui.Table(table); t.update(data, placeholder);
	};

	// ------------------------------------------------------------------ view
	// A view module returns view.extend({ load, render, handleSave*, ... }); instantiating it
	// loads, renders into #view and adds the footer, as LuCI's view class does.
	var View = Class.extend({
		__init__: function() {
			var vp = document.getElementById('view');
			dom.content(vp, E('div', { 'class': 'spinning' }, _('Loading view…')));
			return Promise.resolve(this.load())
				.then(L.bind(this.render, this))
				.then(L.bind(function(nodes) {
					var vp = document.getElementById('view');
					dom.content(vp, nodes);
					dom.append(vp, this.addFooter());
					document.dispatchEvent(new CustomEvent('luci-loaded'));
					poll.start();
					window.__stand && window.__stand.viewReady(this);
				}, this)).catch(function(e) {
					window.__stand && window.__stand.viewFailed(e);
					try { L.error(e); } catch (x) {}
					console.error(e);
				});
		},
		load: function() {},
		render: function() {},
		handleSave: function(ev) {
			var tasks = [];
			document.getElementById('maincontent').querySelectorAll('.cbi-map').forEach(function(map) {
				tasks.push(dom.callClassMethod(map, 'save'));
			});
			return Promise.all(tasks);
		},
		handleSaveApply: function(ev, mode) {
			return this.handleSave(ev).then(function() {
				L.ui.changes.apply(mode == '0');
			});
		},
		handleReset: function(ev) {
			var tasks = [];
			document.getElementById('maincontent').querySelectorAll('.cbi-map').forEach(function(map) {
				tasks.push(dom.callClassMethod(map, 'reset'));
			});
			return Promise.all(tasks);
		},
		addFooter: function() {
			var footer = E([]), vp = document.getElementById('view'), readonly = true;
			vp.querySelectorAll('.cbi-map').forEach(function(map) {
				var m = dom.findClassInstance(map);
				if (m && !m.readonly) readonly = false;
			});
			var saveApply = this.handleSaveApply ? L.ui.createHandlerFn(this, 'handleSaveApply', '1') : null;
			var save = this.handleSave ? L.ui.createHandlerFn(this, 'handleSave') : null;
			var reset = this.handleReset ? L.ui.createHandlerFn(this, 'handleReset') : null;
			if (saveApply || save || reset) {
				footer.appendChild(E('div', { 'class': 'cbi-page-actions' }, [
					saveApply ? E('button', { 'class': 'cbi-button cbi-button-apply', 'click': saveApply, 'disabled': readonly || null }, [ _('Save & Apply') ]) : '', ' ',
					save ? E('button', { 'class': 'cbi-button cbi-button-save', 'click': save, 'disabled': readonly || null }, [ _('Save') ]) : '', ' ',
					reset ? E('button', { 'class': 'cbi-button cbi-button-reset', 'click': reset, 'disabled': readonly || null }, [ _('Reset') ]) : ''
				]));
			}
			return footer;
		}
	});

	builtins.baseclass = Class;
	builtins.dom = dom;
	builtins.poll = poll;
	builtins.request = request;
	builtins.session = session;
	builtins.view = View;
	L.view = View;
})(window, document);
