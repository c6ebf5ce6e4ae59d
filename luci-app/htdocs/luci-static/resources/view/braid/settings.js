'use strict';
'require view';
'require form';
'require uci';
'require ui';
'require rpc';
'require network';
'require dom';
'require tools.widgets as widgets';
'require braid.validate as validate';
'require braid.common as common';

// Settings of /etc/config/braid. Save & Apply commits and, through ucitrack, runs
// `/etc/init.d/braid reload`: the daemon gets SIGHUP and applies the change without dropping
// flows (a role change restarts it). A save writes only what was changed: an option left at
// what the daemon does by default stays out of the file. The explanations of the shipped
// file's comments are the options' descriptions here (a LuCI commit drops comments).

var callKeys = rpc.declare({ object: 'luci.braid', method: 'keys' });
var callGenkey = rpc.declare({ object: 'luci.braid', method: 'genkey' });

// The option shows `def` (the daemon's default) when unset, and a save writes it only when
// the value differs from what was loaded, so untouched options are never written.
function keep(o, def) {
	o.default = def;
	o.rmempty = false;
	o.write = function(section_id, value) {
		var loaded = this.cfgvalue(section_id);
		if (value == (loaded != null ? loaded : def))
			return;
		return form.AbstractValue.prototype.write.apply(this, arguments);
	};
	return o;
}

function role() {
	return uci.get('braid', 'main', 'role') || 'edge';
}

// A section shown for one role only (read from the configuration as saved).
function forRole(s, r) {
	var render = s.render;
	s.render = function() { return role() == r ? render.apply(this, arguments) : E([]); };
	s.parse = (function(parse) {
		return function() { return role() == r ? parse.apply(this, arguments) : Promise.resolve(); };
	})(s.parse);
	return s;
}

// "role edge needs ..." as the daemon says it, for an enabled edge.
function required(what) {
	return function(section_id, value) {
		if (value === '' && this.section.formvalue(section_id, 'enabled') == '1')
			return _('role edge needs %s').format(what);
		return true;
	};
}

