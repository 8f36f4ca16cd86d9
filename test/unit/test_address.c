/*
 * test_address - unit tests of common/address.c: RFC 5321 path parsing,
 * limits, domain lookup and comparison.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"

#define LABEL_LEN	49	/* label length in the long test domains */

static char			 out[ADDRESS_MAX];
static const char		*end;

static enum address_error	 parse(const char *);
static void			 fill_domain(char *, size_t);
static void			 fill_local(char *, size_t);
static char			*make_mailbox(size_t, size_t, int);
static void			 assert_syntax_error(const char *);
static Suite			*address_suite(void);

/* parse - run address_parse_path into the shared out and end */
static enum address_error
parse(const char *in)
{
	memset(out, 'X', sizeof(out));
	end = NULL;
	return address_parse_path(in, out, sizeof(out), &end);
}

/* fill_domain - len bytes of a valid domain of short labels at buf */
static void
fill_domain(char *buf, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		buf[i] = (i % (LABEL_LEN + 1) == LABEL_LEN && i + 1 < len) ?
		    '.' : 'a';
	buf[len] = '\0';
}

/* fill_local - len bytes of a valid dot-atom local part at buf */
static void
fill_local(char *buf, size_t len)
{
	memset(buf, 'l', len);
	buf[len] = '\0';
}

/* make_mailbox - allocate local@domain of these lengths, maybe in <> */
static char *
make_mailbox(size_t local, size_t domain, int brackets)
{
	char	*s = malloc(local + domain + 4);
	char	*p = s;

	ck_assert_ptr_nonnull(s);
	if (brackets)
		*p++ = '<';
	fill_local(p, local);
	p += local;
	*p++ = '@';
	fill_domain(p, domain);
	p += domain;
	if (brackets)
		*p++ = '>';
	*p = '\0';
	return s;
}

/* assert_syntax_error - in is refused as a syntax error, nothing written */
static void
assert_syntax_error(const char *in)
{
	ck_assert_int_eq(parse(in), ADDRESS_SYNTAX);
	ck_assert_str_eq(out, "");
	ck_assert_ptr_eq(end, in);
}

/* valid forms */

START_TEST(test_dot_atom_mailbox_is_accepted)
{
	const char	*in = "<john.doe+tag@mail.example.com>";

	ck_assert_int_eq(parse(in), ADDRESS_OK);
	ck_assert_str_eq(out, "john.doe+tag@mail.example.com");
	ck_assert_ptr_eq(end, in + strlen(in));
}
END_TEST

START_TEST(test_quoted_local_part_keeps_its_quotes)
{
	ck_assert_int_eq(parse("<\"john doe\"@example.com>"), ADDRESS_OK);
	ck_assert_str_eq(out, "\"john doe\"@example.com");
}
END_TEST

START_TEST(test_quoted_local_part_keeps_escaped_quotes)
{
	ck_assert_int_eq(parse("<\"say \\\"hi\\\"\"@example.com>"), ADDRESS_OK);
	ck_assert_str_eq(out, "\"say \\\"hi\\\"\"@example.com");
}
END_TEST

START_TEST(test_quoted_local_part_may_hold_an_at_sign)
{
	ck_assert_int_eq(parse("<\"a@b\"@example.com>"), ADDRESS_OK);
	ck_assert_str_eq(out, "\"a@b\"@example.com");
}
END_TEST

START_TEST(test_ipv4_literal_is_accepted)
{
	ck_assert_int_eq(parse("<user@[192.0.2.1]>"), ADDRESS_OK);
	ck_assert_str_eq(out, "user@[192.0.2.1]");
}
END_TEST

START_TEST(test_ipv6_literal_is_accepted)
{
	ck_assert_int_eq(parse("<user@[IPv6:2001:db8::1]>"), ADDRESS_OK);
	ck_assert_str_eq(out, "user@[IPv6:2001:db8::1]");
}
END_TEST

START_TEST(test_ipv6_literal_with_embedded_ipv4_is_accepted)
{
	ck_assert_int_eq(parse("<user@[IPv6:::ffff:192.0.2.1]>"), ADDRESS_OK);
}
END_TEST

START_TEST(test_general_address_literal_is_accepted)
{
	ck_assert_int_eq(parse("<user@[x-tag:some.data]>"), ADDRESS_OK);
	ck_assert_str_eq(out, "user@[x-tag:some.data]");
}
END_TEST

