// Stand-in for LuCI's ui.js: the widgets the form classes render (Textfield, Checkbox, Select,
// Combobox, DynamicList, Dropdown), ui.Table, modal dialogs, notifications, tabs, the
// "Unsaved changes" indicator and apply, createHandlerFn, addValidator. Same constructor
// signatures and the same observable behaviour as LuCI where the views depend on it:
// - Table(captions, options, placeholder): the placeholder argument shows only until the
//   first update(); update(rows, placeholder) falls back to options.placeholder, then to
//   "No data";
// - a Select without the value among its choices shows (and returns) its first choice unless
//   `optional`;
// - createHandlerFn marks the button busy while the handler's promise runs and does not
//   catch its rejection (it surfaces as an unhandled rejection, as in LuCI).
'use strict';
'require baseclass';
'require dom';
'require uci';
'require validation';

var modalDiv = null;

var UIElement = baseclass.extend({
	getValue: function() {
		var f = this.node ? this.node.querySelector('input, select, textarea') : null;
		return f ? f.value : null;
	},
	setValue: function(v) {
		var f = this.node ? this.node.querySelector('input, select, textarea') : null;
		if (f) f.value = v;
	},
	setPlaceholder: function(p) {
		var f = this.node ? this.node.querySelector('input') : null;
		if (f) f.placeholder = p;
	},
	isChanged: function() { return this.node && this.node.getAttribute('data-changed') == 'true'; },
	isValid: function() { return this.validState !== false; },
	getValidationError: function() { return this.validationError || ''; },
	triggerValidation: function() {
		if (typeof this.vfunc != 'function') return false;
		var wasValid = this.isValid();
		this.vfunc();
		return wasValid != this.isValid();
	},
	registerEvents: function(target, synevent, events) {
		var dispatchFn = L.bind(function(ev) {
			this.node.dispatchEvent(new CustomEvent(synevent, { bubbles: true }));
		}, this);
		for (var i = 0; i < events.length; i++) target.addEventListener(events[i], dispatchFn);
	},
	setUpdateEvents: function(target) {
		var datatype = this.options.datatype, optional = this.options.hasOwnProperty('optional') ? this.options.optional : true,
		    validate = this.options.validate, events = this.varargs(arguments, 1);
		this.registerEvents(target, 'widget-update', events);
		if (!datatype && !validate) return;
		this.vfunc = UI.prototype.addValidator.apply(UI.prototype, [ target, datatype || 'string', optional, validate ].concat(events));
		this.node.addEventListener('validation-success', L.bind(function(ev) { this.validState = true; this.validationError = ''; }, this));
		this.node.addEventListener('validation-failure', L.bind(function(ev) { this.validState = false; this.validationError = ev.detail.message; }, this));
	},
	setChangeEvents: function(target) {
		var tag_changed = L.bind(function(ev) { this.setAttribute('data-changed', true); }, this.node);
		for (var i = 1; i < arguments.length; i++) target.addEventListener(arguments[i], tag_changed);
		this.registerEvents(target, 'widget-change', this.varargs(arguments, 1));
	},
	render: function() {}
});

var UITextfield = UIElement.extend({
	__init__: function(value, options) {
		this.value = value;
		this.options = Object.assign({ optional: true, password: false }, options);
	},
	render: function() {
		var frame = E('div', { 'id': this.options.id });
		var input = E('input', {
			'id': this.options.id ? 'widget.' + this.options.id : null,
			'name': this.options.name,
			'type': this.options.password ? 'password' : 'text',
			'class': this.options.password ? 'cbi-input-password' : 'cbi-input-text',
			'readonly': this.options.readonly ? '' : null,
			'disabled': this.options.disabled ? '' : null,
			'maxlength': this.options.maxlength,
			'placeholder': this.options.placeholder,
			'value': this.value
		});
		frame.appendChild(input);
		if (this.options.password)
			frame.appendChild(E('button', { 'class': 'cbi-button cbi-button-neutral', 'title': _('Reveal/hide password'), 'aria-label': _('Reveal/hide password'),
				'click': function(ev) { var i = this.previousElementSibling; i.type = i.type == 'password' ? 'text' : 'password'; ev.preventDefault(); } }, '∗'));
		return this.bind(frame);
	},
	bind: function(frame) {
		var input = frame.querySelector('input');
		this.node = frame;
		this.setUpdateEvents(input, 'keyup', 'blur');
		this.setChangeEvents(input, 'change');
		dom.bindClassInstance(frame, this);
		return frame;
	},
	getValue: function() { return this.node.querySelector('input').value; },
	setValue: function(v) { this.node.querySelector('input').value = v; }
});

