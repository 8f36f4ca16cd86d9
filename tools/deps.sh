#!/bin/sh
# deps.sh - install the Debian packages smtpproxy needs to build, test and
# run its demo, and nothing else.  Idempotent: packages already installed
# are left alone, and apt is not touched when nothing is missing.  When not
# root it prints the apt-get line that would be run and fails.
set -eu

PACKAGES="build-essential pkg-config
libconfig-dev libinih-dev libcurl4-openssl-dev libssl-dev libjansson-dev
libcrypt-dev check valgrind
python3 python3-pytest python3-aiosmtpd swaks curl openssl
php-cli libphp-phpmailer dovecot-pop3d
mandoc systemd devscripts iproute2"

missing=""
for p in $PACKAGES; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*"install ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "smtpproxy needs these Debian packages:" >&2
	echo "  sudo apt-get install$missing" >&2
	exit 1
fi

echo "Installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