START_TEST(test_null_sender_gives_an_empty_mailbox)
{
	const char	*in = "<>";

	ck_assert_int_eq(parse(in), ADDRESS_OK);
	ck_assert_str_eq(out, "");
	ck_assert_ptr_eq(end, in + 2);
}
END_TEST

START_TEST(test_source_route_is_dropped)
{
	const char	*in = "<@r1.example,@r2.example:user@example.com>";

	ck_assert_int_eq(parse(in), ADDRESS_OK);
	ck_assert_str_eq(out, "user@example.com");
	ck_assert_ptr_eq(end, in + strlen(in));
}
END_TEST

START_TEST(test_bare_mailbox_is_accepted)
{
	const char	*in = "user@example.com";

	ck_assert_int_eq(parse(in), ADDRESS_OK);
	ck_assert_str_eq(out, "user@example.com");
	ck_assert_ptr_eq(end, in + strlen(in));
}
END_TEST

START_TEST(test_bare_mailbox_ends_at_a_space)
{
	const char	*in = "user@example.com SIZE=100";

	ck_assert_int_eq(parse(in), ADDRESS_OK);
	ck_assert_str_eq(out, "user@example.com");
	ck_assert_str_eq(end, " SIZE=100");
}
END_TEST

START_TEST(test_end_points_before_esmtp_parameters)
{
	const char	*in = "<user@example.com> SIZE=100 BODY=8BITMIME";

	ck_assert_int_eq(parse(in), ADDRESS_OK);
	ck_assert_str_eq(end, " SIZE=100 BODY=8BITMIME");
}
END_TEST

START_TEST(test_single_label_domain_is_accepted)
{
	ck_assert_int_eq(parse("<root@localhost>"), ADDRESS_OK);
}
END_TEST

START_TEST(test_utf8_local_part_and_domain_are_accepted)
{
	ck_assert_int_eq(parse("<j\xc3\xb6rg@b\xc3\xbc" "cher.example>"),
	    ADDRESS_OK);
	ck_assert_str_eq(out, "j\xc3\xb6rg@b\xc3\xbc" "cher.example");
}
END_TEST

START_TEST(test_local_part_without_domain_is_reported_with_its_name)
{
	const char	*in = "<Postmaster>";

	ck_assert_int_eq(parse(in), ADDRESS_NO_DOMAIN);
	ck_assert_str_eq(out, "Postmaster");
	ck_assert_ptr_eq(end, in + strlen(in));
}
END_TEST

START_TEST(test_local_part_of_64_bytes_is_accepted)
{
	char	*in = make_mailbox(ADDRESS_LOCAL_MAX, 20, 1);

	ck_assert_int_eq(parse(in), ADDRESS_OK);
	free(in);
}
END_TEST

START_TEST(test_path_of_256_bytes_is_accepted)
{
	char	*in = make_mailbox(ADDRESS_LOCAL_MAX,
	    ADDRESS_PATH_MAX - ADDRESS_LOCAL_MAX - 3, 1);

	ck_assert_uint_eq(strlen(in), ADDRESS_PATH_MAX);
	ck_assert_int_eq(parse(in), ADDRESS_OK);
	ck_assert_uint_eq(strlen(out), ADDRESS_PATH_MAX - 2);
	free(in);
}
END_TEST

/* invalid forms */

START_TEST(test_cr_is_a_syntax_error)
{
	assert_syntax_error("<us\rer@example.com>");
	assert_syntax_error("<user@example.com\r>");
	assert_syntax_error("user@example.com\r");
}
END_TEST

START_TEST(test_lf_is_a_syntax_error)
{
	assert_syntax_error("<us\ner@example.com>");
	assert_syntax_error("<\"us\ner\"@example.com>");
	assert_syntax_error("user@example.com\n");
}
END_TEST

START_TEST(test_nul_inside_a_bracketed_path_is_a_syntax_error)
{
	static const char	 in[] = "<user\0@example.com>";

	assert_syntax_error(in);
}
END_TEST

START_TEST(test_other_control_bytes_are_syntax_errors)
{
	assert_syntax_error("<us\ter@example.com>");
	assert_syntax_error("<us\x7f" "er@example.com>");
	assert_syntax_error("<\"us\x01" "er\"@example.com>");
	assert_syntax_error("<\"us\\\x01" "er\"@example.com>");
}
END_TEST

