/*
 * test_netmatch - allow= networks: parsing and matching.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "netmatch.h"

/* sa4 - an IPv4 socket address */
static struct sockaddr_storage
sa4(const char *text)
{
	struct sockaddr_storage	ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin->sin_family = AF_INET;
	ck_assert_int_eq(inet_pton(AF_INET, text, &sin->sin_addr), 1);
	return ss;
}

/* sa6 - an IPv6 socket address */
static struct sockaddr_storage
sa6(const char *text)
{
	struct sockaddr_storage	ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin6->sin6_family = AF_INET6;
	ck_assert_int_eq(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
	return ss;
}

/* inside - parse net and match address */
static bool
inside(const char *net, struct sockaddr_storage ss)
{
	struct netmatch	n;

	ck_assert_int_eq(netmatch_parse(net, &n), 0);
	return netmatch_contains(&n, (struct sockaddr *)&ss);
}

START_TEST(test_ipv4_network_contains_its_addresses)
{
	ck_assert(inside("192.0.2.0/24", sa4("192.0.2.77")));
	ck_assert(!inside("192.0.2.0/24", sa4("192.0.3.1")));
}
END_TEST

START_TEST(test_odd_prefix_lengths_match_bitwise)
{
	ck_assert(inside("10.0.0.0/9", sa4("10.127.255.255")));
	ck_assert(!inside("10.0.0.0/9", sa4("10.128.0.0")));
}
END_TEST

START_TEST(test_single_address_is_a_full_prefix)
{
	ck_assert(inside("127.0.0.1", sa4("127.0.0.1")));
	ck_assert(!inside("127.0.0.1", sa4("127.0.0.2")));
}
END_TEST

START_TEST(test_zero_prefix_matches_everything_of_its_family)
{
	ck_assert(inside("0.0.0.0/0", sa4("203.0.113.9")));
	ck_assert(!inside("0.0.0.0/0", sa6("2001:db8::1")));
}
END_TEST

START_TEST(test_ipv6_networks_match)
{
	ck_assert(inside("::1/128", sa6("::1")));
	ck_assert(inside("2001:db8::/32", sa6("2001:db8:ffff::1")));
	ck_assert(!inside("2001:db8::/32", sa6("2001:db9::1")));
}
END_TEST

START_TEST(test_v4_mapped_client_matches_ipv4_network)
{
	ck_assert(inside("127.0.0.0/8", sa6("::ffff:127.0.0.1")));
	ck_assert(!inside("::1/128", sa6("::ffff:127.0.0.1")));
}
END_TEST

START_TEST(test_malformed_networks_are_refused)
{
	struct netmatch	n;

	ck_assert_int_eq(netmatch_parse("192.0.2.0/33", &n), -1);
	ck_assert_int_eq(netmatch_parse("192.0.2.0/", &n), -1);
	ck_assert_int_eq(netmatch_parse("192.0.2.0/-1", &n), -1);
	ck_assert_int_eq(netmatch_parse("192.0.2/24", &n), -1);
	ck_assert_int_eq(netmatch_parse("::1/129", &n), -1);
	ck_assert_int_eq(netmatch_parse("example.com", &n), -1);
	ck_assert_int_eq(netmatch_parse("", &n), -1);
}
END_TEST

START_TEST(test_loopback_listen_addresses_are_recognised)
{
	ck_assert(netmatch_is_loopback("127.0.0.1"));
	ck_assert(netmatch_is_loopback("127.1.2.3"));
	ck_assert(netmatch_is_loopback("::1"));
	ck_assert(netmatch_is_loopback("localhost"));
	ck_assert(!netmatch_is_loopback("0.0.0.0"));
	ck_assert(!netmatch_is_loopback("::"));
	ck_assert(!netmatch_is_loopback("192.0.2.1"));
}
END_TEST

static Suite *
netmatch_suite(void)
{
	Suite	*s = suite_create("netmatch");
	TCase	*tc = tcase_create("netmatch");

	tcase_add_test(tc, test_ipv4_network_contains_its_addresses);
	tcase_add_test(tc, test_odd_prefix_lengths_match_bitwise);
	tcase_add_test(tc, test_single_address_is_a_full_prefix);
	tcase_add_test(tc, test_zero_prefix_matches_everything_of_its_family);
	tcase_add_test(tc, test_ipv6_networks_match);
	tcase_add_test(tc, test_v4_mapped_client_matches_ipv4_network);
	tcase_add_test(tc, test_malformed_networks_are_refused);
	tcase_add_test(tc, test_loopback_listen_addresses_are_recognised);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(netmatch_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
