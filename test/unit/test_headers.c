/*
 * test_headers - Reply-To:/From: rewriting stays inside the header block.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "headers.h"

/* rewrite - headers_rewrite over a string, for short tests */
static char *
rewrite(const char *msg, const char *replyto, const char *from)
{
	size_t	len = headers_block_length(msg, strlen(msg)), outlen;

	return headers_rewrite(msg, len, replyto, from, &outlen);
}

START_TEST(test_block_length_includes_the_empty_line)
{
	const char	*m = "A: 1\r\nB: 2\r\n\r\nbody\r\n";

	ck_assert_uint_eq(headers_block_length(m, strlen(m)), 14);
}
END_TEST

START_TEST(test_message_without_empty_line_is_all_header)
{
	const char	*m = "A: 1\r\nB: 2\r\n";

	ck_assert_uint_eq(headers_block_length(m, strlen(m)), strlen(m));
}
END_TEST

START_TEST(test_existing_reply_to_is_replaced)
{
	char	*r = rewrite("From: a@x\r\nReply-To: old@x\r\nSubject: s\r\n\r\n",
	    "new@y", NULL);

	ck_assert_str_eq(r, "From: a@x\r\nReply-To: new@y\r\nSubject: s\r\n\r\n");
	free(r);
}
END_TEST

START_TEST(test_missing_reply_to_is_added_before_the_empty_line)
{
	char	*r = rewrite("From: a@x\r\nSubject: s\r\n\r\n", "new@y", NULL);

	ck_assert_str_eq(r, "From: a@x\r\nSubject: s\r\nReply-To: new@y\r\n\r\n");
	free(r);
}
END_TEST

START_TEST(test_folded_from_is_replaced_whole)
{
	char	*r = rewrite("From: \"Long\r\n name\" <a@x>\r\nTo: t@z\r\n\r\n",
	    NULL, "f@y");

	ck_assert_str_eq(r, "From: f@y\r\nTo: t@z\r\n\r\n");
	free(r);
}
END_TEST

START_TEST(test_duplicate_fields_become_one)
{
	char	*r = rewrite("reply-to: a@x\r\nREPLY-TO: b@x\r\n\r\n", "c@y", NULL);

	ck_assert_str_eq(r, "Reply-To: c@y\r\n\r\n");
	free(r);
}
END_TEST

START_TEST(test_similar_field_names_are_left_alone)
{
	char	*r = rewrite("From-Address: a@x\r\nX-From: b@x\r\n\r\n", NULL,
	    "c@y");

	ck_assert_str_eq(r, "From-Address: a@x\r\nX-From: b@x\r\nFrom: c@y\r\n\r\n");
	free(r);
}
END_TEST

START_TEST(test_body_from_line_is_not_touched)
{
	const char	*m = "Subject: s\r\n\r\nFrom: body@x\r\n";
	size_t		 len = headers_block_length(m, strlen(m)), outlen;
	char		*r = headers_rewrite(m, len, NULL, "c@y", &outlen);

	ck_assert_uint_eq(len, 14);
	ck_assert_str_eq(r, "Subject: s\r\nFrom: c@y\r\n\r\n");
	free(r);
}
END_TEST

START_TEST(test_nothing_to_do_copies_the_block)
{
	char	*r = rewrite("A: 1\r\n\r\n", NULL, NULL);

	ck_assert_str_eq(r, "A: 1\r\n\r\n");
	free(r);
}
END_TEST

static Suite *
headers_suite(void)
{
	Suite	*s = suite_create("headers");
	TCase	*tc = tcase_create("headers");

	tcase_add_test(tc, test_block_length_includes_the_empty_line);
	tcase_add_test(tc, test_message_without_empty_line_is_all_header);
	tcase_add_test(tc, test_existing_reply_to_is_replaced);
	tcase_add_test(tc, test_missing_reply_to_is_added_before_the_empty_line);
	tcase_add_test(tc, test_folded_from_is_replaced_whole);
	tcase_add_test(tc, test_duplicate_fields_become_one);
	tcase_add_test(tc, test_similar_field_names_are_left_alone);
	tcase_add_test(tc, test_body_from_line_is_not_touched);
	tcase_add_test(tc, test_nothing_to_do_copies_the_block);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(headers_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
