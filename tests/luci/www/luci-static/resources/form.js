// Stand-in for LuCI's form.js: Map, NamedSection, TypedSection, TableSection, GridSection
// (rows of text with an Edit modal), and the options Value, DynamicList, ListValue, Flag,
// DummyValue, Button. The save path follows LuCI's rules, which decide what a save writes:
// - Map.load asks `session access` whether the login may write the config (readonly if not);
// - an option's parse() writes when the widget's value differs from the loaded value, and
//   removes it when the value is empty (rmempty/optional) or the option is hidden by its
//   dependencies (unless `retain`); Flag.parse writes unless the value is the default and
//   rmempty, so a Flag with rmempty=false always writes;
// - a ListValue widget with no loaded value shows `default`, else its first choice;
// - GridSection: the table shows text; Edit opens a modal Map of a NamedSection holding
//   copies of the options, whose Save parses, stages (uci save) and re-renders the page map.
'use strict';
'require ui';
'require uci';
'require rpc';
'require dom';
'require baseclass';

var callSessionAccess = rpc.declare({
	object: 'session', method: 'access', params: [ 'scope', 'object', 'function' ], expect: { 'access': false }
});

function isEqual(x, y) {
	if (typeof y == 'object' && y instanceof RegExp) return (x == null) ? false : y.test(x);
	if (x != null && y != null && typeof x != typeof y) return false;
	if ((x == null && y != null) || (x != null && y == null)) return false;
	if (Array.isArray(x)) {
		if (x.length != y.length) return false;
		for (var i = 0; i < x.length; i++) if (!isEqual(x[i], y[i])) return false;
		return true;
	}
	if (typeof x == 'object' && x != null) {
		for (var k in x) if (x.hasOwnProperty(k) && !isEqual(x[k], y[k])) return false;
		for (var k in y) if (y.hasOwnProperty(k) && !x.hasOwnProperty(k)) return false;
		return true;
	}
	return x == y;
}

var CBIAbstractElement = baseclass.extend({
	__init__: function(title, description) {
		this.title = title || '';
		this.description = description || '';
		this.children = [];
	},
	append: function(obj) { this.children.push(obj); },
	parse: function() {
		var args = arguments;
		this.children.forEach(function(c) { c.parse.apply(c, args); });
	},
	render: function() { L.error('InternalError', 'Not implemented'); },
	loadChildren: function() {
		var tasks = [];
		for (var i = 0; i < this.children.length; i++)
			if (!this.children[i].disable)
				tasks.push(this.children[i].load.apply(this.children[i], arguments));
		return Promise.all(tasks);
	},
	renderChildren: function(tab_name) {
		var tasks = [], index = 0;
		for (var i = 0; i < this.children.length; i++)
			if (tab_name === null || this.children[i].tab === tab_name)
				if (!this.children[i].disable)
					tasks.push(this.children[i].render.apply(this.children[i], this.varargs(arguments, 1, index++)));
		return Promise.all(tasks);
	},
	stripTags: function(s) {
		if (typeof s == 'string' && !s.match(/[<>]/)) return s;
		var x = dom.elem(s) ? s : dom.parse('<div>' + s + '</div>');
		return (x && (x.textContent || x.innerText) || '').replace(/([ \t]*\n)+/g, '\n');
	},
	titleFn: function(attr) {
		var s = null;
		if (typeof this[attr] == 'function') s = this[attr].apply(this, this.varargs(arguments, 1));
		else if (typeof this[attr] == 'string') s = arguments.length > 1 ? ''.format.apply(this[attr], this.varargs(arguments, 1)) : this[attr];
		if (s != null) s = this.stripTags(String(s)).trim();
		return (s == null || s == '') ? null : s;
	}
});

