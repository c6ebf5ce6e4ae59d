// Stand-in for LuCI's tools/widgets.js: DeviceSelect, a ListValue whose choices are the
// router's network devices (from network.getDevices(), so it makes the same ubus calls), with
// LuCI's filters (noaliases, nobridges, noinactive, filter) and a custom entry unless
// `nocreate`; and NetworkSelect, the netifd interfaces.
'use strict';
'require baseclass';
'require form';
'require network';
'require ui';

var CBIDeviceSelect = form.ListValue.extend({
	__name__: 'CBI.DeviceSelect',
	load: function(section_id) {
		return network.getDevices().then(L.bind(function(devices) {
			this.devices = devices;
			return this.super('load', section_id);
		}, this));
	},
	filter: function(section_id, value) { return true; },
	renderWidget: function(section_id, option_index, cfgvalue) {
		var values = L.toArray((cfgvalue != null) ? cfgvalue : this.default), choices = {}, order = [];
		for (var i = 0; i < this.devices.length; i++) {
			var dev = this.devices[i], name = dev.getName(), type = dev.getType();
			if (name == 'lo' || name == this.exclude || !this.filter(section_id, name)) continue;
			if (this.noaliases && type == 'alias') continue;
			if (this.nobridges && type == 'bridge') continue;
			if (this.noinactive && !dev.isUp()) continue;
			var nets = dev.getNetworks().map(function(n) { return n.getName(); });
			choices[name] = name + (nets.length ? ' (' + nets.join(', ') + ')' : '') + (dev.isUp() ? '' : ' – ' + _('down'));
			order.push(name);
		}
		var widget = new ui.Dropdown(this.multiple ? values : values[0], choices, {
			id: this.cbid(section_id), sort: order, multiple: this.multiple, optional: this.optional || this.rmempty,
			select_placeholder: E('em', [ this.placeholder || _('unspecified') ]).textContent,
			create: !this.nocreate, custom_placeholder: this.customplaceholder || _('-- custom --'),
			validate: L.bind(this.validate, this, section_id),
			disabled: (this.readonly != null) ? this.readonly : this.map.readonly
		});
		return widget.render();
	}
});

var CBINetworkSelect = form.ListValue.extend({
	__name__: 'CBI.NetworkSelect',
	load: function(section_id) {
		return network.getNetworks().then(L.bind(function(networks) {
			this.networks = networks;
			return this.super('load', section_id);
		}, this));
	},
	renderWidget: function(section_id, option_index, cfgvalue) {
		var choices = {};
		this.networks.forEach(function(n) { if (n.getName() != 'loopback') choices[n.getName()] = n.getName(); });
		return new ui.Dropdown(cfgvalue != null ? cfgvalue : this.default, choices, {
			id: this.cbid(section_id), optional: this.optional || this.rmempty, create: !this.nocreate,
			validate: L.bind(this.validate, this, section_id),
			disabled: (this.readonly != null) ? this.readonly : this.map.readonly
		}).render();
	}
});

return baseclass.extend({
	DeviceSelect: CBIDeviceSelect,
	NetworkSelect: CBINetworkSelect
});