var UICheckbox = UIElement.extend({
	__init__: function(value, options) {
		this.value = value;
		this.options = Object.assign({ value_enabled: '1', value_disabled: '0' }, options);
	},
	render: function() {
		var id = 'cb%08x'.format(Math.random() * 0xffffffff);
		var frame = E('div', { 'id': this.options.id, 'class': 'cbi-checkbox' });
		if (this.options.hiddenname)
			frame.appendChild(E('input', { 'type': 'hidden', 'name': this.options.hiddenname, 'value': 1 }));
		frame.appendChild(E('input', {
			'id': id, 'name': this.options.name, 'type': 'checkbox', 'value': this.options.value_enabled,
			'checked': (this.value == this.options.value_enabled) ? '' : null,
			'disabled': this.options.disabled ? '' : null,
			'data-widget-id': this.options.id ? 'widget.' + this.options.id : null
		}));
		frame.appendChild(E('label', { 'for': id }));
		this.node = frame;
		var input = frame.querySelector('input[type=checkbox]');
		this.setUpdateEvents(input, 'click', 'blur');
		this.setChangeEvents(input, 'change');
		dom.bindClassInstance(frame, this);
		return frame;
	},
	isChecked: function() { return this.node.querySelector('input[type=checkbox]').checked; },
	getValue: function() { return this.isChecked() ? this.options.value_enabled : this.options.value_disabled; },
	setValue: function(v) { this.node.querySelector('input[type=checkbox]').checked = (v == this.options.value_enabled); }
});

var UISelect = UIElement.extend({
	__init__: function(value, choices, options) {
		this.choices = L.isObject(choices) ? choices : {};
		this.values = L.toArray(value == null ? [] : value);
		this.options = Object.assign({ multiple: false, widget: 'select', orientation: 'horizontal' }, options);
		if (this.options.widget != 'select' && this.options.widget != 'individual') this.options.multiple = false;
	},
	render: function() {
		var frame = E('div', { 'id': this.options.id });
		var keys = Object.keys(this.choices);
		if (this.options.sort === true) keys.sort(L.naturalCompare);
		else if (Array.isArray(this.options.sort)) keys = this.options.sort;
		var sel = E('select', {
			'id': this.options.id ? 'widget.' + this.options.id : null,
			'name': this.options.name, 'size': this.options.size, 'class': 'cbi-input-select',
			'multiple': this.options.multiple ? '' : null,
			'disabled': this.options.disabled ? '' : null
		});
		if (this.options.optional)
			sel.appendChild(E('option', { 'value': '' }, [ this.choices[''] || this.options.placeholder || _('-- Please choose --') ]));
		for (var i = 0; i < keys.length; i++) {
			if (keys[i] === '' && this.options.optional) continue;
			sel.appendChild(E('option', { 'value': keys[i], 'selected': this.values.indexOf(keys[i]) > -1 ? '' : null },
				[ this.choices[keys[i]] || keys[i] ]));
		}
		frame.appendChild(sel);
		this.node = frame;
		this.setUpdateEvents(sel, 'change', 'click', 'blur');
		this.setChangeEvents(sel, 'change');
		dom.bindClassInstance(frame, this);
		return frame;
	},
	getValue: function() {
		var sel = this.node.querySelector('select');
		if (this.options.multiple)
			return Array.prototype.filter.call(sel.options, function(o) { return o.selected; }).map(function(o) { return o.value; });
		return sel.value;
	},
	setValue: function(v) {
		var sel = this.node.querySelector('select'), vals = L.toArray(v);
		Array.prototype.forEach.call(sel.options, function(o) { o.selected = vals.indexOf(o.value) > -1; });
	}
});

