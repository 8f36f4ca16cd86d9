/*
 * netmatch - client networks: "192.0.2.0/24", "2001:db8::/32", or a single
 * address ("127.0.0.1", "::1").  Used for the allow= list.
 *
 *   netmatch_parse(text, &net)     one network; -1 if malformed (bad
 *                                  address, prefix out of range, bits set
 *                                  beyond the prefix are accepted and masked)
 *   netmatch_contains(net, sa)     is the socket address inside the network;
 *                                  an IPv4-mapped IPv6 client (::ffff:a.b.c.d)
 *                                  is matched as the IPv4 address it carries
 *   netmatch_any(nets, n, sa)      inside any of them
 *   netmatch_is_loopback(text)     does a listen address only reach this host
 */
#ifndef SMTPPROXY_NETMATCH_H
#define SMTPPROXY_NETMATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct netmatch {
	int		family;		/* AF_INET or AF_INET6 */
	unsigned char	addr[16];
	int		prefix;		/* bits */
};

int	netmatch_parse(const char *, struct netmatch *);
bool	netmatch_contains(const struct netmatch *, const struct sockaddr *);
bool	netmatch_any(const struct netmatch *, size_t, const struct sockaddr *);
bool	netmatch_is_loopback(const char *);

#endif