var CBIMap = CBIAbstractElement.extend({
	__init__: function(config) {
		this.super('__init__', this.varargs(arguments, 1));
		this.config = config;
		this.parsechain = [ config ];
		this.data = uci;
	},
	findElements: function() {
		var q = arguments.length == 1 ? arguments[0] : '[%s="%s"]'.format(arguments[0], arguments[1]);
		return this.root.querySelectorAll(q);
	},
	findElement: function() {
		var r = this.findElements.apply(this, arguments);
		return r.length ? r[0] : null;
	},
	chain: function(config) { if (this.parsechain.indexOf(config) == -1) this.parsechain.push(config); },
	section: function(cbiClass) {
		if (!CBIAbstractSection.isSubclass(cbiClass)) L.error('TypeError', 'Class must be a descendent of CBIAbstractSection');
		var obj = cbiClass.instantiate(this.varargs(arguments, 1, this));
		this.append(obj);
		return obj;
	},
	load: function() {
		var doCheckACL = this.readonly == null,
		    tasks = [ doCheckACL ? callSessionAccess('uci', this.config, 'write') : true ];
		tasks.push.apply(tasks, this.parsechain.map(L.bind(function(config, i) {
			return i ? L.resolveDefault(this.data.load(config)) : this.data.load(config);
		}, this)));
		return Promise.all(tasks).then(L.bind(function(res) {
			if (res[0] === false) this.readonly = true;
			return this.loadChildren();
		}, this));
	},
	parse: function() {
		return Promise.all(this.children.map(function(c) { return c.parse(); }));
	},
	save: function(cb, silent) {
		this.checkDepends();
		return this.parse()
			.then(cb)
			.then(this.data.save.bind(this.data))
			.then(this.load.bind(this))
			.catch(function(e) {
				if (!silent) {
					ui.showModal(_('Save error'), [
						E('p', {}, [ _('An error occurred while saving the form:') ]),
						E('p', {}, [ E('em', { 'style': 'white-space:pre-wrap' }, [ e.message ]) ]),
						E('div', { 'class': 'right' }, [ E('button', { 'class': 'cbi-button', 'click': ui.hideModal }, [ _('Dismiss') ]) ])
					]);
				}
				return Promise.reject(e);
			}).then(this.renderContents.bind(this));
	},
	reset: function() { return this.renderContents(); },
	render: function() { return this.load().then(this.renderContents.bind(this)); },
	renderContents: function() {
		var mapEl = this.root || (this.root = E('div', { 'id': 'cbi-%s'.format(this.config), 'class': 'cbi-map' }));
		mapEl.addEventListener('cbi-dependency-check', L.bind(this.checkDepends, this));
		dom.bindClassInstance(mapEl, this);
		return this.renderChildren(null).then(L.bind(function(nodes) {
			dom.content(mapEl, null);
			if (this.title) mapEl.appendChild(E('h2', { 'name': 'content' }, this.title));
			if (this.description) mapEl.appendChild(E('div', { 'class': 'cbi-map-descr' }, this.description));
			dom.append(mapEl, nodes);
			this.checkDepends();
			mapEl.querySelectorAll('.cbi-section-node-tabbed').forEach(function(g) { ui.tabs.initTabGroup(g.childNodes); });
			return mapEl;
		}, this));
	},
	lookupOption: function(name, section_id, config_name) {
		var id = name.indexOf('.') > -1 ? 'cbid.%s'.format(name) : 'cbid.%s.%s.%s'.format(config_name || this.config, section_id, name);
		var elem = this.findElement('data-field', id);
		var sid = elem ? id.split(/\./)[2] : null;
		var inst = elem ? dom.findClassInstance(elem) : null;
		return (inst instanceof CBIAbstractValue) ? [ inst, sid ] : null;
	},
	checkDepends: function(ev, n) {
		var changed = false;
		for (var i = 0; i < this.children.length; i++)
			if (this.children[i].checkDepends(ev, n)) changed = true;
		if (changed && (n || 0) < 10) this.checkDepends(ev, (n || 10) + 1);
	},
	isDependencySatisfied: function(depends, config_name, section_id) {
		var def = false;
		if (!Array.isArray(depends) || !depends.length) return true;
		for (var i = 0; i < depends.length; i++) {
			var istat = true, reverse = depends[i]['!reverse'];
			for (var dep in depends[i]) {
				if (dep == '!reverse' || dep == '!contains') continue;
				if (dep == '!default') { def = true; istat = false; continue; }
				var res = this.lookupOption(dep, section_id, config_name),
				    val = (res && res[0].isActive(res[1])) ? res[0].formvalue(res[1]) : null;
				istat = istat && isEqual(val, depends[i][dep]);
			}
			if (istat ^ !!reverse) return true;
		}
		return def;
	}
});

