/*
 * curltls - TLS options, URL hosts and deadlines shared by the relay's
 * libcurl handles (see curltls.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "curltls.h"
#include "util.h"

/* Cipher list that lets OpenSSL 3 talk to outdated servers. */
#define CURLTLS_WEAK_CIPHERS	"DEFAULT@SECLEVEL=0"

/* The certificates of one tlscafile. */
struct curltls_ca {
	STACK_OF(X509)	*certs;
};

static CURLcode	 ssl_ctx_cb(CURL *, void *, void *);

/* curltls_has - whether this libcurl speaks a protocol */
bool
curltls_has(const char *proto)
{
	const curl_version_info_data	*info;

	info = curl_version_info(CURLVERSION_NOW);
	if (info == NULL || info->protocols == NULL)
		return false;
	for (const char *const *p = info->protocols; *p != NULL; p++) {
		if (strcmp(*p, proto) == 0)
			return true;
	}
	return false;
}

/* curltls_ca_load - the certificates of a PEM file, or NULL with a reason */
struct curltls_ca *
curltls_ca_load(const char *path, char *err, size_t errlen)
{
	struct curltls_ca	*ca;
	unsigned long		 e;
	X509			*x;
	BIO			*bio;

	if ((bio = BIO_new_file(path, "r")) == NULL) {
		snprintf(err, errlen, "cannot read tlscafile %s: %s", path,
		    strerror(errno));
		ERR_clear_error();
		return NULL;
	}
	ca = xcalloc(1, sizeof(*ca));
	ca->certs = sk_X509_new_null();
	while (ca->certs != NULL &&
	    (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (sk_X509_push(ca->certs, x) == 0)
			X509_free(x);
	}
	BIO_free(bio);

	/* the end of the file reads as "no start line"; anything else is bad */
	e = ERR_peek_last_error();
	ERR_clear_error();
	if (ca->certs == NULL || sk_X509_num(ca->certs) == 0 || (e != 0 &&
	    !(ERR_GET_LIB(e) == ERR_LIB_PEM &&
	    ERR_GET_REASON(e) == PEM_R_NO_START_LINE))) {
		snprintf(err, errlen, "tlscafile %s: no valid PEM certificate",
		    path);
		curltls_ca_free(ca);
		return NULL;
	}
	return ca;
}

/* curltls_ca_free - release the certificates of a tlscafile */
void
curltls_ca_free(struct curltls_ca *ca)
{
	if (ca == NULL)
		return;
	sk_X509_pop_free(ca->certs, X509_free);
	free(ca);
}

/*
 * ssl_ctx_cb - add the tlscafile to the store of a new TLS connection;
 * libcurl loads the system CAs into the same store, so both count
 */
static CURLcode
ssl_ctx_cb(CURL *curl, void *ctx, void *arg)
{
	struct curltls_ca	*ca = arg;
	X509_STORE		*store = SSL_CTX_get_cert_store((SSL_CTX *)ctx);

	for (int i = 0; i < sk_X509_num(ca->certs); i++) {
		if (X509_STORE_add_cert(store, sk_X509_value(ca->certs, i)) !=
		    1) {
			ERR_clear_error();
			return CURLE_SSL_CACERT_BADFILE;
		}
	}
	return CURLE_OK;
}

/* curltls_options - versions, verification and CAs of a handle */
int
curltls_options(CURL *c, bool verify, bool weak, struct curltls_ca *ca)
{
	int	bad = 0;

	if (weak) {
		bad |= curl_easy_setopt(c, CURLOPT_SSLVERSION,
		    (long)CURL_SSLVERSION_TLSv1_0) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_SSL_CIPHER_LIST,
		    CURLTLS_WEAK_CIPHERS) != CURLE_OK;
	} else
		bad |= curl_easy_setopt(c, CURLOPT_SSLVERSION,
		    (long)CURL_SSLVERSION_TLSv1_2) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L) !=
	    CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L) !=
	    CURLE_OK;
	/* the CA store cache would keep one account's extra CA for the next */
	bad |= curl_easy_setopt(c, CURLOPT_CA_CACHE_TIMEOUT, 0L) != CURLE_OK;
	if (verify && ca != NULL) {
		bad |= curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION,
		    ssl_ctx_cb) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, ca) !=
		    CURLE_OK;
	}
	return bad ? -1 : 0;
}

/* curltls_host_valid - a host name or IP literal that cannot bend the URL */
bool
curltls_host_valid(const char *h)
{
	if (h == NULL || *h == '\0')
		return false;
	for (; *h != '\0'; h++) {
		if (!isalnum((unsigned char)*h) &&
		    strchr(".-_:%[]", *h) == NULL)
			return false;
	}
	return true;
}

/* curltls_url_host - the host as a URL wants it: IPv6 in brackets */
char *
curltls_url_host(const char *h)
{
	char	*host, *p;

	if (h[0] == '[' || strchr(h, ':') == NULL)
		return xstrdup(h);
	/* worst case: every byte a "%" that becomes "%25", and the brackets */
	host = xmalloc(3 * strlen(h) + 3);
	p = host;
	*p++ = '[';
	for (; *h != '\0'; h++) {
		*p++ = *h;
		if (*h == '%') {
			*p++ = '2';
			*p++ = '5';
		}
	}
	*p++ = ']';
	*p = '\0';
	return host;
}

/* curltls_timeout - cfg->relaytimeout, within sane bounds */
long
curltls_timeout(const struct config *cfg)
{
	if (cfg->relaytimeout <= 0)
		return CURLTLS_TIMEOUT_DEFAULT;
	if (cfg->relaytimeout > CURLTLS_TIMEOUT_MAX)
		return CURLTLS_TIMEOUT_MAX;
	return cfg->relaytimeout;
}

/* curltls_connect_timeout - seconds for connect, TLS and the greeting */
long
curltls_connect_timeout(const struct config *cfg)
{
	long	t = curltls_timeout(cfg);

	return t < CURLTLS_CONNECT_MAX ? t : CURLTLS_CONNECT_MAX;
}
