#!/bin/sh
# run-demo.sh - what `make run` starts: the demo upstream on 127.0.0.1:2526
# in the background and smtpproxyd on 127.0.0.1:2525 in the foreground with
# etc/demo.ini.  Ctrl-C stops both.  The only files written in the checkout
# are the spool's, under msgs/.
#
#   sh tools/run-demo.sh /abs/path/to/smtpproxyd
set -u

PROXY_PORT=2525
UPSTREAM_PORT=2526
PYTHON=/usr/bin/python3

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
	echo "usage: sh tools/run-demo.sh /path/to/smtpproxyd" >&2
	exit 2
fi
DAEMON=$1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONFIG=$ROOT/etc/demo.ini

# port_answers PORT - true when something accepts connections on it
port_answers() {
	"$PYTHON" -B -c "import socket, sys
try:
    socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.5).close()
except OSError:
    sys.exit(1)" "$1"
}

for port in $PROXY_PORT $UPSTREAM_PORT; do
	if port_answers "$port"; then
		echo "run-demo: 127.0.0.1:$port is already in use; stop what listens there first" >&2
		exit 3
	fi
done

UPSTREAM_PID=""
cleanup() {
	if [ -n "$UPSTREAM_PID" ]; then
		kill "$UPSTREAM_PID" 2>/dev/null
		wait "$UPSTREAM_PID" 2>/dev/null
		UPSTREAM_PID=""
	fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

"$PYTHON" -B "$ROOT/tools/demo-upstream.py" "$UPSTREAM_PORT" &
UPSTREAM_PID=$!

tries=0
until port_answers "$UPSTREAM_PORT"; do
	if ! kill -0 "$UPSTREAM_PID" 2>/dev/null; then
		echo "run-demo: the demo upstream did not start" >&2
		UPSTREAM_PID=""
		exit 1
	fi
	tries=$((tries + 1))
	if [ "$tries" -ge 50 ]; then
		echo "run-demo: the demo upstream is not listening after 5 s" >&2
		exit 1
	fi
	sleep 0.1
done

cat <<BANNER

  smtpproxy demo
  --------------
  proxy     127.0.0.1:$PROXY_PORT   (config $CONFIG)
  upstream  127.0.0.1:$UPSTREAM_PORT   (tools/demo-upstream.py prints what it receives)
  spool     $ROOT/msgs

  Send a first message from another terminal:

    swaks --server 127.0.0.1:$PROXY_PORT --from demo@example.com --to you@example.org

  or with Python:

    python3 -c 'import smtplib; smtplib.SMTP("127.0.0.1", $PROXY_PORT).sendmail("demo@example.com", ["you@example.org"], "Subject: hello\\r\\n\\r\\nIt works.\\r\\n")'

  It is printed here by the demo upstream a moment later.  Ctrl-C stops both.

BANNER

"$DAEMON" -f -c "$CONFIG"
status=$?
cleanup
exit "$status"