var CBIAbstractSection = CBIAbstractElement.extend({
	__init__: function(map, sectionType) {
		this.super('__init__', this.varargs(arguments, 2));
		this.sectiontype = sectionType;
		this.map = map;
		this.config = map.config;
		this.optional = true;
		this.addremove = false;
		this.dynamic = false;
	},
	cfgsections: function() { L.error('InternalError', 'Not implemented'); },
	filter: function(section_id) { return true; },
	load: function() {
		var section_ids = this.cfgsections(), tasks = [];
		for (var i = 0; i < section_ids.length; i++)
			tasks.push(this.loadChildren(section_ids[i]).then(L.bind(function(sid, values) {
				for (var j = 0; j < values.length; j++) this.children.filter(function(c) { return !c.disable; })[j].cfgvalue(sid, values[j]);
			}, this, section_ids[i])));
		return Promise.all(tasks);
	},
	parse: function() {
		var section_ids = this.cfgsections(), tasks = [];
		for (var i = 0; i < section_ids.length; i++)
			for (var j = 0; j < this.children.length; j++)
				tasks.push(this.children[j].parse(section_ids[i]));
		return Promise.all(tasks);
	},
	tab: function(name, title, description) {
		if (this.tabs && this.tabs[name]) throw 'Tab already declared';
		var entry = { name: name, title: title, description: description, children: [] };
		this.tabs = this.tabs || [];
		this.tabs.push(entry);
		this.tabs[name] = entry;
		this.tab_names = this.tab_names || [];
		this.tab_names.push(name);
	},
	option: function(cbiClass) {
		if (!CBIAbstractValue.isSubclass(cbiClass)) throw L.error('TypeError', 'Class must be a descendant of CBIAbstractValue');
		var obj = cbiClass.instantiate(this.varargs(arguments, 1, this.map, this));
		this.append(obj);
		return obj;
	},
	taboption: function(tabName) {
		if (!this.tabs || !this.tabs[tabName]) throw L.error('ReferenceError', 'Associated tab not declared');
		var obj = this.option.apply(this, this.varargs(arguments, 1));
		obj.tab = tabName;
		this.tabs[tabName].children.push(obj);
		return obj;
	},
	cfgvalue: function(section_id, option) {
		var rv = arguments.length == 1 ? {} : null;
		for (var i = 0, o; (o = this.children[i]) != null; i++)
			if (rv) rv[o.option] = o.cfgvalue(section_id);
			else if (o.option == option) return o.cfgvalue(section_id);
		return rv;
	},
	formvalue: function(section_id, option) {
		for (var i = 0, o; (o = this.children[i]) != null; i++)
			if (o.option == option) return o.formvalue(section_id);
		return null;
	},
	getOption: function(option) {
		for (var i = 0; i < this.children.length; i++) if (this.children[i].option == option) return this.children[i];
		return null;
	},
	getUIElement: function(section_id, option) {
		var o = this.getOption(option);
		return o ? o.getUIElement(section_id) : null;
	},
	renderUCISection: function(section_id) {
		var renderTasks = [];
		if (!this.tabs) return this.renderOptions(null, section_id);
		for (var i = 0; i < this.tab_names.length; i++)
			renderTasks.push(this.renderOptions(this.tab_names[i], section_id));
		return Promise.all(renderTasks).then(this.renderTabContainers.bind(this, section_id));
	},
	renderTabContainers: function(section_id, nodes) {
		var config_name = this.uciconfig || this.map.config, containerEls = E([]);
		for (var i = 0; i < nodes.length; i++) {
			var tab_name = this.tab_names[i], tab_data = this.tabs[tab_name];
			var containerEl = E('div', { 'id': 'container.%s.%s.%s'.format(config_name, section_id, tab_name), 'data-tab': tab_name, 'data-tab-title': tab_data.title, 'data-tab-active': tab_name === this.selected_tab });
			if (tab_data.description) containerEl.appendChild(E('div', { 'class': 'cbi-tab-descr' }, tab_data.description));
			containerEl.appendChild(nodes[i]);
			containerEls.appendChild(containerEl);
		}
		return containerEls;
	},
	renderOptions: function(tab_name, section_id) {
		var in_table = (this instanceof CBITableSection);
		return this.renderChildren(tab_name, section_id, in_table).then(function(nodes) {
			var optionEls = E([]);
			for (var i = 0; i < nodes.length; i++) optionEls.appendChild(nodes[i]);
			return optionEls;
		});
	},
	checkDepends: function(ev, n) {
		var changed = false, sids = this.cfgsections();
		for (var i = 0; i < sids.length; i++)
			for (var j = 0, o; (o = this.children[j]) != null; j++) {
				var isActive = o.isActive(sids[i]), isSatisfied = o.checkDepends(sids[i]);
				if (isActive != isSatisfied) {
					o.setActive(sids[i], !isActive);
					isActive = !isActive;
					changed = true;
				}
				if (!n && isActive) o.triggerValidation(sids[i]);
			}
		return changed;
	}
});

var CBITypedSection = CBIAbstractSection.extend({
	cfgsections: function() {
		return this.map.data.sections(this.uciconfig || this.map.config, this.sectiontype)
			.map(function(s) { return s['.name']; })
			.filter(L.bind(this.filter, this));
	},
	handleAdd: function(ev, name) {
		this.map.data.add(this.uciconfig || this.map.config, this.sectiontype, name);
		return this.map.save(null, true);
	},
	handleRemove: function(section_id, ev) {
		this.map.data.remove(this.uciconfig || this.map.config, section_id);
		return this.map.save(null, true);
	},
	renderSectionAdd: function(extra_class) {
		if (!this.addremove) return E([]);
		var createEl = E('div', { 'class': 'cbi-section-create' }), btn_title = this.titleFn('addbtntitle');
		if (extra_class != null) createEl.classList.add(extra_class);
		if (this.anonymous) {
			createEl.appendChild(E('button', { 'class': 'cbi-button cbi-button-add', 'title': btn_title || _('Add'),
				'click': ui.createHandlerFn(this, 'handleAdd'), 'disabled': this.map.readonly || null }, [ btn_title || _('Add') ]));
		}
		else {
			var nameEl = E('input', { 'type': 'text', 'class': 'cbi-section-create-name', 'disabled': this.map.readonly || null });
			dom.append(createEl, [
				E('div', {}, nameEl),
				E('button', { 'class': 'cbi-button cbi-button-add', 'title': btn_title || _('Add'),
					'click': ui.createHandlerFn(this, function(ev) {
						if (nameEl.classList.contains('cbi-input-invalid')) return;
						return this.handleAdd(ev, nameEl.value);
					}), 'disabled': this.map.readonly || true }, [ btn_title || _('Add') ])
			]);
			if (this.map.readonly !== true) {
				ui.addValidator(nameEl, 'uciname', true, function(v) {
					var button = createEl.querySelector('.cbi-section-create > .cbi-button-add');
					if (v !== '') { button.disabled = null; return true; }
					button.disabled = true;
					return _('Expecting: %s').format(_('non-empty value'));
				}, 'blur', 'keyup');
			}
		}
		return createEl;
	},
	renderSectionPlaceholder: function() { return E('em', _('This section contains no values yet')); },
	renderContents: function(cfgsections, nodes) {
		var config_name = this.uciconfig || this.map.config,
		    sectionEl = E('div', { 'id': 'cbi-%s-%s'.format(config_name, this.sectiontype), 'class': 'cbi-section' });
		if (this.title) sectionEl.appendChild(E('h3', {}, this.title));
		if (this.description) sectionEl.appendChild(E('div', { 'class': 'cbi-section-descr' }, this.description));
		for (var i = 0; i < nodes.length; i++) {
			if (this.addremove)
				sectionEl.appendChild(E('div', { 'class': 'cbi-section-remove right' }, E('button', { 'class': 'cbi-button',
					'click': ui.createHandlerFn(this, 'handleRemove', cfgsections[i]), 'disabled': this.map.readonly || null }, [ _('Delete') ])));
			if (!this.anonymous) sectionEl.appendChild(E('h3', cfgsections[i].toUpperCase()));
			sectionEl.appendChild(E('div', { 'id': 'cbi-%s-%s'.format(config_name, cfgsections[i]),
				'class': this.tabs ? 'cbi-section-node cbi-section-node-tabbed' : 'cbi-section-node', 'data-section-id': cfgsections[i] }, nodes[i]));
		}
		if (nodes.length == 0) sectionEl.appendChild(this.renderSectionPlaceholder());
		sectionEl.appendChild(this.renderSectionAdd());
		dom.bindClassInstance(sectionEl, this);
		return sectionEl;
	},
	render: function() {
		var cfgsections = this.cfgsections(), tasks = [];
		for (var i = 0; i < cfgsections.length; i++) tasks.push(this.renderUCISection(cfgsections[i]));
		return Promise.all(tasks).then(this.renderContents.bind(this, cfgsections));
	}
});

