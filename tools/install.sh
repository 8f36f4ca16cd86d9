#!/bin/sh
# install.sh - install or uninstall smtpproxy; `make install` and
# `make uninstall` run it.
#
#   sh tools/install.sh install | uninstall
#
# Environment:
#   PREFIX          /usr/local   programs go to PREFIX/sbin, manual pages
#                                to PREFIX/share/man
#   DESTDIR         (none)       staging root put in front of every path,
#                                for packaging; no user is created then
#   SMTPPROXYD      smtpproxyd/smtpproxyd    the built daemon
#   SMTPPROXYCTL    smtpproxyd/smtpproxyctl  the built control program
#   SYSTEMDUNITDIR  where the systemd unit goes: for PREFIX=/usr the
#                   system's unit folder (/lib/systemd/system on Debian
#                   12), otherwise PREFIX/lib/systemd/system, which
#                   systemd reads for PREFIX=/usr/local
#
# Whatever PREFIX is, the daemon looks for /etc/smtpproxy/smtpproxy.ini,
# sysvinit for /etc/init.d/smtpproxy, and the installed configuration
# keeps its queue in /var/spool/smtpproxy: those places are fixed.
#
# install copies the programs, manual pages, unit and init script (the
# last two naming PREFIX/sbin/smtpproxyd), writes the configuration from
# etc/smtpproxy.ini with user, group, msgdir and pidfile set for the
# system service (only when there is none: an existing one is never
# touched), and makes the spool and log folders.  Run as root without
# DESTDIR it also creates the system user and group smtpproxy and gives
# them the spool.  It never enables or starts the service.
#
# uninstall removes what install copied and keeps the configuration, the
# spool (it may hold mail), the log folder and the user.
#
# Both are idempotent.
set -eu
umask 022

NAME=smtpproxy
SERVICE_USER=smtpproxy
SERVICE_GROUP=smtpproxy
CONFIG_DIR=/etc/smtpproxy
CONFIG_FILE=$CONFIG_DIR/smtpproxy.ini
INIT_SCRIPT=/etc/init.d/$NAME
SPOOL_DIR=/var/spool/smtpproxy
LOG_DIR=/var/log/smtpproxy
PID_FILE=/run/smtpproxy/smtpproxy.pid
# The path the files in init/ name the daemon by; replaced by PREFIX's.
SOURCE_SBIN=/usr/local/sbin

SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
SMTPPROXYD=${SMTPPROXYD:-$SRCDIR/smtpproxyd/smtpproxyd}
SMTPPROXYCTL=${SMTPPROXYCTL:-$SRCDIR/smtpproxyd/smtpproxyctl}

# say - one line of what is being done
say() {
	printf '%s\n' "$*"
}

# die - the reason on stderr, exit 1
die() {
	printf 'install.sh: %s\n' "$*" >&2
	exit 1
}

# usage - the command line
usage() {
	printf 'usage: [PREFIX=/usr/local] [DESTDIR=DIR] sh tools/install.sh install|uninstall\n' >&2
	exit 2
}

# unit_dir - the folder the systemd unit belongs in for this PREFIX
unit_dir() {
	if [ -n "${SYSTEMDUNITDIR:-}" ]; then
		printf '%s\n' "$SYSTEMDUNITDIR"
	elif [ "$PREFIX" = /usr ]; then
		d=$(pkg-config --variable=systemdsystemunitdir systemd \
		    2>/dev/null || true)
		printf '%s\n' "${d:-/lib/systemd/system}"
	else
		printf '%s\n' "$PREFIX/lib/systemd/system"
	fi
}

# real_root_install - true when installing into this system as root
real_root_install() {
	[ -z "$DESTDIR" ] && [ "$(id -u)" -eq 0 ]
}