START_TEST(test_unbalanced_brackets_are_syntax_errors)
{
	assert_syntax_error("<user@example.com");
	assert_syntax_error("user@example.com>");
	assert_syntax_error("<<user@example.com>>");
	assert_syntax_error("<");
}
END_TEST

START_TEST(test_two_at_signs_are_a_syntax_error)
{
	assert_syntax_error("<user@host@example.com>");
}
END_TEST

START_TEST(test_empty_local_part_is_a_syntax_error)
{
	assert_syntax_error("<@example.com>");
	assert_syntax_error("@example.com");
}
END_TEST

START_TEST(test_empty_path_is_a_syntax_error)
{
	assert_syntax_error("");
	assert_syntax_error(" <user@example.com>");
}
END_TEST

START_TEST(test_leading_dot_in_dot_atom_is_a_syntax_error)
{
	assert_syntax_error("<.user@example.com>");
}
END_TEST

START_TEST(test_trailing_dot_in_dot_atom_is_a_syntax_error)
{
	assert_syntax_error("<user.@example.com>");
}
END_TEST

START_TEST(test_double_dot_in_dot_atom_is_a_syntax_error)
{
	assert_syntax_error("<us..er@example.com>");
}
END_TEST

START_TEST(test_unterminated_quoted_string_is_a_syntax_error)
{
	assert_syntax_error("<\"user@example.com>");
}
END_TEST

START_TEST(test_bad_domain_names_are_syntax_errors)
{
	assert_syntax_error("<user@>");
	assert_syntax_error("<user@example.com.>");
	assert_syntax_error("<user@example..com>");
	assert_syntax_error("<user@-example.com>");
	assert_syntax_error("<user@example-.com>");
	assert_syntax_error("<user@exa_mple.com>");
}
END_TEST

START_TEST(test_bad_ipv6_literal_is_a_syntax_error)
{
	assert_syntax_error("<user@[IPv6:2001:db8::g]>");
	assert_syntax_error("<user@[IPv6:1:2:3:4:5:6:7:8:9]>");
	assert_syntax_error("<user@[IPv6:]>");
}
END_TEST

START_TEST(test_bad_ipv4_literal_is_a_syntax_error)
{
	assert_syntax_error("<user@[192.0.2.256]>");
	assert_syntax_error("<user@[192.0.2]>");
	assert_syntax_error("<user@[192.0.2.1.5]>");
	assert_syntax_error("<user@[1920.0.2.1]>");
	assert_syntax_error("<user@[]>");
	assert_syntax_error("<user@[192.0.2.1>");
}
END_TEST

START_TEST(test_malformed_utf8_is_a_syntax_error)
{
	/* an overlong NUL, a surrogate */
	assert_syntax_error("<us\xc0\x80" "er@example.com>");
	assert_syntax_error("<us\xed\xa0\x80" "er@example.com>");
	assert_syntax_error("<user@ex\xc3" "ample.com>");	/* cut short */
}
END_TEST

START_TEST(test_bad_source_route_is_a_syntax_error)
{
	assert_syntax_error("<@relay.example user@example.com>");
	assert_syntax_error("<@relay.example,user@example.com>");
}
END_TEST

START_TEST(test_local_part_of_65_bytes_is_too_long)
{
	char	*in = make_mailbox(ADDRESS_LOCAL_MAX + 1, 20, 1);

	ck_assert_int_eq(parse(in), ADDRESS_TOO_LONG);
	ck_assert_str_eq(out, "");
	free(in);
}
END_TEST

START_TEST(test_domain_of_256_bytes_is_too_long)
{
	char	*in = make_mailbox(1, ADDRESS_DOMAIN_MAX + 1, 0);

	ck_assert_int_eq(address_check_mailbox(in), ADDRESS_TOO_LONG);
	ck_assert_int_eq(parse(in), ADDRESS_TOO_LONG);
	free(in);
}
END_TEST

START_TEST(test_path_of_257_bytes_is_too_long)
{
	char	*in = make_mailbox(ADDRESS_LOCAL_MAX,
	    ADDRESS_PATH_MAX - ADDRESS_LOCAL_MAX - 2, 1);

	ck_assert_uint_eq(strlen(in), ADDRESS_PATH_MAX + 1);
	ck_assert_int_eq(parse(in), ADDRESS_TOO_LONG);
	ck_assert_str_eq(out, "");
	free(in);
}
END_TEST