var CBITableSection = CBITypedSection.extend({
	tab: function() { throw 'Tabs are not supported by TableSection'; },
	renderContents: function(cfgsections, nodes) {
		var config_name = this.uciconfig || this.map.config,
		    max_cols = isNaN(this.max_cols) ? this.children.length : this.max_cols,
		    has_more = max_cols < this.children.length,
		    sectionEl = E('div', { 'id': 'cbi-%s-%s'.format(config_name, this.sectiontype), 'class': 'cbi-section cbi-tblsection' }),
		    tableEl = E('table', { 'class': 'table cbi-section-table' });
		if (this.title) sectionEl.appendChild(E('h3', {}, this.title));
		if (this.description) sectionEl.appendChild(E('div', { 'class': 'cbi-section-descr' }, this.description));
		tableEl.appendChild(this.renderHeaderRows(max_cols));
		for (var i = 0; i < nodes.length; i++) {
			var sectionname = this.titleFn('sectiontitle', cfgsections[i]);
			if (sectionname == null) sectionname = cfgsections[i];
			var trEl = E('tr', { 'id': 'cbi-%s-%s'.format(config_name, cfgsections[i]), 'class': 'tr cbi-section-table-row',
				'data-sid': cfgsections[i], 'data-title': (sectionname && (!this.anonymous || this.sectiontitle)) ? sectionname : null,
				'data-section-id': cfgsections[i] });
			while (nodes[i].firstChild) trEl.appendChild(nodes[i].firstChild);
			trEl.appendChild(this.renderRowActions(cfgsections[i], has_more ? _('More…') : null));
			tableEl.appendChild(trEl);
		}
		if (nodes.length == 0)
			tableEl.appendChild(E('tr', { 'class': 'tr cbi-section-table-row placeholder' }, E('td', { 'class': 'td' }, this.renderSectionPlaceholder())));
		sectionEl.appendChild(tableEl);
		sectionEl.appendChild(this.renderSectionAdd('cbi-tblsection-create'));
		dom.bindClassInstance(sectionEl, this);
		return sectionEl;
	},
	renderHeaderRows: function(max_cols, has_action) {
		var trEls = E([]), trEl = E('tr', { 'class': 'tr cbi-section-table-titles ' + ((!this.anonymous || this.sectiontitle) ? 'named' : 'anonymous'),
			'data-title': (!this.anonymous || this.sectiontitle) ? _('Name') : null }), has_titles = false;
		max_cols = isNaN(max_cols) ? this.children.length : max_cols;
		for (var i = 0, opt; i < max_cols && (opt = this.children[i]) != null; i++) {
			if (opt.modalonly) continue;
			has_titles = has_titles || !!opt.title;
			trEl.appendChild(E('th', { 'class': 'th cbi-section-table-cell', 'data-widget': opt.__name__ }, opt.title));
		}
		if (this.sortable || this.extedit || this.addremove || has_action)
			trEl.appendChild(E('th', { 'class': 'th cbi-section-table-cell cbi-section-actions' }));
		if (has_titles) trEls.appendChild(trEl);
		return trEls;
	},
	renderRowActions: function(section_id, more_label) {
		if (!this.sortable && !this.extedit && !this.addremove && !more_label) return E([]);
		var tdEl = E('td', { 'class': 'td cbi-section-table-cell nowrap cbi-section-actions' }, E('div'));
		if (more_label)
			dom.append(tdEl.lastElementChild, E('button', { 'title': more_label, 'class': 'cbi-button cbi-button-edit',
				'click': ui.createHandlerFn(this, 'renderMoreOptionsModal', section_id) }, [ more_label ]));
		if (this.addremove) {
			var btn_title = this.titleFn('removebtntitle', section_id);
			dom.append(tdEl.lastElementChild, E('button', { 'title': btn_title || _('Delete'), 'class': 'cbi-button cbi-button-remove',
				'click': ui.createHandlerFn(this, 'handleRemove', section_id), 'disabled': this.map.readonly || null }, [ btn_title || _('Delete') ]));
		}
		return tdEl;
	},
	addModalOptions: function(modalSection, section_id, ev) {},
	getActiveModalMap: function() {
		return document.querySelector('body.modal-overlay-active > #modal_overlay > .modal.cbi-modal > .cbi-map:not(.hidden)');
	},
	cloneOptions: function(src_section, dest_section) {
		for (var i = 0; i < src_section.children.length; i++) {
			var o1 = src_section.children[i];
			if (o1.modalonly === false && src_section === this) continue;
			var o2 = dest_section.option(o1.constructor, o1.option, o1.title, o1.description);
			for (var k in o1) {
				if (!o1.hasOwnProperty(k)) continue;
				if ([ 'map', 'section', 'option', 'title', 'description', 'data' ].indexOf(k) > -1) continue;
				o2[k] = o1[k];
			}
		}
	},
	renderMoreOptionsModal: function(section_id, ev) {
		var parent = this.map, sref = parent.data.get(parent.config, section_id);
		section_id = sref['.name'];
		var m = new CBIMap(parent.config, null, null);
		var s = m.section(CBINamedSection, section_id, this.sectiontype);
		m.parent = parent;
		m.section = section_id;
		m.readonly = parent.readonly;
		s.tabs = this.tabs;
		s.tab_names = this.tab_names;
		this.cloneOptions(this, s);
		return Promise.resolve(this.addModalOptions(s, section_id, ev)).then(function() {
			return m.render();
		}).then(L.bind(function(nodes) {
			var title = parent.title, name;
			if ((name = this.titleFn('modaltitle', section_id)) != null) title = name;
			else if ((name = this.titleFn('sectiontitle', section_id)) != null) title = '%s - %s'.format(parent.title, name);
			else if (!this.anonymous) title = '%s - %s'.format(parent.title, section_id);
			ui.showModal(title, [
				nodes,
				E('div', { 'class': 'right' }, [
					E('button', { 'class': 'cbi-button', 'click': ui.createHandlerFn(this, 'handleModalCancel', m) }, [ _('Dismiss') ]), ' ',
					E('button', { 'class': 'cbi-button cbi-button-positive important', 'click': ui.createHandlerFn(this, 'handleModalSave', m),
						'disabled': m.readonly || null }, [ _('Save') ])
				])
			], 'cbi-modal');
		}, this)).catch(L.error);
	},
	handleModalCancel: function(modalMap, ev) {
		ui.hideModal();
		return Promise.resolve();
	},
	handleModalSave: function(modalMap, ev) {
		var activeMap = dom.findClassInstance(this.getActiveModalMap());
		return activeMap.save(null, true)
			.then(L.bind(this.map.load, this.map))
			.then(L.bind(this.map.reset, this.map))
			.then(L.bind(this.handleModalCancel, this, modalMap, ev, true))
			.catch(function() {});
	}
});

