/*
 * curltls - what the relay's libcurl handles share: certificate checking
 * (system store plus an account's tlscafile, or none), protocol versions,
 * the host part of a URL and the network deadlines.  Used by the SMTP
 * delivery and the POP-before-SMTP modules, so both check a server the
 * same way.
 *
 *   curltls_has(proto)      whether this libcurl speaks proto ("pop3s")
 *   curltls_ca_load(path, err, errlen)
 *                           the PEM certificates of a tlscafile, or NULL
 *                           with the reason in err
 *   curltls_ca_free(ca)     release what curltls_ca_load() returned;
 *                           NULL does nothing
 *   curltls_options(curl, verify, weak, ca)
 *                           verification on (peer and host name or IP, SNI
 *                           by libcurl) or, verify false, off; TLS 1.2 or
 *                           later, or with weak TLS 1.0 and OpenSSL's
 *                           security level 0; libcurl's CA cache off; the
 *                           certificates of ca (may be NULL) added to the
 *                           system store of every new connection.  ca must
 *                           outlive the handle.  0, or -1 when libcurl
 *                           refused an option.
 *   curltls_host_valid(host)  a host name or IP literal that cannot bend
 *                           the URL it is put in
 *   curltls_url_host(host)  host as a URL wants it: an IPv6 literal in
 *                           brackets, its zone "%" as "%25"; allocated
 *   curltls_timeout(cfg)    seconds any one network wait may take:
 *                           relaytimeout within sane bounds
 *   curltls_connect_timeout(cfg)  seconds for connecting and the greeting
 *
 * The extra CA goes in through the TLS context callback and not
 * CURLOPT_CAINFO (which would replace the system file), and the CA store
 * cache is off: with it one account's extra CA stayed trusted for the next
 * account's transfers (notes/libcurl-7.88.md, section 4).
 */
#ifndef SMTPPROXY_CURLTLS_H
#define SMTPPROXY_CURLTLS_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "config.h"

#define CURLTLS_TIMEOUT_DEFAULT	300	/* seconds, relaytimeout unset */
#define CURLTLS_TIMEOUT_MAX	3600	/* no network wait longer than this */
#define CURLTLS_CONNECT_MAX	120	/* connect and greeting, seconds */

struct curltls_ca;

bool			 curltls_has(const char *);
struct curltls_ca	*curltls_ca_load(const char *, char *, size_t);
void			 curltls_ca_free(struct curltls_ca *);
int			 curltls_options(CURL *, bool, bool,
			    struct curltls_ca *);
bool			 curltls_host_valid(const char *);
char			*curltls_url_host(const char *);
long			 curltls_timeout(const struct config *);
long			 curltls_connect_timeout(const struct config *);

#endif
