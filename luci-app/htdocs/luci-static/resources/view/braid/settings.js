'use strict';
'require view';
'require form';
'require network';
'require uci';

// Settings of /etc/config/braid. Save & Apply commits and, through ucitrack, runs
// `/etc/init.d/braid reload`: the daemon gets SIGHUP and applies the change without dropping
// flows (a role change restarts it).

return view.extend({
	load: function() {
		return Promise.all([ network.getNetworks(), uci.load('braid') ]);
	},

	render: function(data) {
		var networks = data[0];
		var m, s, o;

		m = new form.Map('braid', _('Braid'),
			_('Bonds the uplinks below into one encrypted multipath tunnel to a Braid core.'));

		s = m.section(form.NamedSection, 'main', 'braid', _('Service'));
		s.tab('general', _('General'));
		s.tab('advanced', _('Advanced'));

		o = s.taboption('general', form.Flag, 'enabled', _('Enabled'));
		o.rmempty = false;

		o = s.taboption('general', form.ListValue, 'role', _('Role'),
			_('Edge on the router, core on the server it connects to.'));
		o.value('edge', _('Edge (this router bonds its uplinks)'));
		o.value('core', _('Core (server)'));
		o.default = 'edge';

		o = s.taboption('general', form.Value, 'private_key', _('Private key'),
			_('This host\'s key, as <code>braid genkey</code> prints it.'));
		o.password = true;
		o.validate = function(id, v) {
			return (!v || /^[A-Za-z0-9+/]{43}=$/.test(v)) ? true : _('Expected a base64 key of 44 characters');
		};

		o = s.taboption('general', form.Value, 'core_host', _('Core address'),
			_('Address or host name of the core.'));
		o.depends('role', 'edge');
		o.datatype = 'host';

		o = s.taboption('general', form.Value, 'core_port', _('Core port'));
		o.depends('role', 'edge');
		o.datatype = 'port';
		o.placeholder = '51830';

		o = s.taboption('general', form.Value, 'core_public_key', _('Core public key'));
		o.depends('role', 'edge');

		o = s.taboption('general', form.DynamicList, 'lan', _('Bonded client subnets'));
		o.depends('role', 'edge');
		o.datatype = 'cidr';

		o = s.taboption('general', form.Value, 'listen_port', _('Listen port'));
		o.depends('role', 'core');
		o.datatype = 'port';
		o.placeholder = '51830';

		o = s.taboption('advanced', form.ListValue, 'steer', _('Bonded traffic'));
		o.depends('role', 'edge');
		o.value('all', _('All IP traffic'));
		o.value('tcp', _('TCP only'));

		o = s.taboption('advanced', form.DynamicList, 'bypass', _('Never bonded destinations'));
		o.depends('role', 'edge');
		o.datatype = 'cidr';

		o = s.taboption('advanced', form.Value, 'key_file', _('Key file'),
			_('Instead of the private key above.'));
		o = s.taboption('advanced', form.Value, 'mtu', _('Tunnel MTU'));
		o.datatype = 'range(1280,9000)';
		o.placeholder = '1400';

		o = s.taboption('advanced', form.ListValue, 'log_level', _('Log level'));
		[ 'error', 'warn', 'info', 'debug', 'trace' ].forEach(function(l) { o.value(l); });
		o.default = 'info';

		o = s.taboption('advanced', form.Value, 'space', _('Namespace'));
		o.placeholder = 'braid';
		o = s.taboption('advanced', form.Value, 'hub', _('Hub interface'));
		o.placeholder = 'braid0';
		o.datatype = 'maxlength(15)';
		o = s.taboption('advanced', form.Value, 'state_file', _('Quota state file'));
		o.placeholder = '/etc/braid/state';
		o = s.taboption('advanced', form.Value, 'control_socket', _('Control socket'));
		o.placeholder = '/var/run/braid.sock';

		s = m.section(form.GridSection, 'link', _('Uplinks'),
			_('One per netifd interface. Hotplug takes a link in and out as its interface goes up and down.'));
		s.addremove = true;
		s.anonymous = false;
		s.nodescriptions = true;
		s.addbtntitle = _('Add uplink');
		s.validateSection = function() { return true; };
		s.renderSectionAdd = function(extra_class) {
			var el = form.GridSection.prototype.renderSectionAdd.apply(this, [ extra_class ]);
			var nameEl = el.querySelector('.cbi-section-create-name');
			if (nameEl)
				nameEl.setAttribute('placeholder', networks.map(function(n) { return n.getName(); }).join(', '));
			return el;
		};

		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o = s.option(form.Value, 'device', _('Device'));
		o.placeholder = _('from netifd');
		o = s.option(form.ListValue, 'role', _('Role'));
		o.value('primary', _('Primary'));
		o.value('secondary', _('Secondary'));
		o.value('backup', _('Backup'));
		o.value('never', _('Never'));
		o = s.option(form.ListValue, 'transport', _('Transport'));
		o.value('udp', 'UDP');
		o.value('tcp', 'TCP');
		o = s.option(form.Value, 'weight', _('Weight'));
		o.datatype = 'range(1,1000)';
		o.placeholder = '1';
		o = s.option(form.Value, 'upload', _('Upload cap'));
		o.placeholder = _('none');
		o = s.option(form.Value, 'download', _('Download cap'));
		o.placeholder = _('none');
		o = s.option(form.Value, 'quota', _('Quota'));
		o.placeholder = _('none');
		o = s.option(form.ListValue, 'quota_period', _('Per'));
		o.value('month', _('Month'));
		o.value('day', _('Day'));
		o.modalonly = true;
		o = s.option(form.Value, 'reset_day', _('Reset day'));
		o.datatype = 'range(1,31)';
		o.depends('quota_period', 'month');
		o.modalonly = true;
		o = s.option(form.ListValue, 'quota_action', _('Past the quota'));
		o.value('backup', _('Becomes a backup link'));
		o.value('never', _('Is not used'));
		o.modalonly = true;

		s = m.section(form.GridSection, 'policy', _('Traffic classes'),
			_('The first matching policy sets the class; other traffic is class "default".'));
		s.addremove = true;
		s.anonymous = true;
		s.sortable = true;
		s.nodescriptions = true;

		o = s.option(form.Value, 'name', _('Name'));
		o = s.option(form.DynamicList, 'src_ip', _('Client addresses'));
		o.datatype = 'cidr';
		o.modalonly = true;
		o = s.option(form.DynamicList, 'src_mac', _('Client MACs'));
		o.datatype = 'macaddr';
		o.modalonly = true;
		o = s.option(form.DynamicList, 'src_port', _('Client ports'));
		o.modalonly = true;
		o = s.option(form.DynamicList, 'dest_ip', _('Server addresses'));
		o.datatype = 'cidr';
		o.modalonly = true;
		o = s.option(form.DynamicList, 'dest_port', _('Server ports'));
		o = s.option(form.ListValue, 'proto', _('Protocol'));
		[ 'any', 'tcp', 'udp', 'icmp' ].forEach(function(p) { o.value(p); });
		o = s.option(form.DynamicList, 'dscp', _('DSCP'));
		o.modalonly = true;
		o = s.option(form.Value, 'class', _('Class'));
		o.rmempty = false;
		o = s.option(form.ListValue, 'mode', _('Mode'));
		o.value('aggregate', _('Aggregate'));
		o.value('redundant', _('Redundant'));
		o.value('backup', _('Backup only'));
		o.value('pinned', _('Pinned'));
		o = s.option(form.Value, 'link', _('Pinned to'));
		o.depends('mode', 'pinned');
		uci.sections('braid', 'link').forEach(function(l) { o.value(l['.name']); });
		o = s.option(form.Value, 'priority', _('Priority'));
		o.datatype = 'range(0,7)';
		o.placeholder = '0';
		o = s.option(form.Value, 'weight', _('Weight'));
		o.datatype = 'range(1,1000)';
		o.placeholder = '1';

		s = m.section(form.GridSection, 'peer', _('Edges allowed (core)'));
		s.addremove = true;
		s.anonymous = true;
		s.nodescriptions = true;
		o = s.option(form.Value, 'name', _('Name'));
		o = s.option(form.Value, 'public_key', _('Public key'));
		o.rmempty = false;
		o = s.option(form.DynamicList, 'allowed_lan', _('Allowed subnets'));
		o.datatype = 'cidr';

		return m.render();
	}
});