var CBIGridSection = CBITableSection.extend({
	tab: function(name, title, description) { CBIAbstractSection.prototype.tab.call(this, name, title, description); },
	handleAdd: function(ev, name) {
		var section_id = this.map.data.add(this.uciconfig || this.map.config, this.sectiontype, name);
		this.addedSection = section_id;
		return this.renderMoreOptionsModal(section_id);
	},
	handleModalCancel: function(modalMap, ev, isSaving) {
		if (this.addedSection != null && !isSaving) this.map.data.remove(this.uciconfig || this.map.config, this.addedSection);
		delete this.addedSection;
		return this.super('handleModalCancel', arguments);
	},
	renderUCISection: function(section_id) { return this.renderOptions(null, section_id); },
	renderChildren: function(tab_name, section_id, in_table) {
		var tasks = [], index = 0;
		for (var i = 0, opt; (opt = this.children[i]) != null; i++) {
			if (opt.disable || opt.modalonly) continue;
			if (opt.editable) tasks.push(opt.render(index++, section_id, in_table));
			else tasks.push(this.renderTextValue(section_id, opt));
		}
		return Promise.all(tasks);
	},
	renderTextValue: function(section_id, opt) {
		var title = this.stripTags(opt.title).trim(), value = opt.textvalue(section_id);
		return E('td', { 'class': 'td cbi-value-field', 'data-title': title != '' ? title : null, 'data-name': opt.option,
			'data-widget': 'CBI.DummyValue' }, (value != null) ? value : E('em', _('none')));
	},
	renderHeaderRows: function(section_id) { return this.super('renderHeaderRows', [ NaN, true ]); },
	renderRowActions: function(section_id) { return this.super('renderRowActions', [ section_id, _('Edit') ]); },
	parse: function() {
		var section_ids = this.cfgsections(), tasks = [];
		for (var i = 0; i < section_ids.length; i++)
			for (var j = 0; j < this.children.length; j++) {
				if (!this.children[j].editable || this.children[j].modalonly) continue;
				tasks.push(this.children[j].parse(section_ids[i]));
			}
		return Promise.all(tasks);
	}
});

