# Prints the names of the #[test] functions of a Rust test file that start the braid binary
# (env!("CARGO_BIN_EXE_...")) themselves or through a helper of the same file.
# Under qemu-user without binfmt_misc such a child cannot start (the test binary runs under
# qemu, the child would run natively), so `cross/build.sh test` skips them; the package test
# runs the cross-built binary under qemu instead.
/^[ \t]*#\[test\]/ { pending_test = 1; next }
/^[ \t]*(pub(\([a-z]+\))? )?(async )?fn [A-Za-z0-9_]+/ {
	line = $0
	sub(/^[ \t]*(pub(\([a-z]+\))? )?(async )?fn /, "", line)
	sub(/[^A-Za-z0-9_].*/, "", line)
	cur = line
	n++
	names[n] = cur
	is_test[cur] = pending_test
	pending_test = 0
}
cur != "" { body[cur] = body[cur] "\n" $0 }
END {
	for (i = 1; i <= n; i++)
		if (index(body[names[i]], "CARGO_BIN_EXE_")) spawns[names[i]] = 1
	do {
		changed = 0
		for (i = 1; i <= n; i++) {
			f = names[i]
			if (f in spawns) continue
			for (g in spawns)
				if (match(body[f], "(^|[^A-Za-z0-9_:.])" g "\\(")) { spawns[f] = 1; changed = 1; break }
		}
	} while (changed)
	for (i = 1; i <= n; i++)
		if (is_test[names[i]] && (names[i] in spawns)) print names[i]
}