// A choice among `choices` or any typed value (LuCI renders a dropdown that accepts custom
// entries; here an input with a datalist).
var UICombobox = UITextfield.extend({
	__init__: function(value, choices, options) {
		this.super('__init__', [ value, options ]);
		this.choices = L.isObject(choices) ? choices : {};
	},
	render: function() {
		var listId = 'dl%08x'.format(Math.random() * 0xffffffff);
		var frame = E('div', { 'id': this.options.id, 'class': 'cbi-dropdown' }, [
			E('input', { 'id': this.options.id ? 'widget.' + this.options.id : null, 'type': 'text', 'class': 'cbi-input-text',
				'list': listId, 'value': this.value, 'placeholder': this.options.placeholder || this.options.select_placeholder,
				'disabled': this.options.disabled ? '' : null }),
			E('datalist', { 'id': listId }, Object.keys(this.choices).map(L.bind(function(k) {
				return E('option', { 'value': k }, [ this.choices[k] ]);
			}, this)))
		]);
		return this.bind(frame);
	}
});

// Device and other pickers: a select of `choices`, plus a text entry for a value not listed
// when `create` is set (LuCI's custom-value row of its dropdown).
var UIDropdown = UIElement.extend({
	__init__: function(value, choices, options) {
		this.choices = L.isObject(choices) ? choices : {};
		this.values = L.toArray(value == null ? [] : value);
		this.options = Object.assign({ multiple: false, create: false, optional: true }, options);
	},
	render: function() {
		var frame = E('div', { 'id': this.options.id, 'class': 'cbi-dropdown' });
		var keys = Object.keys(this.choices);
		if (Array.isArray(this.options.sort)) keys = this.options.sort.filter(function(k) { return keys.indexOf(k) > -1; });
		else if (this.options.sort !== false) keys.sort(L.naturalCompare);
		var custom = this.values.filter(L.bind(function(v) { return !(v in this.choices); }, this));
		var sel = E('select', {
			'id': this.options.id ? 'widget.' + this.options.id : null, 'class': 'cbi-input-select',
			'multiple': this.options.multiple ? '' : null, 'disabled': this.options.disabled ? '' : null
		});
		if (this.options.optional && !this.options.multiple)
			sel.appendChild(E('option', { 'value': '' }, [ this.options.select_placeholder || this.options.placeholder || _('-- Please choose --') ]));
		keys.concat(custom).forEach(L.bind(function(k) {
			var label = this.choices[k];
			sel.appendChild(E('option', { 'value': k, 'selected': this.values.indexOf(k) > -1 ? '' : null },
				[ label != null ? (dom.elem(label) ? label.cloneNode(true).textContent : label) : k ]));
		}, this));
		frame.appendChild(sel);
		if (this.options.create) {
			var entry = E('input', { 'type': 'text', 'class': 'create-item-input', 'placeholder': this.options.custom_placeholder || _('-- custom --'),
				'disabled': this.options.disabled ? '' : null });
			entry.addEventListener('change', L.bind(function(ev) {
				var v = ev.target.value.trim();
				if (v === '') return;
				if (!Array.prototype.some.call(sel.options, function(o) { return o.value == v; }))
					sel.appendChild(E('option', { 'value': v }, v));
				if (!this.options.multiple) sel.value = v;
				else Array.prototype.forEach.call(sel.options, function(o) { if (o.value == v) o.selected = true; });
				ev.target.value = '';
				sel.dispatchEvent(new Event('change', { bubbles: true }));
			}, this));
			frame.appendChild(entry);
		}
		this.node = frame;
		this.setUpdateEvents(sel, 'change', 'blur');
		this.setChangeEvents(sel, 'change');
		dom.bindClassInstance(frame, this);
		return frame;
	},
	getValue: function() {
		var sel = this.node.querySelector('select');
		if (this.options.multiple)
			return Array.prototype.filter.call(sel.options, function(o) { return o.selected; }).map(function(o) { return o.value; });
		return sel.value;
	},
	setValue: function(v) {
		var sel = this.node.querySelector('select'), vals = L.toArray(v);
		Array.prototype.forEach.call(sel.options, function(o) { o.selected = vals.indexOf(o.value) > -1; });
	},
	addChoices: function(values, labels) {
		var sel = this.node.querySelector('select');
		L.toArray(values).forEach(function(v) {
			if (!Array.prototype.some.call(sel.options, function(o) { return o.value == v; }))
				sel.appendChild(E('option', { 'value': v }, [ labels && labels[v] || v ]));
		});
	}
});

