// Stand-in for LuCI's network.js: the network state is read with the same ubus and uci calls
// as LuCI's (network.interface dump, luci-rpc getBoardJSON / getNetworkDevices /
// getWirelessDevices / getHostHints, network get_proto_handlers, uci network, wireless when
// the router has wifi, luci), each allowed to fail (an empty result, as L.resolveDefault gives
// in LuCI): what a login is not granted simply is not there. Devices and networks offer the
// getters widgets.DeviceSelect and views use.
'use strict';
'require baseclass';
'require rpc';
'require uci';

var callNetworkInterfaceDump = rpc.declare({ object: 'network.interface', method: 'dump', expect: { 'interface': [] } });
var callLuciBoardJSON = rpc.declare({ object: 'luci-rpc', method: 'getBoardJSON' });
var callLuciNetworkDevices = rpc.declare({ object: 'luci-rpc', method: 'getNetworkDevices', expect: { '': {} } });
var callLuciWirelessDevices = rpc.declare({ object: 'luci-rpc', method: 'getWirelessDevices', expect: { '': {} } });
var callLuciHostHints = rpc.declare({ object: 'luci-rpc', method: 'getHostHints', expect: { '': {} } });
var callNetworkProtoHandlers = rpc.declare({ object: 'network', method: 'get_proto_handlers', expect: { '': {} } });

var _init = null, _state = null;

function initNetworkState(refresh) {
	if (_state == null || refresh) {
		_init = _init || Promise.all([
			L.resolveDefault(callNetworkInterfaceDump(), []),
			L.resolveDefault(callLuciBoardJSON(), {}),
			L.resolveDefault(callLuciNetworkDevices(), {}),
			L.resolveDefault(callLuciWirelessDevices(), {}),
			L.resolveDefault(callLuciHostHints(), {}),
			L.resolveDefault(callNetworkProtoHandlers(), {}),
			L.resolveDefault(uci.load('network')),
			L.hasSystemFeature('wifi') ? L.resolveDefault(uci.load('wireless')) : L.resolveDefault(),
			L.resolveDefault(uci.load('luci'))
		]).then(function(data) {
			var ifaces = Array.isArray(data[0]) ? data[0] : [], devs = L.isObject(data[2]) ? data[2] : {};
			_state = { ifaces: ifaces, board: data[1] || {}, netdevs: {}, radios: data[3] || {}, hosts: data[4] || {}, protos: data[5] || {} };
			for (var name in devs) {
				var d = devs[name];
				if (!L.isObject(d)) continue;
				_state.netdevs[name] = { name: name, type: d.type, up: !!d.up, mac: d.mac, devtype: d.devtype,
					wireless: !!d.wireless, bridge: !!d.bridge, ipaddrs: d.ipaddrs || [] };
			}
			_init = null;
			return _state;
		});
		return _init;
	}
	return Promise.resolve(_state);
}

var Device = baseclass.extend({
	__init__: function(name, network) {
		this.ifname = name;
		this.dev = (_state && _state.netdevs[name]) || { name: name };
		this.network = network;
	},
	getName: function() { return this.ifname; },
	getMAC: function() { return this.dev.mac ? String(this.dev.mac).toUpperCase() : null; },
	getType: function() {
		if (this.ifname.charAt(0) == '@') return 'alias';
		if (this.dev.wireless || this.dev.devtype == 'wlan') return 'wifi';
		if (this.dev.bridge || this.dev.devtype == 'bridge') return 'bridge';
		if (this.dev.devtype == 'tunnel' || /^(pppoe|wg|tun|tap|gre)/.test(this.ifname)) return 'tunnel';
		if (this.dev.devtype == 'vlan') return 'vlan';
		return 'ethernet';
	},
	getTypeI18n: function() {
		return { alias: _('Alias Interface'), wifi: _('Wireless Adapter'), bridge: _('Bridge'), tunnel: _('Tunnel Interface'),
			vlan: _('VLAN Interface'), ethernet: _('Ethernet Adapter') }[this.getType()];
	},
	isUp: function() { return !!this.dev.up; },
	isBridge: function() { return this.getType() == 'bridge'; },
	getNetworks: function() {
		var name = this.ifname;
		return (_state ? _state.ifaces : []).filter(function(i) { return i.l3_device == name || i.device == name; })
			.map(function(i) { return new Network(i['interface'], i); });
	},
	getNetwork: function() { return this.getNetworks()[0] || null; }
});

var Network = baseclass.extend({
	__init__: function(name, state) { this.sid = name; this.state = state || {}; },
	getName: function() { return this.sid; },
	getProtocol: function() { return this.state.proto || null; },
	getL3Device: function() { var d = this.state.l3_device || this.state.device; return d ? new Device(d, this) : null; },
	getDevice: function() { var d = this.state.device || this.state.l3_device; return d ? new Device(d, this) : null; },
	isUp: function() { return !!this.state.up; }
});

return baseclass.extend({
	getDevices: function() {
		return initNetworkState().then(function(s) {
			return Object.keys(s.netdevs).sort(L.naturalCompare).map(function(n) { return new Device(n); });
		});
	},
	getDevice: function(name) {
		return initNetworkState().then(function(s) { return s.netdevs[name] ? new Device(name) : null; });
	},
	getNetworks: function() {
		return initNetworkState().then(function(s) {
			var seen = {};
			s.ifaces.forEach(function(i) { seen[i['interface']] = i; });
			uci.sections('network', 'interface', function(sec) { if (!seen[sec['.name']]) seen[sec['.name']] = { 'interface': sec['.name'], proto: sec.proto }; });
			return Object.keys(seen).sort(L.naturalCompare).map(function(n) { return new Network(n, seen[n]); });
		});
	},
	getNetwork: function(name) {
		return this.getNetworks().then(function(ns) { return ns.filter(function(n) { return n.getName() == name; })[0] || null; });
	},
	flushCache: function() { _state = null; return initNetworkState(true); },
	Device: Device,
	Network: Network
});
