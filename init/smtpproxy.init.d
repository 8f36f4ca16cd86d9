#!/bin/sh
### BEGIN INIT INFO
# Provides:          smtpproxy
# Required-Start:    $local_fs $remote_fs $network $syslog $named
# Required-Stop:     $local_fs $remote_fs $network $syslog
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: smtpproxy SMTP proxy daemon
# Description:       smtpproxyd accepts mail from local programs in plain
#                    SMTP, keeps it in its spool and relays it to the
#                    upstream server of each sender's account.
### END INIT INFO
#
# smtpproxy - LSB init script of smtpproxyd, in POSIX sh.
#
# The daemon writes its own pid file from pidfile= in the configuration;
# PIDFILE here must name the same file.  Settings can be changed in
# /etc/default/smtpproxy: DAEMON, CONFIG, PIDFILE, STOP_TIMEOUT.  The
# configuration is checked before start, restart and reload, so a broken
# file never stops a running daemon.
#
# The running master is found by its pid file and its process name, not
# by its executable, so it is still found after the program file was
# replaced by an upgrade.

PATH=/sbin:/usr/sbin:/bin:/usr/bin
NAME=smtpproxy
DESC="SMTP proxy"
DAEMON=/usr/local/sbin/smtpproxyd
CONFIG=/etc/smtpproxy/smtpproxy.ini
PIDFILE=/run/smtpproxy/smtpproxy.pid
# Seconds SIGTERM gets (sessions finish, the relay stops) before SIGKILL.
STOP_TIMEOUT=60
# Tenths of a second a started daemon gets to write its pid file.
PIDFILE_WAIT=100

if [ -r /etc/default/smtpproxy ]; then
	# shellcheck source=/dev/null
	. /etc/default/smtpproxy
fi

[ -x "$DAEMON" ] || exit 0
PROCNAME=$(basename "$DAEMON")

if [ -r /lib/lsb/init-functions ]; then
	# shellcheck source=/dev/null
	. /lib/lsb/init-functions
fi

# The messages of lsb-base where it is there, plain lines where not.
if ! command -v log_daemon_msg >/dev/null 2>&1; then
	log_daemon_msg() {
		printf '%s: %s' "$1" "${2:-}"
	}
	log_end_msg() {
		if [ "$1" -eq 0 ]; then
			echo "."
		else
			echo " failed!"
		fi
		return "$1"
	}
	log_success_msg() {
		echo "$*"
	}
	log_failure_msg() {
		echo "$*" >&2
	}
fi

# config_ok - the configuration is valid; its errors are shown if not
config_ok() {
	if ! out=$("$DAEMON" -t -c "$CONFIG" 2>&1); then
		log_failure_msg "$NAME: $CONFIG is not valid:"
		printf '%s\n' "$out" >&2
		return 1
	fi
	return 0
}

# do_start - 0 started, 1 already running, 2 could not start
do_start() {
	mkdir -p "$(dirname "$PIDFILE")"
	start-stop-daemon --start --quiet --pidfile "$PIDFILE" \
	    --name "$PROCNAME" --startas "$DAEMON" --test >/dev/null || return 1
	# The daemon binds its sockets before it detaches, so a failure to
	# start shows here as its exit status.
	start-stop-daemon --start --quiet --pidfile "$PIDFILE" \
	    --name "$PROCNAME" --startas "$DAEMON" -- -c "$CONFIG" || return 2
	# The detached master writes the pid file a moment after the
	# command returns; stop and status need it.
	n=0
	while [ ! -s "$PIDFILE" ]; do
		n=$((n + 1))
		if [ "$n" -gt "$PIDFILE_WAIT" ]; then
			log_failure_msg "$NAME: no pid file $PIDFILE: is" \
			    "pidfile= in $CONFIG the same file?"
			return 2
		fi
		sleep 0.1
	done
	return 0
}

# do_stop - 0 stopped, 1 was not running, 2 would not stop
do_stop() {
	start-stop-daemon --stop --quiet --pidfile "$PIDFILE" \
	    --name "$PROCNAME" --retry "TERM/$STOP_TIMEOUT/KILL/5" \
	    --remove-pidfile
	case $? in
	0) return 0 ;;
	1) return 1 ;;
	*) return 2 ;;
	esac
}

# do_signal - send a signal to the running master; 1 if none runs
do_signal() {
	start-stop-daemon --stop --quiet --signal "$1" --pidfile "$PIDFILE" \
	    --name "$PROCNAME"
}

# do_status - LSB status: 0 running, 1 dead with a pid file, 3 stopped
do_status() {
	start-stop-daemon --status --pidfile "$PIDFILE" --name "$PROCNAME"
	rc=$?
	case $rc in
	0) log_success_msg "$NAME is running (pid $(cat "$PIDFILE"))" ;;
	1) log_failure_msg "$NAME is not running but $PIDFILE exists" ;;
	3) log_success_msg "$NAME is not running" ;;
	*) log_failure_msg "$NAME: cannot tell whether it is running" ;;
	esac
	return $rc
}

case "$1" in
start)
	log_daemon_msg "Starting $DESC" "$NAME"
	if ! config_ok; then
		log_end_msg 1
		exit 1
	fi
	do_start
	case $? in
	0 | 1) log_end_msg 0 ;;
	*) log_end_msg 1; exit 1 ;;
	esac
	;;
stop)
	log_daemon_msg "Stopping $DESC" "$NAME"
	do_stop
	case $? in
	0 | 1) log_end_msg 0 ;;
	*) log_end_msg 1; exit 1 ;;
	esac
	;;
restart)
	log_daemon_msg "Restarting $DESC" "$NAME"
	if ! config_ok; then
		log_end_msg 1
		exit 1
	fi
	do_stop
	case $? in
	0 | 1)
		do_start
		case $? in
		0) log_end_msg 0 ;;
		*) log_end_msg 1; exit 1 ;;
		esac
		;;
	*) log_end_msg 1; exit 1 ;;
	esac
	;;
reload | force-reload)
	log_daemon_msg "Reloading $DESC" "$NAME"
	if ! config_ok; then
		log_end_msg 1
		exit 1
	fi
	if ! do_signal HUP; then
		log_end_msg 1
		log_failure_msg "$NAME is not running"
		exit 7
	fi
	log_end_msg 0
	;;
status)
	do_status
	exit $?
	;;
*)
	echo "usage: /etc/init.d/$NAME {start|stop|restart|reload|force-reload|status}" >&2
	exit 3
	;;
esac

exit 0
