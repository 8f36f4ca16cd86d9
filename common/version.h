/* version - the release of smtpproxy these sources are. */
#ifndef SMTPPROXY_VERSION_H
#define SMTPPROXY_VERSION_H

#define SMTPPROXY_VERSION	"2.0.0-dev"

#endif