var CBINamedSection = CBIAbstractSection.extend({
	__init__: function(map, section_id) {
		this.super('__init__', this.varargs(arguments, 2, map));
		this.section = section_id;
	},
	cfgsections: function() { return [ this.section ]; },
	renderContents: function(data) {
		var ucidata = data[0], nodes = data[1], section_id = this.section, config_name = this.uciconfig || this.map.config,
		    sectionEl = E('div', { 'id': ucidata ? null : 'cbi-%s-%s'.format(config_name, section_id), 'class': 'cbi-section' });
		if (this.title) sectionEl.appendChild(E('h3', {}, this.title));
		if (this.description) sectionEl.appendChild(E('div', { 'class': 'cbi-section-descr' }, this.description));
		if (ucidata)
			sectionEl.appendChild(E('div', { 'id': 'cbi-%s-%s'.format(config_name, section_id),
				'class': this.tabs ? 'cbi-section-node cbi-section-node-tabbed' : 'cbi-section-node', 'data-section-id': section_id }, nodes));
		dom.bindClassInstance(sectionEl, this);
		return sectionEl;
	},
	render: function() {
		return Promise.all([
			this.map.data.get(this.uciconfig || this.map.config, this.section),
			this.renderUCISection(this.section)
		]).then(this.renderContents.bind(this));
	}
});

var CBIAbstractValue = CBIAbstractElement.extend({
	__init__: function(map, section, option) {
		this.super('__init__', this.varargs(arguments, 3));
		this.section = section;
		this.option = option;
		this.map = map;
		this.config = map.config;
		this.deps = [];
		this.initial = {};
		this.rmempty = true;
		this.default = null;
		this.size = null;
		this.optional = false;
		this.retain = false;
	},
	depends: function(field, value) {
		var deps;
		if (typeof field === 'string') { deps = {}; deps[field] = value; }
		else deps = field;
		this.deps.push(deps);
	},
	transformDepList: function(section_id, deplist) {
		var list = deplist || this.deps, deps = [];
		for (var i = 0; i < list.length; i++) {
			var dep = {};
			for (var k in list[i]) {
				if (k.charAt(0) === '!') dep[k] = list[i][k];
				else if (k.indexOf('.') !== -1) dep['cbid.%s'.format(k)] = list[i][k];
				else dep['cbid.%s.%s.%s'.format(this.uciconfig || this.section.uciconfig || this.map.config, this.ucisection || section_id, k)] = list[i][k];
			}
			deps.push(dep);
		}
		return deps;
	},
	transformChoices: function() {
		if (!Array.isArray(this.keylist) || this.keylist.length == 0) return null;
		var choices = {};
		for (var i = 0; i < this.keylist.length; i++) choices[this.keylist[i]] = this.vallist[i];
		return choices;
	},
	checkDepends: function(section_id) {
		var config_name = this.uciconfig || this.section.uciconfig || this.map.config;
		return this.map.isDependencySatisfied(this.deps, config_name, section_id);
	},
	cbid: function(section_id) {
		if (section_id == null) L.error('TypeError', 'Section ID required');
		return 'cbid.%s.%s.%s'.format(this.uciconfig || this.section.uciconfig || this.map.config, section_id, this.option);
	},
	load: function(section_id) {
		if (section_id == null) L.error('TypeError', 'Section ID required');
		return this.map.data.get(this.uciconfig || this.section.uciconfig || this.map.config,
			this.ucisection || section_id, this.ucioption || this.option);
	},
	getUIElement: function(section_id) {
		var node = this.map.findElement('id', this.cbid(section_id)), inst = node ? dom.findClassInstance(node) : null;
		return (inst instanceof ui.AbstractElement) ? inst : null;
	},
	cfgvalue: function(section_id, set_value) {
		if (section_id == null) L.error('TypeError', 'Section ID required');
		if (arguments.length == 2) {
			this.data = this.data || {};
			this.data[section_id] = set_value;
		}
		return this.data ? this.data[section_id] : null;
	},
	formvalue: function(section_id) {
		var elem = this.getUIElement(section_id);
		return elem ? elem.getValue() : null;
	},
	textvalue: function(section_id) {
		var cval = this.cfgvalue(section_id);
		if (cval == null) cval = this.default;
		if (Array.isArray(cval)) cval = cval.join(' ');
		return (cval != null) ? '%h'.format(cval) : null;
	},
	validate: function(section_id, value) { return true; },
	isValid: function(section_id) {
		var elem = this.getUIElement(section_id);
		return elem ? elem.isValid() : true;
	},
	getValidationError: function(section_id) {
		var elem = this.getUIElement(section_id);
		return elem ? elem.getValidationError() : '';
	},
	isActive: function(section_id) {
		var field = this.map.findElement('data-field', this.cbid(section_id));
		return (field != null && !field.classList.contains('hidden'));
	},
	setActive: function(section_id, active) {
		var field = this.map.findElement('data-field', this.cbid(section_id));
		if (field && field.classList.contains('hidden') == active) {
			field.classList[active ? 'remove' : 'add']('hidden');
			return true;
		}
		return false;
	},
	triggerValidation: function(section_id) {
		var elem = this.getUIElement(section_id);
		return elem ? elem.triggerValidation() : true;
	},
	parse: function(section_id) {
		var active = this.isActive(section_id);
		if (active && !this.isValid(section_id)) {
			var title = this.stripTags(this.title).trim(), error = this.getValidationError(section_id);
			return Promise.reject(new TypeError(_('Option "%s" contains an invalid input value.').format(title || this.option) + ' ' + error));
		}
		if (active) {
			var cval = this.cfgvalue(section_id), fval = this.formvalue(section_id);
			if (fval == null || fval == '') {
				if (this.rmempty || this.optional) return Promise.resolve(this.remove(section_id));
				var t = this.stripTags(this.title).trim();
				return Promise.reject(new TypeError(_('Option "%s" must not be empty.').format(t || this.option)));
			}
			else if (this.forcewrite || !isEqual(cval, fval)) {
				return Promise.resolve(this.write(section_id, fval));
			}
		}
		else if (!this.retain) {
			return Promise.resolve(this.remove(section_id));
		}
		return Promise.resolve();
	},
	write: function(section_id, formvalue) {
		return this.map.data.set(this.uciconfig || this.section.uciconfig || this.map.config,
			this.ucisection || section_id, this.ucioption || this.option, formvalue);
	},
	remove: function(section_id) {
		return this.map.data.unset(this.uciconfig || this.section.uciconfig || this.map.config,
			this.ucisection || section_id, this.ucioption || this.option);
	}
});