# systemd_running - true when this system was booted with systemd
systemd_running() {
	[ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

# check_prefix - PREFIX is put into sed expressions and unit files
check_prefix() {
	case "$PREFIX" in
	/*) ;;
	*) die "PREFIX must be an absolute path, not '$PREFIX'" ;;
	esac
	case "$PREFIX" in
	*[!A-Za-z0-9._/+-]*)
		die "PREFIX '$PREFIX' holds characters a unit file cannot take" ;;
	esac
}

# check_sources - everything install copies is there before anything is
check_sources() {
	for f in "$SMTPPROXYD" "$SMTPPROXYCTL"; do
		if [ ! -f "$f" ] || [ ! -x "$f" ]; then
			die "$f: not built (run make first)"
		fi
	done
	for f in init/smtpproxy.service init/smtpproxy.init.d \
	    man/smtpproxyd.8 man/smtpproxyctl.8 man/smtpproxy.ini.5 \
	    etc/smtpproxy.ini; do
		[ -f "$SRCDIR/$f" ] || die "$SRCDIR/$f: missing"
	done
}

# copy_file - install one file with a mode, replacing what was there
copy_file() {
	mode=$1 src=$2 dst=$3
	mkdir -p "$(dirname "$dst")"
	install -m "$mode" "$src" "$dst"
	say "  $dst"
}

# copy_with_prefix - install a service file naming PREFIX/sbin programs
copy_with_prefix() {
	mode=$1 src=$2 dst=$3
	mkdir -p "$(dirname "$dst")"
	tmp=$dst.tmp.$$
	sed "s|$SOURCE_SBIN/|$PREFIX/sbin/|g" "$src" >"$tmp"
	chmod "$mode" "$tmp"
	mv -f "$tmp" "$dst"
	say "  $dst"
}

# service_config - etc/smtpproxy.ini with the system service's [config]
#
# Each of the keys below replaces the first line in [config] that sets it
# or shows it commented out; later lines setting it again are dropped, and
# a key the example lacks is added at the end of [config].
service_config() {
	awk -v settings="user=$SERVICE_USER group=$SERVICE_GROUP msgdir=$SPOOL_DIR pidfile=$PID_FILE" '
	function add_missing(   i) {
		for (i = 1; i <= n; i++)
			if (!done[i]) {
				print key[i] "=" val[i]
				done[i] = 1
			}
	}
	BEGIN {
		n = split(settings, kv, " ")
		for (i = 1; i <= n; i++) {
			eq = index(kv[i], "=")
			key[i] = substr(kv[i], 1, eq - 1)
			val[i] = substr(kv[i], eq + 1)
		}
		print "# Installed for the system service: user, group, msgdir and pidfile"
		print "# below are what smtpproxy.service and the init script expect."
		print "#"
	}
	/^[ \t]*\[/ {
		if (in_config)
			add_missing()
		line = $0
		gsub(/[ \t]/, "", line)
		in_config = (line == "[config]")
		seen_config = seen_config || in_config
		print
		next
	}
	in_config {
		line = tolower($0)
		sub(/^[#;][ \t]*/, "", line)
		for (i = 1; i <= n; i++)
			if (line ~ ("^" key[i] "[ \t]*[=:]")) {
				if (!done[i])
					print key[i] "=" val[i]
				done[i] = 1
				next
			}
	}
	{ print }
	END {
		if (in_config)
			add_missing()
		else if (!seen_config) {
			print "[config]"
			add_missing()
		}
	}' "$SRCDIR/etc/smtpproxy.ini"
}

# install_config - write the configuration unless one is there already
install_config() {
	dst=$DESTDIR$CONFIG_FILE
	if [ ! -d "$DESTDIR$CONFIG_DIR" ]; then
		mkdir -p "$DESTDIR$CONFIG_DIR"
		chmod 0755 "$DESTDIR$CONFIG_DIR"
	fi
	if [ -e "$dst" ] || [ -L "$dst" ]; then
		say "  $dst exists: kept as it is"
		return 0
	fi
	tmp=$dst.tmp.$$
	(umask 077 && service_config >"$tmp")
	chmod 0640 "$tmp"
	if real_root_install; then
		chown root:root "$tmp"
	fi
	mv -f "$tmp" "$dst"
	say "  $dst (edit its accounts before starting the service)"
}

# create_user - the system user and group the children run as
create_user() {
	if getent passwd "$SERVICE_USER" >/dev/null 2>&1; then
		return 0
	fi
	shell=/usr/sbin/nologin
	[ -x "$shell" ] || shell=/sbin/nologin
	[ -x "$shell" ] || shell=/bin/false
	if command -v adduser >/dev/null 2>&1; then
		adduser --system --group --quiet --home "$SPOOL_DIR" \
		    --no-create-home --shell "$shell" "$SERVICE_USER"
	else
		getent group "$SERVICE_GROUP" >/dev/null 2>&1 ||
		    groupadd --system "$SERVICE_GROUP"
		useradd --system --gid "$SERVICE_GROUP" --home-dir "$SPOOL_DIR" \
		    --no-create-home --shell "$shell" "$SERVICE_USER"
	fi
	say "  system user $SERVICE_USER created"
}

# install_spool - the queue folders, 0700, owned by the service user
install_spool() {
	for d in "" /tmp /new /cur /failed; do
		mkdir -p "$DESTDIR$SPOOL_DIR$d"
		chmod 0700 "$DESTDIR$SPOOL_DIR$d"
		if real_root_install; then
			chown "$SERVICE_USER:$SERVICE_GROUP" "$DESTDIR$SPOOL_DIR$d"
		fi
	done
	say "  $DESTDIR$SPOOL_DIR/{tmp,new,cur,failed}"
}

# install_logdir - the folder for [logging] file=, 0750
install_logdir() {
	mkdir -p "$DESTDIR$LOG_DIR"
	chmod 0750 "$DESTDIR$LOG_DIR"
	if real_root_install; then
		group=$SERVICE_GROUP
		getent group adm >/dev/null 2>&1 && group=adm
		chown "$SERVICE_USER:$group" "$DESTDIR$LOG_DIR"
	fi
	say "  $DESTDIR$LOG_DIR"
}

