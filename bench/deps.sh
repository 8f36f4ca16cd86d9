#!/bin/sh
# deps.sh - install what `make bench` needs beyond the build: Postfix's load
# tools smtp-source and smtp-sink, which Debian ships in the postfix package
# itself (the benchmark also runs that Postfix, as a private instance).
#
# The system's own mail setup is left as it is:
#   - nothing is done when smtp-source and smtp-sink are already there;
#   - another MTA (exim4, sendmail, ...) would be replaced by postfix, so
#     then nothing is installed and this fails with an explanation;
#   - postfix is preseeded with "No configuration": no /etc/postfix/main.cf
#     is written and no system Postfix starts listening on port 25.
# When not root it prints the apt-get line that would be run and fails.
set -eu

if [ -x /usr/sbin/smtp-source ] && [ -x /usr/sbin/smtp-sink ] &&
    [ -x /usr/sbin/postfix ]; then
	exit 0
fi

other=$(dpkg-query -W -f='${Package} ${Status} ${Provides}\n' 2>/dev/null |
    awk '/install ok installed/ && /mail-transport-agent/ && $1 != "postfix" { print $1 }' |
    tr '\n' ' ')
if [ -n "$other" ]; then
	echo "bench: smtp-source and smtp-sink come with Debian's postfix package," >&2
	echo "bench: but this system's MTA ($other) would be replaced by it." >&2
	echo "bench: run the benchmark on another machine, or install postfix yourself." >&2
	exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "the benchmark needs Postfix's smtp-source and smtp-sink:" >&2
	echo "  sudo DEBIAN_FRONTEND=noninteractive apt-get install postfix" >&2
	echo "  (answer \"No configuration\": the benchmark runs its own private instance)" >&2
	exit 1
fi

echo "Installing: postfix (for smtp-source and smtp-sink; no system configuration)"
echo "postfix postfix/main_mailer_type select No configuration" |
    debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postfix
