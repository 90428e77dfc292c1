#!/usr/bin/env bash
# Stop the workers and the server started by up.sh.
here="$(dirname "${BASH_SOURCE[0]}")"
"$here/stop_workers.sh"
"$here/server.sh" stop