START_TEST(test_control_byte_beats_length_limits)
{
	char	*in = make_mailbox(ADDRESS_LOCAL_MAX + 1, 20, 1);

	in[3] = '\r';
	ck_assert_int_eq(parse(in), ADDRESS_SYNTAX);
	free(in);
}
END_TEST

START_TEST(test_small_output_buffer_is_never_overrun)
{
	char	 small[8] = "1234567";

	ck_assert_int_eq(address_parse_path("<user@example.com>", small,
	    5, NULL), ADDRESS_TOO_LONG);
	ck_assert_str_eq(small, "");
	ck_assert_mem_eq(small + 1, "234567", 7);
}
END_TEST

/* address_check_mailbox */

START_TEST(test_check_mailbox_accepts_a_plain_mailbox)
{
	ck_assert_int_eq(address_check_mailbox("foo@example.com"), ADDRESS_OK);
}
END_TEST

START_TEST(test_check_mailbox_refuses_brackets_and_trailing_text)
{
	ck_assert_int_eq(address_check_mailbox("<foo@example.com>"),
	    ADDRESS_SYNTAX);
	ck_assert_int_eq(address_check_mailbox("foo@example.com bar"),
	    ADDRESS_SYNTAX);
}
END_TEST

START_TEST(test_check_mailbox_reports_a_missing_domain)
{
	ck_assert_int_eq(address_check_mailbox("foo"), ADDRESS_NO_DOMAIN);
}
END_TEST

/* address_domain */

START_TEST(test_domain_follows_the_at_sign)
{
	ck_assert_str_eq(address_domain("user@example.com"), "example.com");
}
END_TEST

START_TEST(test_domain_follows_a_quoted_local_part_holding_an_at_sign)
{
	ck_assert_str_eq(address_domain("\"a@b\"@example.com"), "example.com");
	ck_assert_str_eq(address_domain("\"a\\\"@b\"@example.com"),
	    "example.com");
}
END_TEST

START_TEST(test_mailbox_without_at_sign_has_no_domain)
{
	ck_assert_ptr_null(address_domain("postmaster"));
	ck_assert_ptr_null(address_domain(""));
	ck_assert_ptr_null(address_domain("\"a@b\""));
}
END_TEST

/* address_equal */

START_TEST(test_domains_compare_case_insensitively)
{
	ck_assert(address_equal("user@Example.COM", "user@example.com"));
}
END_TEST

START_TEST(test_local_parts_compare_case_sensitively)
{
	ck_assert(!address_equal("User@example.com", "user@example.com"));
}
END_TEST

START_TEST(test_different_domains_are_not_equal)
{
	ck_assert(!address_equal("user@example.com", "user@example.org"));
	ck_assert(!address_equal("user@example.com", "user@example.co"));
}
END_TEST

START_TEST(test_quoted_local_parts_compare_up_to_their_own_at_sign)
{
	ck_assert(address_equal("\"a@b\"@EXAMPLE.com", "\"a@b\"@example.com"));
	ck_assert(!address_equal("\"a@b\"@example.com", "\"a@c\"@example.com"));
}
END_TEST

START_TEST(test_null_senders_are_equal)
{
	ck_assert(address_equal("", ""));
	ck_assert(!address_equal("", "user@example.com"));
}
END_TEST

START_TEST(test_every_error_has_a_text)
{
	ck_assert_ptr_nonnull(address_error_text(ADDRESS_OK));
	ck_assert_ptr_nonnull(address_error_text(ADDRESS_SYNTAX));
	ck_assert_ptr_nonnull(address_error_text(ADDRESS_TOO_LONG));
	ck_assert_ptr_nonnull(address_error_text(ADDRESS_NO_DOMAIN));
}
END_TEST