var UIDynamicList = UIElement.extend({
	__init__: function(values, choices, options) {
		this.values = L.toArray(values);
		this.choices = L.isObject(choices) ? choices : null;
		this.options = Object.assign({}, options, { multiple: false, optional: true });
	},
	render: function() {
		var frame = E('div', { 'id': this.options.id, 'class': 'cbi-dynlist' });
		this.node = frame;
		this.values.forEach(L.bind(this.addItem, this, frame));
		var input = E('input', { 'type': 'text', 'class': 'cbi-input-text', 'placeholder': this.options.placeholder,
			'disabled': this.options.disabled ? '' : null, 'id': this.options.id ? 'widget.' + this.options.id : null });
		var add = E('div', { 'class': 'add-item' }, [ input,
			E('div', { 'class': 'btn cbi-button cbi-button-add', 'click': L.bind(function(ev) {
				if (input.classList.contains('cbi-input-invalid') || input.value.trim() === '') return;
				this.addItem(frame, input.value.trim());
				input.value = '';
				frame.dispatchEvent(new CustomEvent('widget-change', { bubbles: true }));
			}, this) }, '+') ]);
		frame.appendChild(add);
		input.addEventListener('keydown', function(ev) { if (ev.key == 'Enter') { ev.preventDefault(); add.lastChild.click(); } });
		this.setUpdateEvents(input, 'keyup', 'blur');
		dom.bindClassInstance(frame, this);
		return frame;
	},
	addItem: function(frame, value) {
		var item = E('div', { 'class': 'item' }, [
			E('span', {}, value),
			E('input', { 'type': 'hidden', 'value': value }),
			E('span', { 'class': 'remove', 'click': function(ev) {
				var f = this.parentNode.parentNode;
				this.parentNode.remove();
				f.setAttribute('data-changed', true);
				f.dispatchEvent(new CustomEvent('widget-change', { bubbles: true }));
			} }, '×')
		]);
		var add = frame.querySelector('.add-item');
		frame.insertBefore(item, add);
	},
	getValue: function() {
		var items = this.node.querySelectorAll('.item > input[type=hidden]'), v = [];
		for (var i = 0; i < items.length; i++) v.push(items[i].value);
		var pending = this.node.querySelector('.add-item > input');
		if (pending && pending.value.trim() !== '' && !pending.classList.contains('cbi-input-invalid')) v.push(pending.value.trim());
		return v;
	},
	setValue: function(values) {
		this.node.querySelectorAll('.item').forEach(function(i) { i.remove(); });
		L.toArray(values).forEach(L.bind(this.addItem, this, this.node));
	}
});

var UITable = baseclass.extend({
	__init__: function(captions, options, placeholder) {
		var id = options.id || 'table%08x'.format(Math.random() * 0xffffffff);
		var table = E('table', { 'id': id, 'class': 'table' }, [ E('tr', { 'class': 'tr table-titles' }) ]);
		this.id = id;
		this.node = table;
		this.options = options;
		for (var i = 0; i < captions.length; i++) {
			if (captions[i] == null) continue;
			var th = E('th', { 'class': 'th' }, [ captions[i] ]);
			if (typeof options.captionClasses == 'object')
				L.toArray(options.captionClasses[i]).forEach(function(c) { th.classList.add(c); });
			table.firstElementChild.appendChild(th);
		}
		if (placeholder)
			table.appendChild(E('tr', { 'class': 'tr placeholder' }, E('td', { 'class': 'td' }, placeholder)));
		L.toArray(options.classes).forEach(function(c) { table.classList.add(c); });
	},
	update: function(data, placeholder) {
		placeholder = placeholder || this.options.placeholder || _('No data');
		if (!Array.isArray(data)) return;
		this.data = data;
		var headings = [].slice.call(this.node.firstElementChild.querySelectorAll('th')), captionClasses = this.options.captionClasses;
		while (this.node.childNodes.length > 1) this.node.removeChild(this.node.lastChild);
		data.forEach(L.bind(function(row, n) {
			var tr = E('tr', { 'class': 'tr cbi-rowstyle-%d'.format(n % 2 ? 2 : 1) });
			for (var i = 0; i < headings.length; i++) {
				var text = (headings[i].innerText || headings[i].textContent || '').trim();
				var val = Array.isArray(row[i]) ? row[i][1] : row[i];
				var td = E('td', { 'class': 'td', 'data-title': text !== '' ? text : null, 'data-value': Array.isArray(row[i]) ? row[i][0] : null },
					val != null ? val : '');
				if (typeof captionClasses == 'object')
					L.toArray(captionClasses[i]).forEach(function(c) { td.classList.add(c); });
				tr.appendChild(td);
			}
			this.node.appendChild(tr);
		}, this));
		if (placeholder && this.node.firstElementChild === this.node.lastElementChild)
			this.node.appendChild(E('tr', { 'class': 'tr placeholder' }, E('td', { 'class': 'td' }, placeholder)));
		return this.node;
	},
	render: function() { return this.node; }
});