var CBIValue = CBIAbstractValue.extend({
	__name__: 'CBI.Value',
	value: function(key, val) {
		this.keylist = this.keylist || [];
		this.keylist.push(String(key));
		this.vallist = this.vallist || [];
		this.vallist.push(dom.elem(val) ? val : String(val != null ? val : key));
	},
	render: function(option_index, section_id, in_table) {
		return Promise.resolve(this.cfgvalue(section_id))
			.then(this.renderWidget.bind(this, section_id, option_index))
			.then(this.renderFrame.bind(this, section_id, in_table, option_index));
	},
	handleValueChange: function(section_id, state, ev) {
		if (typeof this.onchange != 'function') return;
		var value = this.formvalue(section_id);
		if (isEqual(value, state.previousValue)) return;
		state.previousValue = value;
		this.onchange.call(this, ev, section_id, value);
	},
	renderFrame: function(section_id, in_table, option_index, nodes) {
		var config_name = this.uciconfig || this.section.uciconfig || this.map.config,
		    depend_list = this.transformDepList(section_id), optionEl;
		if (in_table) {
			optionEl = E('td', { 'class': 'td cbi-value-field', 'data-title': this.stripTags(this.title).trim() || null, 'data-name': this.option,
				'data-widget': this.__name__ }, E('div', { 'id': 'cbi-%s-%s-%s'.format(config_name, section_id, this.option),
				'data-index': option_index, 'data-depends': depend_list, 'data-field': this.cbid(section_id) }));
		}
		else {
			optionEl = E('div', { 'class': 'cbi-value', 'id': 'cbi-%s-%s-%s'.format(config_name, section_id, this.option),
				'data-index': option_index, 'data-depends': depend_list, 'data-field': this.cbid(section_id), 'data-name': this.option,
				'data-widget': this.__name__ });
			if (typeof this.title === 'string' && this.title !== '') {
				optionEl.appendChild(E('label', { 'class': 'cbi-value-title', 'for': 'widget.cbid.%s.%s.%s'.format(config_name, section_id, this.option) }, this.title));
				optionEl.appendChild(E('div', { 'class': 'cbi-value-field' }));
			}
		}
		if (nodes) (optionEl.lastChild || optionEl).appendChild(nodes);
		if (!in_table && typeof this.description === 'string' && this.description !== '')
			dom.append(optionEl.lastChild || optionEl, E('div', { 'class': 'cbi-value-description' }, this.description.trim()));
		if (depend_list && depend_list.length) optionEl.classList.add('hidden');
		optionEl.addEventListener('widget-change', L.bind(this.map.checkDepends, this.map));
		optionEl.addEventListener('widget-change', L.bind(this.handleValueChange, this, section_id, {}));
		dom.bindClassInstance(optionEl, this);
		return optionEl;
	},
	renderWidget: function(section_id, option_index, cfgvalue) {
		var value = (cfgvalue != null) ? cfgvalue : this.default, choices = this.transformChoices(), widget;
		var opts = {
			id: this.cbid(section_id), optional: this.optional || this.rmempty, datatype: this.datatype,
			validate: L.bind(this.validate, this, section_id),
			disabled: (this.readonly != null) ? this.readonly : this.map.readonly
		};
		if (choices)
			widget = new ui.Combobox(Array.isArray(value) ? value.join(' ') : value, choices,
				Object.assign(opts, { sort: this.keylist, select_placeholder: this.placeholder || ((this.optional || this.rmempty) ? _('unspecified') : _('-- Please choose --')) }));
		else
			widget = new ui.Textfield(Array.isArray(value) ? value.join(' ') : value,
				Object.assign(opts, { password: this.password, placeholder: this.placeholder }));
		return widget.render();
	}
});