/* address_suite - every test of this file */
static Suite *
address_suite(void)
{
	Suite	*s = suite_create("address");
	TCase	*valid = tcase_create("valid");
	TCase	*invalid = tcase_create("invalid");
	TCase	*lookup = tcase_create("lookup");

	tcase_add_test(valid, test_dot_atom_mailbox_is_accepted);
	tcase_add_test(valid, test_quoted_local_part_keeps_its_quotes);
	tcase_add_test(valid, test_quoted_local_part_keeps_escaped_quotes);
	tcase_add_test(valid, test_quoted_local_part_may_hold_an_at_sign);
	tcase_add_test(valid, test_ipv4_literal_is_accepted);
	tcase_add_test(valid, test_ipv6_literal_is_accepted);
	tcase_add_test(valid, test_ipv6_literal_with_embedded_ipv4_is_accepted);
	tcase_add_test(valid, test_general_address_literal_is_accepted);
	tcase_add_test(valid, test_null_sender_gives_an_empty_mailbox);
	tcase_add_test(valid, test_source_route_is_dropped);
	tcase_add_test(valid, test_bare_mailbox_is_accepted);
	tcase_add_test(valid, test_bare_mailbox_ends_at_a_space);
	tcase_add_test(valid, test_end_points_before_esmtp_parameters);
	tcase_add_test(valid, test_single_label_domain_is_accepted);
	tcase_add_test(valid, test_utf8_local_part_and_domain_are_accepted);
	tcase_add_test(valid,
	    test_local_part_without_domain_is_reported_with_its_name);
	tcase_add_test(valid, test_local_part_of_64_bytes_is_accepted);
	tcase_add_test(valid, test_path_of_256_bytes_is_accepted);
	tcase_add_test(valid, test_check_mailbox_accepts_a_plain_mailbox);
	suite_add_tcase(s, valid);

	tcase_add_test(invalid, test_cr_is_a_syntax_error);
	tcase_add_test(invalid, test_lf_is_a_syntax_error);
	tcase_add_test(invalid,
	    test_nul_inside_a_bracketed_path_is_a_syntax_error);
	tcase_add_test(invalid, test_other_control_bytes_are_syntax_errors);
	tcase_add_test(invalid, test_unbalanced_brackets_are_syntax_errors);
	tcase_add_test(invalid, test_two_at_signs_are_a_syntax_error);
	tcase_add_test(invalid, test_empty_local_part_is_a_syntax_error);
	tcase_add_test(invalid, test_empty_path_is_a_syntax_error);
	tcase_add_test(invalid,
	    test_leading_dot_in_dot_atom_is_a_syntax_error);
	tcase_add_test(invalid,
	    test_trailing_dot_in_dot_atom_is_a_syntax_error);
	tcase_add_test(invalid, test_double_dot_in_dot_atom_is_a_syntax_error);
	tcase_add_test(invalid,
	    test_unterminated_quoted_string_is_a_syntax_error);
	tcase_add_test(invalid, test_bad_domain_names_are_syntax_errors);
	tcase_add_test(invalid, test_bad_ipv6_literal_is_a_syntax_error);
	tcase_add_test(invalid, test_bad_ipv4_literal_is_a_syntax_error);
	tcase_add_test(invalid, test_malformed_utf8_is_a_syntax_error);
	tcase_add_test(invalid, test_bad_source_route_is_a_syntax_error);
	tcase_add_test(invalid, test_local_part_of_65_bytes_is_too_long);
	tcase_add_test(invalid, test_domain_of_256_bytes_is_too_long);
	tcase_add_test(invalid, test_path_of_257_bytes_is_too_long);
	tcase_add_test(invalid, test_control_byte_beats_length_limits);
	tcase_add_test(invalid, test_small_output_buffer_is_never_overrun);
	tcase_add_test(invalid,
	    test_check_mailbox_refuses_brackets_and_trailing_text);
	tcase_add_test(invalid, test_check_mailbox_reports_a_missing_domain);
	suite_add_tcase(s, invalid);

	tcase_add_test(lookup, test_domain_follows_the_at_sign);
	tcase_add_test(lookup,
	    test_domain_follows_a_quoted_local_part_holding_an_at_sign);
	tcase_add_test(lookup, test_mailbox_without_at_sign_has_no_domain);
	tcase_add_test(lookup, test_domains_compare_case_insensitively);
	tcase_add_test(lookup, test_local_parts_compare_case_sensitively);
	tcase_add_test(lookup, test_different_domains_are_not_equal);
	tcase_add_test(lookup,
	    test_quoted_local_parts_compare_up_to_their_own_at_sign);
	tcase_add_test(lookup, test_null_senders_are_equal);
	tcase_add_test(lookup, test_every_error_has_a_text);
	suite_add_tcase(s, lookup);
	return s;
}

/* main - run the suite; the exit status says whether all tests passed */
int
main(void)
{
	SRunner	*sr = srunner_create(address_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
