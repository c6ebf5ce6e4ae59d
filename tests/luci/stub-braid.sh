#!/bin/sh
# The `braid` command as the LuCI backend runs it, answered by stub-braid.js.
exec node "$(dirname "$0")/stub-braid.js" "$@"
