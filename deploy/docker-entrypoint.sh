#!/bin/sh
# The image's entrypoint (under tini). Runs the command; when `vechnost run` stops on a
# configuration error (exit 2: no token, a token Telegram rejects, a bad setting), it
# does not exit: with `restart: unless-stopped` that would be a restart loop. It says
# once what to fix and waits, unhealthy, until the container is stopped or recreated.
set -u
if [ "$#" -lt 2 ] || [ "$1" != vechnost ] || [ "$2" != run ]; then
    exec "$@"
fi
"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
code=0
wait "$child" || code=$?
# A trapped signal interrupts `wait`; wait again for the bot's own exit code.
while kill -0 "$child" 2>/dev/null; do
    code=0
    wait "$child" || code=$?
done
if [ "$code" -eq 2 ]; then
    echo "vechnost: configuration error (the line above); not restarting. Fix .env (or the environment), then: docker compose up -d" >&2
    trap 'exit 0' TERM INT
    while :; do
        sleep 3600 &
        wait $! || true
    done
fi
exit "$code"