return view.extend({
	load: function() {
		return Promise.all([
			uci.load('braid'),
			L.resolveDefault(callKeys(), {}),
			common.allowed('luci.braid', 'genkey'),
			L.resolveDefault(network.getNetworks(), [])
		]);
	},

	// This host's public key (never the private key, which stays on the router), a copy
	// button, and a new key.
	renderKey: function(keys, canGenkey) {
		var self = this;
		var box = E('div', { 'id': 'braid-key' });
		var show = function(k) {
			var children = [];
			if (k.public_key) {
				children.push(E('input', { 'type': 'text', 'readonly': '', 'class': 'braid-key', 'id': 'braid-public-key', 'value': k.public_key, 'size': 48 }));
				children.push(' ');
				children.push(E('button', { 'class': 'cbi-button', 'click': ui.createHandlerFn(self, 'handleCopy') }, [ _('Copy') ]));
			}
			else
				children.push(E('em', [ k.error || _('No private key yet: generate one.') ]));
			if (canGenkey) {
				children.push(' ');
				children.push(E('button', { 'class': 'cbi-button cbi-button-action', 'id': 'braid-genkey',
					'click': ui.createHandlerFn(self, 'handleGenkey', show) }, [ _('Generate new key') ]));
			}
			var notes = [];
			if (k.source == 'private_key')
				notes.push(E('p', { 'class': 'alert-message warning' }, [
					_('The private key is stored in /etc/config/braid, which every login that may read this page can read. Generate a new key to keep it in the key file /etc/braid/key (mode 0600) instead.') ]));
			if (k.key_file)
				notes.push(E('div', { 'class': 'cbi-value-description' }, [ _('Private key in %s, readable by root only; it is never sent to the browser.').format(k.key_file) ]));
			dom.content(box, children.concat(notes));
		};
		show(keys || {});
		return box;
	},

	handleCopy: function(ev) {
		var input = document.getElementById('braid-public-key'), v = input.value;
		var done = function() { ui.addNotification(null, E('p', [ _('Public key copied.') ]), 'info'); };
		if (navigator.clipboard && window.isSecureContext)
			return navigator.clipboard.writeText(v).then(done, function() { input.select(); document.execCommand('copy'); done(); });
		input.select();
		document.execCommand('copy');
		done();
	},

	handleGenkey: function(show, ev) {
		return new Promise(function(resolve) {
			ui.showModal(_('Generate a new key?'), [
				E('p', [ _('This router gets a new identity. The core accepts it only once its config peer for this edge has the new public key; until then, and until Braid restarts with it, the tunnel uses the old key or none.') ]),
				E('div', { 'class': 'right' }, [
					E('button', { 'class': 'cbi-button', 'click': function() { ui.hideModal(); resolve(); } }, [ _('Cancel') ]), ' ',
					E('button', { 'class': 'cbi-button cbi-button-negative', 'click': function() {
						ui.hideModal();
						resolve(callGenkey().then(function(r) {
							if (!r || !r.ok) return common.error((r && r.error) || _('The key could not be generated'));
							show(r);
							ui.addNotification(null, E('p', [ _('New key in %s. Give the public key to the core, then restart Braid (/etc/init.d/braid restart).').format(r.key_file) ]), 'info');
						}).catch(common.error));
					} }, [ _('Generate') ])
				])
			]);
		});
	},

	render: function(data) {
		var keys = data[1], canGenkey = data[2], networks = data[3] || [];
		var ifnames = networks.map(function(n) { return n.getName(); }).filter(function(n) { return n != 'loopback' && n != 'lan'; });
		var m, s, o, self = this;

		m = new form.Map('braid', _('Braid'),
			_('Bonds the uplinks below into one encrypted multipath tunnel to a Braid core. Save & Apply reloads Braid without dropping flows.'));

		s = m.section(form.NamedSection, 'main', 'braid', _('Service'));
		s.tab('general', _('General'));
		s.tab('key', _('Key'));
		s.tab('advanced', _('Advanced'));

		o = keep(s.taboption('general', form.Flag, 'enabled', _('Enabled'),
			_('Start the service. The package ships it off until the core and the keys are filled in.')), '1');

		o = keep(s.taboption('general', form.ListValue, 'role', _('Role'),
			_('<em>Edge</em> on the router (bonds its uplinks), <em>core</em> on the server it connects to. Changing it restarts Braid.')), 'edge');
		o.value('edge', _('Edge (this router bonds its uplinks)'));
		o.value('core', _('Core (server)'));

		o = s.taboption('general', form.Value, 'core_host', _('Core address'), _('The core\'s address or host name.'));
		o.depends('role', 'edge');
		o.placeholder = 'core.example.net';
		o.validate = function(sid, v) {
			var r = required(_("option 'core_host' (the core's address or host name)")).call(this, sid, v);
			return r !== true || v === '' ? r : validate.host(v);
		};

		o = s.taboption('general', form.Value, 'core_port', _('Core port'), _('The core\'s UDP and TCP port.'));
		o.depends('role', 'edge');
		o.placeholder = '51830';
		o.validate = validate.optional('port');

		o = s.taboption('general', form.Value, 'core_public_key', _('Core public key'),
			_('What <code>braid pubkey</code> prints on the core (its Key tab in LuCI).'));
		o.depends('role', 'edge');
		o.validate = function(sid, v) {
			var r = required(_("option 'core_public_key' (the core's public key, 'braid pubkey')")).call(this, sid, v);
			return r !== true || v === '' ? r : validate.key(v);
		};

		o = s.taboption('general', form.DynamicList, 'lan', _('Bonded client subnets'),
			_('Clients whose traffic is bonded, one subnet each (<code>192.168.1.0/24</code>).'));
		o.depends('role', 'edge');
		o.validate = validate.optional('cidr');

		o = s.taboption('general', form.Value, 'listen_port', _('Listen port'), _('The port the core listens on, UDP and TCP.'));
		o.depends('role', 'core');
		o.placeholder = '51830';
		o.validate = validate.optional('port');

		o = s.taboption('key', form.DummyValue, '_public_key', _('Public key'),
			_('This host\'s public key. On an edge, give it to the core (its <em>Edges allowed</em> list); on a core, give it to each edge as its core public key.'));
		o.renderWidget = function() { return self.renderKey(keys, canGenkey); };

		o = s.taboption('key', form.DummyValue, 'key_file', _('Key file'),
			_('Set by the package (first boot) or by <em>Generate new key</em>; the daemon reads it at start.'));
		o.default = '-';

		o = keep(s.taboption('advanced', form.ListValue, 'steer', _('Bonded traffic'),
			_('All IP traffic of the clients, or only TCP (the rest takes the plain uplink).')), 'all');
		o.depends('role', 'edge');
		o.value('all', _('All IP traffic'));
		o.value('tcp', _('TCP only'));

		o = s.taboption('advanced', form.DynamicList, 'bypass', _('Never bonded destinations'),
			_('Destination subnets that always take the plain uplink (the operator\'s own servers, for example).'));
		o.depends('role', 'edge');
		o.validate = validate.optional('cidr');

		o = s.taboption('advanced', form.Value, 'mtu', _('Tunnel MTU'),
			_('Largest client packet carried whole, 1280..9000; TCP MSS is clamped to fit.'));
		o.placeholder = '1400';
		o.validate = validate.optional('mtu');

		o = s.taboption('advanced', form.Value, 'memory', _('Memory budget'),
			_('The memory Braid may use: <code>16M</code>, <code>512K</code>, <code>1G</code>, 4M..64G. Every queue and buffer that grows with traffic is sized from it. Default 16M on a router (of 64 MB), 64M on the core, which shares it among its peers.'));
		o.placeholder = '16M';
		o.validate = validate.optional('memory');

		o = keep(s.taboption('advanced', form.ListValue, 'log_level', _('Log level'), _('To syslog, tag <code>braid</code>.')), 'info');
		[ 'error', 'warn', 'info', 'debug', 'trace' ].forEach(function(l) { o.value(l); });

		o = s.taboption('advanced', form.Value, 'space', _('Namespace'), _('The network namespace Braid creates and owns.'));
		o.placeholder = 'braid';
		o.validate = validate.optional('ifname');

		o = s.taboption('advanced', form.Value, 'hub', _('Hub interface'),
			_('Host end of the veth pair into that namespace (at most 15 characters).'));
		o.placeholder = 'braid0';
		o.validate = validate.optional('ifname');

		o = s.taboption('advanced', form.DummyValue, 'state_file', _('Quota state file'),
			_('Where quota counters survive reboots. Braid writes this path and the control socket as root, so LuCI shows them but does not change them: edit /etc/config/braid to move them.'));
		o.default = '/etc/braid/state';
		o = s.taboption('advanced', form.DummyValue, 'control_socket', _('Control socket'),
			_('The local socket <code>braid status</code>, <code>braid link</code> and this page use.'));
		o.default = '/var/run/braid.sock';

		// ---------------------------------------------------------- uplinks (edge)
		s = forRole(m.section(form.GridSection, 'link', _('Uplinks'),
			_('One per netifd interface, named after it. Hotplug takes a link in and out as its interface goes up and down.')), 'edge');
		s.addremove = true;
		s.anonymous = false;
		s.nodescriptions = true;
		s.addbtntitle = _('Add uplink');
		s.modaltitle = function(sid) { return _('Uplink %s').format(sid); };
		s.renderSectionAdd = function(extra_class) {
			var el = form.GridSection.prototype.renderSectionAdd.apply(this, [ extra_class ]);
			var nameEl = el.querySelector('.cbi-section-create-name');
			if (nameEl) {
				nameEl.setAttribute('placeholder', _('netifd interface: %s').format(ifnames.join(', ')));
				nameEl.setAttribute('list', 'braid-ifnames');
				el.appendChild(E('datalist', { 'id': 'braid-ifnames' }, ifnames.map(function(n) { return E('option', { 'value': n }); })));
				ui.addValidator(nameEl, 'uciname', true, function(v) {
					var btn = el.querySelector('.cbi-button-add');
					var ok = v !== '' && (!ifnames.length || ifnames.indexOf(v) > -1) && !uci.get('braid', v);
					if (btn) btn.disabled = ok ? null : true;
					if (v === '') return true;
					if (uci.get('braid', v)) return _('link \'%s\' is already defined').format(v);
					return ifnames.length && ifnames.indexOf(v) < 0
						? _('expected a netifd interface (%s), got \'%s\'').format(ifnames.join(', '), v) : true;
				}, 'blur', 'keyup');
			}
			return el;
		};

		o = keep(s.option(form.Flag, 'enabled', _('Enabled'), _('Off leaves this uplink out without deleting it.')), '1');
		o.editable = false;

		o = s.option(widgets.DeviceSelect, 'device', _('Device'),
			_('The WAN device. Empty: the one netifd reports for this interface (it follows <code>pppoe-wan</code> after a reconnect).'));
		o.noaliases = true;
		o.placeholder = _('from netifd');
		o.validate = validate.optional('ifname');
		o.textvalue = function(sid) { return this.cfgvalue(sid) || E('em', [ _('from netifd') ]); };

		o = keep(s.option(form.ListValue, 'role', _('Role'),
			_('<em>primary</em>: always used; <em>secondary</em>: when primaries are full or down; <em>backup</em>: only when nothing else is up; <em>never</em>: not used.')), 'primary');
		o.value('primary', _('Primary'));
		o.value('secondary', _('Secondary'));
		o.value('backup', _('Backup'));
		o.value('never', _('Never'));

		o = keep(s.option(form.ListValue, 'transport', _('Transport'), _('UDP, or TCP on networks that block UDP.')), 'udp');
		o.value('udp', 'UDP');
		o.value('tcp', 'TCP');

		o = s.option(form.Value, 'weight', _('Weight'), _('Share among links of the same role, 1..1000.'));
		o.placeholder = '1';
		o.validate = validate.optional('weight');

		o = s.option(form.Value, 'upload', _('Upload cap'), _('In bits per second: <code>20mbit</code>, <code>512kbit</code>, <code>1gbit</code>. Empty or 0: no cap.'));
		o.placeholder = _('no cap');
		o.validate = validate.optional('rate');

		o = s.option(form.Value, 'download', _('Download cap'), _('As the upload cap.'));
		o.placeholder = _('no cap');
		o.validate = validate.optional('rate');

		o = s.option(form.Value, 'quota', _('Quota'),
			_('Data allowance, both ways counted: <code>20G</code> is 20 GB (20,000,000,000 bytes, as carriers bill), <code>4Gi</code> is 4 GiB. Empty: no quota.'));
		o.placeholder = _('none');
		o.validate = validate.optional('quota');

		o = keep(s.option(form.ListValue, 'quota_period', _('Quota period'), _('The allowance is per day or per month.')), 'month');
		o.value('month', _('Month'));
		o.value('day', _('Day'));
		o.depends({ quota: /./ });
		o.modalonly = true;

		o = s.option(form.Value, 'reset_day', _('Reset day'), _('Day of the month the quota restarts, 1..31 (a short month uses its last day).'));
		o.placeholder = '1';
		o.validate = validate.optional('reset_day');
		o.depends({ quota: /./, quota_period: 'month' });
		o.modalonly = true;

		o = keep(s.option(form.ListValue, 'quota_action', _('Past the quota'), _('What the link becomes once past its quota, until the quota restarts.')), 'backup');
		o.value('backup', _('A backup link'));
		o.value('never', _('Not used'));
		o.depends({ quota: /./ });
		o.modalonly = true;

		// ---------------------------------------------------------- traffic classes
		s = m.section(form.GridSection, 'policy', _('Traffic classes'),
			_('The first matching policy sets the class of a flow; other traffic is class <em>default</em>. Every match is optional (empty: any); a list matches if any entry does. Client side (<em>src</em>) and server side (<em>dest</em>) whichever way packets travel.'));
		s.addremove = true;
		s.anonymous = true;
		s.sortable = true;
		s.nodescriptions = true;
		s.addbtntitle = _('Add policy');

		o = keep(s.option(form.Flag, 'enabled', _('Enabled'), _('Off leaves this policy out.')), '1');
		o.modalonly = true;
		o = s.option(form.Value, 'name', _('Name'), _('A label for logs and status (default: the section name).'));
		o = s.option(form.DynamicList, 'src_ip', _('Client addresses'), _('Addresses or subnets.'));
		o.validate = validate.optional('cidr');
		o.modalonly = true;
		o = s.option(form.DynamicList, 'src_mac', _('Client MACs'),
			_('A MAC matches the addresses the router\'s ARP/NDP table gives it (edge only).'));
		o.validate = validate.optional('mac');
		o.modalonly = true;
		o = s.option(form.DynamicList, 'src_port', _('Client ports'), _('Ports or ranges: <code>1024-65535</code>.'));
		o.validate = validate.optional('ports');
		o.modalonly = true;
		o = s.option(form.DynamicList, 'dest_ip', _('Server addresses'), _('Addresses or subnets.'));
		o.validate = validate.optional('cidr');
		o.modalonly = true;
		o = s.option(form.DynamicList, 'dest_port', _('Server ports'), _('Ports or ranges: <code>3478-3481</code>.'));
		o.validate = validate.optional('ports');
		o = keep(s.option(form.ListValue, 'proto', _('Protocol'), _('Ports only match TCP and UDP.')), 'any');
		[ 'any', 'tcp', 'udp', 'icmp' ].forEach(function(p) { o.value(p); });
		o = s.option(form.DynamicList, 'dscp', _('DSCP'), _('Numbers 0..63 or names: <code>EF</code>, <code>AF41</code>, <code>CS1</code>, <code>LE</code>, <code>VA</code>.'));
		o.validate = validate.optional('dscp');
		o.modalonly = true;
		o = s.option(form.Value, 'class', _('Class'), _('The class these flows join: letters, digits, <code>_</code>, <code>-</code>.'));
		o.rmempty = false;
		o.validate = function(sid, v) { return validate['class'](v); };
		o = keep(s.option(form.ListValue, 'mode', _('Mode'),
			_('<em>aggregate</em>: all links; <em>redundant</em>: copies on the two best links; <em>backup</em>: backup links only; <em>pinned</em>: one link.')), 'aggregate');
		o.value('aggregate', _('Aggregate'));
		o.value('redundant', _('Redundant'));
		o.value('backup', _('Backup only'));
		o.value('pinned', _('Pinned'));
		o = s.option(form.ListValue, 'link', _('Pinned to'), _('The uplink a pinned class uses.'));
		o.depends('mode', 'pinned');
		uci.sections('braid', 'link').forEach(function(l) { o.value(l['.name']); });
		o = s.option(form.Value, 'priority', _('Priority'), _('0..7; a higher number is served first.'));
		o.placeholder = '0';
		o.validate = validate.optional('priority');
		o = s.option(form.Value, 'weight', _('Weight'), _('1..1000, the class\'s share among classes of the same priority.'));
		o.placeholder = '1';
		o.validate = validate.optional('weight');
		o.modalonly = true;

		// ---------------------------------------------------------- peers (core)
		s = forRole(m.section(form.GridSection, 'peer', _('Edges allowed'),
			_('One per edge that may connect: its public key (the edge\'s Key tab, or <code>braid pubkey</code> there).')), 'core');
		s.addremove = true;
		s.anonymous = true;
		s.nodescriptions = true;
		s.addbtntitle = _('Add edge');
		o = keep(s.option(form.Flag, 'enabled', _('Enabled')), '1');
		o.modalonly = true;
		o = s.option(form.Value, 'name', _('Name'), _('A label for logs and status (default: the section name).'));
		o = s.option(form.Value, 'public_key', _('Public key'), _('The edge\'s public key.'));
		o.rmempty = false;
		o.textvalue = function(sid) { return E('span', { 'class': 'braid-key' }, [ this.cfgvalue(sid) || '' ]); };
		o.validate = function(sid, v) { return validate.key(v); };
		o = s.option(form.DynamicList, 'allowed_lan', _('Allowed subnets'), _('Source subnets accepted from this edge (empty: any).'));
		o.validate = validate.optional('cidr');

		return m.render().then(function(node) { return E([], [ common.style(), node ]); });
	}
});

