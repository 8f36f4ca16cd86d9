/*
 * netmatch - client networks and matching (see netmatch.h).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "netmatch.h"
#include "util.h"

#define NETMATCH_TEXT_MAX	64

/* netmatch_parse - "address[/prefix]" into a network */
int
netmatch_parse(const char *text, struct netmatch *net)
{
	char		 buf[NETMATCH_TEXT_MAX], *slash, *end;
	long		 prefix;
	int		 maxbits;

	if (strlcpy_s(buf, text, sizeof(buf)) >= sizeof(buf))
		return -1;
	memset(net, 0, sizeof(*net));
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, net->addr) == 1) {
		net->family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, buf, net->addr) == 1) {
		net->family = AF_INET6;
		maxbits = 128;
	} else
		return -1;
	net->prefix = maxbits;
	if (slash == NULL)
		return 0;
	if (*slash < '0' || *slash > '9')
		return -1;
	prefix = strtol(slash, &end, 10);
	if (*end != '\0' || prefix < 0 || prefix > maxbits)
		return -1;
	net->prefix = (int)prefix;
	return 0;
}

/* prefix_equal - do the first bits of a and b agree */
static bool
prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
	int	bytes = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[bytes] ^ b[bytes]) & (0xff << (8 - rest)) & 0xff) == 0;
}

/* netmatch_contains - is the address inside the network */
bool
netmatch_contains(const struct netmatch *net, const struct sockaddr *sa)
{
	const unsigned char	*addr;
	int			 family = sa->sa_family;

	if (family == AF_INET) {
		addr = (const unsigned char *)
		    &((const struct sockaddr_in *)sa)->sin_addr;
	} else if (family == AF_INET6) {
		const struct in6_addr *a6 =
		    &((const struct sockaddr_in6 *)sa)->sin6_addr;

		addr = a6->s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			family = AF_INET;
			addr += 12;
		}
	} else
		return false;
	if (family != net->family)
		return false;
	return prefix_equal(addr, net->addr, net->prefix);
}

/* netmatch_any - inside any of the networks */
bool
netmatch_any(const struct netmatch *nets, size_t n, const struct sockaddr *sa)
{
	for (size_t i = 0; i < n; i++)
		if (netmatch_contains(&nets[i], sa))
			return true;
	return false;
}

/* netmatch_is_loopback - 127.0.0.0/8, ::1 or "localhost" */
bool
netmatch_is_loopback(const char *text)
{
	unsigned char	addr[16];

	if (strcmp(text, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, text, addr) == 1)
		return addr[0] == 127;
	if (inet_pton(AF_INET6, text, addr) == 1)
		return IN6_IS_ADDR_LOOPBACK((struct in6_addr *)addr);
	return false;
}