var CBIDynamicList = CBIValue.extend({
	__name__: 'CBI.DynamicList',
	renderWidget: function(section_id, option_index, cfgvalue) {
		var value = (cfgvalue != null) ? cfgvalue : this.default;
		return new ui.DynamicList(L.toArray(value), this.transformChoices(), {
			id: this.cbid(section_id), sort: this.keylist, optional: this.optional || this.rmempty, datatype: this.datatype,
			placeholder: this.placeholder, validate: L.bind(this.validate, this, section_id),
			disabled: (this.readonly != null) ? this.readonly : this.map.readonly
		}).render();
	}
});

var CBIListValue = CBIValue.extend({
	__name__: 'CBI.ListValue',
	__init__: function() {
		this.super('__init__', arguments);
		this.widget = 'select';
		this.deplist = [];
	},
	renderWidget: function(section_id, option_index, cfgvalue) {
		return new ui.Select((cfgvalue != null) ? cfgvalue : this.default, this.transformChoices(), {
			id: this.cbid(section_id), size: this.size, sort: this.keylist, widget: this.widget, optional: this.optional,
			placeholder: this.placeholder, validate: L.bind(this.validate, this, section_id),
			disabled: (this.readonly != null) ? this.readonly : this.map.readonly
		}).render();
	}
});

var CBIFlagValue = CBIValue.extend({
	__name__: 'CBI.FlagValue',
	__init__: function() {
		this.super('__init__', arguments);
		this.enabled = '1';
		this.disabled = '0';
		this.default = this.disabled;
	},
	renderWidget: function(section_id, option_index, cfgvalue) {
		return new ui.Checkbox((cfgvalue != null) ? cfgvalue : this.default, {
			id: this.cbid(section_id), value_enabled: this.enabled, value_disabled: this.disabled,
			validate: L.bind(this.validate, this, section_id),
			disabled: (this.readonly != null) ? this.readonly : this.map.readonly
		}).render();
	},
	formvalue: function(section_id) {
		var elem = this.getUIElement(section_id), checked = elem ? elem.isChecked() : false;
		return checked ? this.enabled : this.disabled;
	},
	textvalue: function(section_id) {
		var cval = this.cfgvalue(section_id);
		if (cval == null) cval = this.default;
		return (cval == this.enabled) ? _('Yes') : _('No');
	},
	parse: function(section_id) {
		if (this.isActive(section_id)) {
			var fval = this.formvalue(section_id);
			if (!this.isValid(section_id)) {
				var title = this.stripTags(this.title).trim();
				return Promise.reject(new TypeError(_('Option "%s" contains an invalid input value.').format(title || this.option) + ' ' + this.getValidationError(section_id)));
			}
			if (fval == this.default && (this.optional || this.rmempty)) return Promise.resolve(this.remove(section_id));
			return Promise.resolve(this.write(section_id, fval));
		}
		else if (!this.retain) {
			return Promise.resolve(this.remove(section_id));
		}
	}
});

var CBIDummyValue = CBIValue.extend({
	__name__: 'CBI.DummyValue',
	renderWidget: function(section_id, option_index, cfgvalue) {
		var value = (cfgvalue != null) ? cfgvalue : this.default,
		    hiddenEl = new ui.Textfield(value, { id: this.cbid(section_id) }).render(),
		    outputEl = E('div');
		hiddenEl.querySelector('input').type = 'hidden';
		if (this.href && !((this.readonly != null) ? this.readonly : this.map.readonly))
			outputEl.appendChild(E('a', { 'href': this.href }));
		dom.append(outputEl.lastChild || outputEl, this.rawhtml ? value : [ value ]);
		return E([ outputEl, hiddenEl ]);
	},
	remove: function() {},
	write: function() {}
});

var CBIButtonValue = CBIValue.extend({
	__name__: 'CBI.ButtonValue',
	renderWidget: function(section_id, option_index, cfgvalue) {
		var value = (cfgvalue != null) ? cfgvalue : this.default, title = this.inputtitle || this.title;
		if (!value) return E([]);
		return E('div', { 'id': this.cbid(section_id) }, E('button', {
			'class': 'cbi-button cbi-button-%s'.format(this.inputstyle || 'button'),
			'click': ui.createHandlerFn(this, function(section_id, ev) {
				if (this.onclick) return this.onclick(ev, section_id);
				ev.currentTarget.parentNode.nextElementSibling.value = value;
				return this.map.save();
			}, section_id),
			'disabled': ((this.readonly != null) ? this.readonly : this.map.readonly) || null
		}, [ title ]));
	},
	remove: function() {},
	write: function() {}
});

return baseclass.extend({
	Map: CBIMap,
	AbstractSection: CBIAbstractSection,
	AbstractValue: CBIAbstractValue,
	TypedSection: CBITypedSection,
	TableSection: CBITableSection,
	GridSection: CBIGridSection,
	NamedSection: CBINamedSection,
	Value: CBIValue,
	DynamicList: CBIDynamicList,
	ListValue: CBIListValue,
	Flag: CBIFlagValue,
	DummyValue: CBIDummyValue,
	Button: CBIButtonValue
});