# do_install - everything, in an order that leaves nothing half-made
do_install() {
	check_prefix
	check_sources
	units=$(unit_dir)
	say "Installing smtpproxy (PREFIX=$PREFIX${DESTDIR:+, DESTDIR=$DESTDIR}):"
	if real_root_install; then
		create_user
	fi
	copy_file 0755 "$SMTPPROXYD" "$DESTDIR$PREFIX/sbin/smtpproxyd"
	copy_file 0755 "$SMTPPROXYCTL" "$DESTDIR$PREFIX/sbin/smtpproxyctl"
	copy_file 0644 "$SRCDIR/man/smtpproxyd.8" \
	    "$DESTDIR$PREFIX/share/man/man8/smtpproxyd.8"
	copy_file 0644 "$SRCDIR/man/smtpproxyctl.8" \
	    "$DESTDIR$PREFIX/share/man/man8/smtpproxyctl.8"
	copy_file 0644 "$SRCDIR/man/smtpproxy.ini.5" \
	    "$DESTDIR$PREFIX/share/man/man5/smtpproxy.ini.5"
	copy_with_prefix 0644 "$SRCDIR/init/smtpproxy.service" \
	    "$DESTDIR$units/smtpproxy.service"
	copy_with_prefix 0755 "$SRCDIR/init/smtpproxy.init.d" \
	    "$DESTDIR$INIT_SCRIPT"
	install_config
	install_spool
	install_logdir
	case "$units" in
	/lib/systemd/system | /usr/lib/systemd/system | \
	    /usr/local/lib/systemd/system | /etc/systemd/system) ;;
	*) say "note: systemd does not read $units; link the unit into" \
	    "/etc/systemd/system or set SYSTEMDUNITDIR" ;;
	esac
	if [ -n "$DESTDIR" ]; then
		say "DESTDIR install: no user created; the package must create" \
		    "user $SERVICE_USER and give it $SPOOL_DIR."
		return 0
	fi
	if ! real_root_install; then
		say "note: not root, so no user $SERVICE_USER was created and" \
		    "$SPOOL_DIR belongs to $(id -un)."
	fi
	if real_root_install && systemd_running; then
		systemctl daemon-reload
	fi
	say "Next: edit $CONFIG_FILE, check it with"
	say "  $PREFIX/sbin/smtpproxyd -t"
	say "and start the service with"
	if systemd_running; then
		say "  systemctl enable --now smtpproxy"
	else
		say "  update-rc.d smtpproxy defaults && $INIT_SCRIPT start"
	fi
}

# stop_service - a running installed daemon is stopped before removal
stop_service() {
	units=$1
	if systemd_running; then
		if [ -f "$units/smtpproxy.service" ]; then
			systemctl disable --now smtpproxy.service >/dev/null 2>&1 ||
			    true
		fi
	elif [ -x "$INIT_SCRIPT" ]; then
		"$INIT_SCRIPT" stop >/dev/null 2>&1 || true
	fi
}

# remove_file - delete one installed file if it is there
remove_file() {
	if [ -e "$1" ] || [ -L "$1" ]; then
		rm -f "$1"
		say "  removed $1"
	fi
}

# do_uninstall - remove what install copied; keep config, spool, logs, user
do_uninstall() {
	check_prefix
	units=$(unit_dir)
	say "Uninstalling smtpproxy (PREFIX=$PREFIX${DESTDIR:+, DESTDIR=$DESTDIR}):"
	if real_root_install; then
		stop_service "$units"
	fi
	remove_file "$DESTDIR$PREFIX/sbin/smtpproxyd"
	remove_file "$DESTDIR$PREFIX/sbin/smtpproxyctl"
	remove_file "$DESTDIR$PREFIX/share/man/man8/smtpproxyd.8"
	remove_file "$DESTDIR$PREFIX/share/man/man8/smtpproxyctl.8"
	remove_file "$DESTDIR$PREFIX/share/man/man5/smtpproxy.ini.5"
	remove_file "$DESTDIR$units/smtpproxy.service"
	remove_file "$DESTDIR$INIT_SCRIPT"
	if real_root_install; then
		if command -v update-rc.d >/dev/null 2>&1; then
			update-rc.d -f "$NAME" remove >/dev/null 2>&1 || true
		fi
		if systemd_running; then
			systemctl daemon-reload
		fi
	fi
	say "Kept: $DESTDIR$CONFIG_FILE, the spool $DESTDIR$SPOOL_DIR" \
	    "(it may hold mail) and $DESTDIR$LOG_DIR."
	if real_root_install; then
		say "Kept: the system user $SERVICE_USER; remove it with" \
		    "'deluser --system $SERVICE_USER' when the spool is gone."
	fi
}

[ $# -eq 1 ] || usage
case "$1" in
install) do_install ;;
uninstall) do_uninstall ;;
*) usage ;;
esac