var UI = baseclass.extend({
	__init__: function() {
		modalDiv = document.body.appendChild(E('div', { 'id': 'modal_overlay' }, E('div', { 'class': 'modal', 'role': 'dialog', 'aria-modal': true })));
		L.ui = this;
		L.showModal = this.showModal;
		L.hideModal = this.hideModal;
		document.addEventListener('luci-loaded', this.tabs.init.bind(this.tabs));
		document.addEventListener('luci-loaded', this.changes.init.bind(this.changes));
		document.addEventListener('uci-loaded', this.changes.init.bind(this.changes));
	},

	showModal: function(title, children) {
		var dlg = modalDiv.firstElementChild;
		dlg.setAttribute('class', 'modal');
		for (var i = 2; i < arguments.length; i++) dlg.classList.add(arguments[i]);
		dom.content(dlg, E('h4', {}, title));
		dom.append(dlg, children);
		document.body.classList.add('modal-overlay-active');
		modalDiv.scrollTop = 0;
		return dlg;
	},

	hideModal: function() { document.body.classList.remove('modal-overlay-active'); },

	addNotification: function(title, children) {
		var mc = document.querySelector('#maincontent') || document.body;
		var msg = E('div', { 'class': 'alert-message fade-in', 'style': 'display:flex' }, [
			E('div', { 'style': 'flex:10' }),
			E('div', { 'style': 'flex:1 1 auto; display:flex' }, [
				E('button', { 'class': 'btn', 'style': 'margin-left:auto; margin-top:auto',
					'click': function(ev) { dom.parent(ev.target, '.alert-message').remove(); } }, [ _('Dismiss') ])
			])
		]);
		if (title != null) dom.append(msg.firstElementChild, E('h4', {}, title));
		dom.append(msg.firstElementChild, children);
		for (var i = 2; i < arguments.length; i++) msg.classList.add(arguments[i]);
		mc.insertBefore(msg, mc.firstElementChild);
		return msg;
	},

	showIndicator: function(id, label, handler, style) {
		var div = document.querySelector('#indicators');
		if (!div) return false;
		var el = div.querySelector('span[data-indicator="%s"]'.format(id));
		if (!el) el = div.appendChild(E('span', { 'data-indicator': id, 'click': typeof handler == 'function' ? handler : null }, [ '' ]));
		el.firstChild.data = label;
		el.setAttribute('data-style', style == 'inactive' ? 'inactive' : 'active');
		return true;
	},

	hideIndicator: function(id) {
		var el = document.querySelector('#indicators span[data-indicator="%s"]'.format(id));
		if (el) el.remove();
		return !!el;
	},

	itemlist: function(node, items, separators) {
		var children = [];
		if (!Array.isArray(separators)) separators = [ separators || E('br') ];
		for (var i = 0; i < items.length; i += 2) {
			if (items[i + 1] == null) continue;
			children.push(E('span', { 'class': 'nowrap' }, [ items[i] ? E('strong', items[i] + ': ') : '', items[i + 1] ]));
			if (i + 2 < items.length) {
				var sep = separators[(i / 2) % separators.length];
				children.push(dom.elem(sep) ? sep.cloneNode(true) : sep);
			}
		}
		dom.content(node, children);
		return node;
	},

	tabs: baseclass.singleton({
		init: function() {
			var groups = new Map();
			document.querySelectorAll('[data-tab]').forEach(function(tab) {
				if (tab.tagName == 'LI') return;
				var p = tab.parentNode;
				if (!groups.has(p)) groups.set(p, []);
				groups.get(p).push(tab);
			});
			groups.forEach(L.bind(function(panes) { this.initTabGroup(panes); }, this));
		},
		initTabGroup: function(panes) {
			panes = [].slice.call(panes).filter(function(p) { return p.nodeType == 1 && p.hasAttribute('data-tab'); });
			if (!panes.length) return;
			var parent = panes[0].parentNode;
			if (parent.querySelector(':scope > ul.cbi-tabmenu')) return;
			var menu = E('ul', { 'class': 'cbi-tabmenu' }), active = 0;
			panes.forEach(function(p, i) {
				if (p.getAttribute('data-tab-active') == 'true') active = i;
				menu.appendChild(E('li', { 'class': 'cbi-tab-disabled', 'data-tab': p.getAttribute('data-tab') }, [
					E('a', { 'href': '#', 'click': function(ev) {
						ev.preventDefault();
						panes.forEach(function(q, j) {
							q.setAttribute('data-tab-active', q === p);
							menu.children[j].className = q === p ? 'cbi-tab' : 'cbi-tab-disabled';
						});
					} }, p.getAttribute('data-tab-title'))
				]));
			});
			parent.insertBefore(menu, panes[0]);
			panes.forEach(function(p, j) {
				p.setAttribute('data-tab-active', j == active);
				menu.children[j].className = j == active ? 'cbi-tab' : 'cbi-tab-disabled';
			});
		},
		updateTabs: function() {}
	}),

	changes: baseclass.singleton({
		init: function() {
			if (!L.env.sessionid) return;
			return uci.changes().then(L.bind(this.renderChangeIndicator, this));
		},
		setIndicator: function(n) {
			if (n > 0) UI.prototype.showIndicator('uci-changes', '%s: %d'.format(_('Unsaved Changes'), n), null, 'active');
			else UI.prototype.hideIndicator('uci-changes');
		},
		renderChangeIndicator: function(changes) {
			var n = 0;
			for (var c in changes) if (Array.isArray(changes[c])) n += changes[c].length;
			this.changes = changes;
			this.setIndicator(n);
		},
		apply: function(checked) {
			UI.prototype.showModal(_('Configuration') + '…', [ E('p', { 'class': 'spinning' }, _('Starting configuration apply…')) ]);
			return uci.apply(10).then(L.bind(function() {
				UI.prototype.hideModal();
				UI.prototype.addNotification(null, E('p', _('Configuration changes applied.')), 'info');
				this.setIndicator(0);
				document.dispatchEvent(new CustomEvent('uci-applied'));
			}, this), function(e) {
				UI.prototype.showModal(_('Configuration') + '…', [ E('p', { 'class': 'alert-message error' }, _('Apply request failed: %s').format(e.message)),
					E('div', { 'class': 'right' }, E('button', { 'class': 'btn', 'click': UI.prototype.hideModal }, _('Dismiss'))) ]);
			});
		}
	}),

	addValidator: function(field, type, optional, vfunc) {
		if (type == null) return;
		var events = this.varargs(arguments, 4);
		if (!events.length) events.push('blur', 'keyup');
		var v = validation.create(field, type == 'string' ? null : type, optional, vfunc);
		var fn = function() { return v.validate(); };
		events.forEach(function(e) { field.addEventListener(e, fn); });
		v.validate();
		return fn;
	},

	createHandlerFn: function(ctx, fn) {
		if (typeof fn == 'string') fn = ctx[fn];
		if (typeof fn != 'function') return null;
		var args = this.varargs(arguments, 2);
		return function(ev) {
			var t = ev.currentTarget;
			t.classList.add('spinning');
			t.disabled = true;
			if (t.blur) t.blur();
			Promise.resolve(fn.apply(ctx, args.concat([ ev ]))).finally(function() {
				t.classList.remove('spinning');
				t.disabled = false;
			});
		};
	},

	AbstractElement: UIElement,
	Textfield: UITextfield,
	Checkbox: UICheckbox,
	Select: UISelect,
	Combobox: UICombobox,
	Dropdown: UIDropdown,
	DynamicList: UIDynamicList,
	Table: UITable
});

return UI;
