// Test hooks in every page: when the view has rendered (or failed), errors seen, and a way to
// run the view's poll functions now instead of waiting for their interval.
'use strict';
(function() {
	var resolveReady, rejectReady;
	window.__stand = {
		errors: [],
		ready: new Promise(function(res, rej) { resolveReady = res; rejectReady = rej; }),
		viewReady: function(v) { resolveReady(true); },
		viewFailed: function(e) { window.__stand.errors.push(String(e && e.stack || e)); rejectReady(e); },
		poll: function() { return L.Poll.runOnce(); }
	};
	window.addEventListener('error', function(ev) { window.__stand.errors.push('error: ' + ev.message); });
	window.addEventListener('unhandledrejection', function(ev) {
		window.__stand.errors.push('unhandled rejection: ' + (ev.reason && ev.reason.message || ev.reason));
	});
})();
