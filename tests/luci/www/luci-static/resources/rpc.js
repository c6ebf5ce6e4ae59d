// Stand-in for LuCI's rpc.js: ubus calls over JSON-RPC to L.env.ubuspath (the test server's
// rpcd stand-in). As in LuCI: a JSON-RPC error (uhttpd's "Access denied" when the session's
// ACL lacks the object/method) rejects the promise; a non-zero ubus status resolves to that
// number unless the declaration says `reject: true`; `expect` picks and type-checks a key.
'use strict';
'require baseclass';
'require request';

var rpcRequestID = 1;

return baseclass.extend({
	call: function(msg) {
		return request.post(L.env.ubuspath || '/ubus', msg);
	},

	handleCallReply: function(req, res) {
		var type = Object.prototype.toString, msg, ret = null;
		try {
			if (!res.ok)
				L.raise('RPCError', 'RPC call to %s/%s failed with HTTP error %d: %s',
					req.object, req.method, res.status, res.statusText || '?');
			msg = res.json();
			if (!L.isObject(msg) || msg.jsonrpc != '2.0')
				L.raise('RPCError', 'RPC call to %s/%s returned invalid message frame', req.object, req.method);
			if (L.isObject(msg.error) && msg.error.code && msg.error.message)
				L.raise('RPCError', 'RPC call to %s/%s failed with error %d: %s',
					req.object, req.method, msg.error.code, msg.error.message || '?');
		}
		catch (e) {
			return req.reject(e);
		}
		if (Array.isArray(msg.result)) {
			if (req.raise && msg.result[0] !== 0) {
				try {
					L.raise('RPCError', 'RPC call to %s/%s failed with ubus code %d: %s',
						req.object, req.method, msg.result[0], this.getStatusText(msg.result[0]));
				}
				catch (e) { return req.reject(e); }
			}
			ret = (msg.result.length > 1) ? msg.result[1] : msg.result[0];
		}
		if (req.expect) {
			for (var key in req.expect) {
				if (ret != null && key != '')
					ret = ret[key];
				if (ret == null || type.call(ret) != type.call(req.expect[key]))
					ret = req.expect[key];
				break;
			}
		}
		if (typeof req.filter == 'function') {
			req.priv[0] = ret;
			req.priv[1] = req.params;
			ret = req.filter.apply(this, req.priv);
		}
		req.resolve(ret);
	},

	declare: function(options) {
		var rpc = this;
		return function() {
			var args = arguments;
			return new Promise(function(resolve, reject) {
				var params = {}, p = 0, priv = [ undefined, undefined ];
				if (Array.isArray(options.params))
					for (p = 0; p < options.params.length; p++)
						params[options.params[p]] = args[p];
				for (; p < args.length; p++)
					priv.push(args[p]);
				var req = {
					expect: options.expect, filter: options.filter, resolve: resolve, reject: reject,
					params: params, priv: priv, object: options.object, method: options.method,
					raise: options.reject
				};
				var msg = {
					jsonrpc: '2.0', id: rpcRequestID++, method: 'call',
					params: [ L.env.sessionid, options.object, options.method, params ]
				};
				rpc.call(msg).then(function(res) { rpc.handleCallReply(req, res); }, reject);
			});
		};
	},

	getSessionID: function() { return L.env.sessionid; },
	setSessionID: function(sid) { L.env.sessionid = sid; },
	getBaseURL: function() { return L.env.ubuspath; },

	getStatusText: function(code) {
		return [ _('Command OK'), _('Invalid command'), _('Invalid argument'), _('Method not found'),
			_('Resource not found'), _('No data received'), _('Permission denied'), _('Request timeout'),
			_('Not supported'), _('Unspecified error'), _('Connection lost') ][code] || _('Unknown error code');
	}
});
