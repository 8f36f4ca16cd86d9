/*
 * test_smtpcmd - unit tests of smtpproxyd/smtpcmd.c: verbs, argument
 * rules, MAIL/RCPT paths and parameters, reply codes and texts.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "smtpcmd.h"

#define TEXT_BAD_SIZE	"5.5.4 Invalid SIZE parameter"
#define LONG_NAME_LEN	200	/* longer than any echoed option name */

static struct smtp_cmd	 cmd;

static int		 parse(const char *);
static void		 assert_reply(const char *, int, const char *);
static Suite		*smtpcmd_suite(void);

/* parse - run smtpcmd_parse on a C string */
static int
parse(const char *line)
{
	return smtpcmd_parse(line, strlen(line), &cmd);
}

/* assert_reply - line is refused with this code and reply text */
static void
assert_reply(const char *line, int code, const char *text)
{
	ck_assert_int_eq(parse(line), code);
	ck_assert_ptr_nonnull(cmd.error);
	ck_assert_str_eq(cmd.error, text);
}

/* verbs */

static const struct {
	const char	*line;
	enum smtp_verb	 verb;
} verb_lines[] = {
	{ "helo client.example", CMD_HELO },
	{ "EhLo client.example", CMD_EHLO },
	{ "mail FROM:<a@example.com>", CMD_MAIL },
	{ "rCpT TO:<a@example.com>", CMD_RCPT },
	{ "data", CMD_DATA },
	{ "Rset", CMD_RSET },
	{ "noop", CMD_NOOP },
	{ "quit", CMD_QUIT },
	{ "vrfy someone", CMD_VRFY },
	{ "expn list", CMD_EXPN },
	{ "help", CMD_HELP },
	{ "StartTLS", CMD_STARTTLS },
	{ "auth PLAIN", CMD_AUTH },
};

START_TEST(test_each_verb_is_recognised_in_any_case)
{
	ck_assert_int_eq(parse(verb_lines[_i].line), 0);
	ck_assert_int_eq(cmd.verb, verb_lines[_i].verb);
	ck_assert_ptr_null(cmd.error);
}
END_TEST

START_TEST(test_unknown_verb_answers_500)
{
	assert_reply("XYZZY", 500, "5.5.2 Error: command not recognized");
	ck_assert_int_eq(cmd.verb, CMD_UNKNOWN);
}
END_TEST

START_TEST(test_empty_line_answers_500)
{
	assert_reply("", 500, "5.5.2 Error: command not recognized");
}
END_TEST

START_TEST(test_verb_glued_to_its_argument_is_unknown)
{
	assert_reply("MAILFROM:<a@example.com>", 500,
	    "5.5.2 Error: command not recognized");
	assert_reply("QUITX", 500, "5.5.2 Error: command not recognized");
}
END_TEST

START_TEST(test_leading_blank_makes_the_verb_unknown)
{
	assert_reply(" QUIT", 500, "5.5.2 Error: command not recognized");
}
END_TEST

/* argument presence */

START_TEST(test_ehlo_without_argument_answers_501)
{
	assert_reply("EHLO", 501, "5.5.4 Syntax: EHLO hostname");
	assert_reply("EHLO   ", 501, "5.5.4 Syntax: EHLO hostname");
	ck_assert_int_eq(cmd.verb, CMD_EHLO);
}
END_TEST

START_TEST(test_helo_without_argument_answers_501)
{
	assert_reply("HELO", 501, "5.5.4 Syntax: HELO hostname");
}
END_TEST

START_TEST(test_ehlo_argument_follows_the_blanks)
{
	ck_assert_int_eq(parse("EHLO  \tclient.example"), 0);
	ck_assert_str_eq(cmd.arg, "client.example");
}
END_TEST

START_TEST(test_ehlo_accepts_an_address_literal)
{
	ck_assert_int_eq(parse("EHLO [192.0.2.1]"), 0);
	ck_assert_str_eq(cmd.arg, "[192.0.2.1]");
}
END_TEST

static const struct {
	const char	*line;
	const char	*text;
} no_arg_lines[] = {
	{ "DATA x", "5.5.4 Syntax: DATA" },
	{ "RSET x", "5.5.4 Syntax: RSET" },
	{ "QUIT now", "5.5.4 Syntax: QUIT" },
	{ "STARTTLS x", "5.5.4 Syntax: STARTTLS" },
};

START_TEST(test_verbs_without_arguments_refuse_one_with_501)
{
	assert_reply(no_arg_lines[_i].line, 501, no_arg_lines[_i].text);
}
END_TEST

START_TEST(test_trailing_blanks_are_not_an_argument)
{
	ck_assert_int_eq(parse("QUIT "), 0);
	ck_assert_int_eq(parse("DATA\t"), 0);
	ck_assert_str_eq(cmd.arg, "");
}
END_TEST

START_TEST(test_noop_help_vrfy_expn_take_anything_or_nothing)
{
	ck_assert_int_eq(parse("NOOP"), 0);
	ck_assert_int_eq(parse("NOOP anything at all"), 0);
	ck_assert_int_eq(parse("HELP MAIL"), 0);
	ck_assert_int_eq(parse("VRFY"), 0);
	ck_assert_int_eq(parse("EXPN staff"), 0);
	ck_assert_str_eq(cmd.arg, "staff");
}
END_TEST

START_TEST(test_auth_without_mechanism_answers_501)
{
	assert_reply("AUTH", 501,
	    "5.5.4 Syntax: AUTH mechanism [initial-response]");
}
END_TEST

START_TEST(test_auth_argument_points_at_the_mechanism)
{
	ck_assert_int_eq(parse("AUTH PLAIN AHVzZXIAcGFzcw=="), 0);
	ck_assert_str_eq(cmd.arg, "PLAIN AHVzZXIAcGFzcw==");
}
END_TEST

/* MAIL */

START_TEST(test_mail_takes_size_and_body)
{
	ck_assert_int_eq(parse(
	    "MAIL FROM:<a@example.com> SIZE=100 BODY=8BITMIME"), 0);
	ck_assert_int_eq(cmd.verb, CMD_MAIL);
	ck_assert_str_eq(cmd.path, "a@example.com");
	ck_assert_int_eq(cmd.size, 100);
	ck_assert_int_eq(cmd.body, BODY_8BITMIME);
}
END_TEST

START_TEST(test_mail_without_parameters_leaves_size_and_body_unset)
{
	ck_assert_int_eq(parse("MAIL FROM:<a@example.com>"), 0);
	ck_assert_int_eq(cmd.size, -1);
	ck_assert_int_eq(cmd.body, BODY_UNSPECIFIED);
}
END_TEST

START_TEST(test_body_value_is_case_insensitive)
{
	ck_assert_int_eq(parse("MAIL FROM:<a@example.com> body=7bit"), 0);
	ck_assert_int_eq(cmd.body, BODY_7BIT);
	ck_assert_int_eq(parse("MAIL FROM:<a@example.com> Body=8bitMime"), 0);
	ck_assert_int_eq(cmd.body, BODY_8BITMIME);
}
END_TEST

START_TEST(test_space_after_colon_is_tolerated)
{
	ck_assert_int_eq(parse("MAIL FROM: <a@example.com> SIZE=5"), 0);
	ck_assert_str_eq(cmd.path, "a@example.com");
	ck_assert_int_eq(cmd.size, 5);
	ck_assert_int_eq(parse("RCPT TO: <b@example.com>"), 0);
	ck_assert_str_eq(cmd.path, "b@example.com");
}
END_TEST

START_TEST(test_from_and_to_are_case_insensitive)
{
	ck_assert_int_eq(parse("mail from:<a@example.com>"), 0);
	ck_assert_int_eq(parse("MAIL From:<a@example.com>"), 0);
	ck_assert_int_eq(parse("rcpt to:<a@example.com>"), 0);
}
END_TEST

START_TEST(test_null_sender_is_accepted)
{
	ck_assert_int_eq(parse("MAIL FROM:<>"), 0);
	ck_assert_str_eq(cmd.path, "");
}
END_TEST

START_TEST(test_bare_sender_with_parameters_is_accepted)
{
	ck_assert_int_eq(parse("MAIL FROM:a@example.com SIZE=42"), 0);
	ck_assert_str_eq(cmd.path, "a@example.com");
	ck_assert_int_eq(cmd.size, 42);
}
END_TEST

START_TEST(test_quoted_sender_keeps_its_quotes)
{
	ck_assert_int_eq(parse("MAIL FROM:<\"a b\"@example.com>"), 0);
	ck_assert_str_eq(cmd.path, "\"a b\"@example.com");
}
END_TEST

START_TEST(test_auth_parameter_is_accepted_and_ignored)
{
	ck_assert_int_eq(parse("MAIL FROM:<a@example.com> AUTH=<>"), 0);
	ck_assert_int_eq(parse(
	    "MAIL FROM:<a@example.com> AUTH=a+40example.com"), 0);
}
END_TEST

START_TEST(test_size_of_the_largest_number_is_accepted)
{
	ck_assert_int_eq(parse("MAIL FROM:<> SIZE=9223372036854775807"), 0);
	ck_assert_int_eq(cmd.size, 9223372036854775807LL);
}
END_TEST

START_TEST(test_size_with_other_than_digits_answers_501)
{
	assert_reply("MAIL FROM:<> SIZE=12a", 501, TEXT_BAD_SIZE);
	assert_reply("MAIL FROM:<> SIZE=-1", 501, TEXT_BAD_SIZE);
	assert_reply("MAIL FROM:<> SIZE=+1", 501, TEXT_BAD_SIZE);
	assert_reply("MAIL FROM:<> SIZE", 501, TEXT_BAD_SIZE);
}
END_TEST

START_TEST(test_size_that_does_not_fit_answers_501)
{
	assert_reply("MAIL FROM:<> SIZE=9223372036854775808", 501,
	    "5.5.4 Invalid SIZE parameter");
	assert_reply("MAIL FROM:<> SIZE=99999999999999999999999", 501,
	    "5.5.4 Invalid SIZE parameter");
}
END_TEST

START_TEST(test_empty_parameter_value_answers_501)
{
	assert_reply("MAIL FROM:<> SIZE=", 501,
	    "5.5.4 Syntax error in parameters");
}
END_TEST

START_TEST(test_unknown_body_type_answers_501)
{
	assert_reply("MAIL FROM:<> BODY=BINARYMIME", 501,
	    "5.5.4 Invalid BODY parameter");
}
END_TEST

START_TEST(test_duplicate_size_answers_501)
{
	assert_reply("MAIL FROM:<> SIZE=1 SIZE=2", 501,
	    "5.5.4 Duplicate MAIL parameter");
}
END_TEST

START_TEST(test_unknown_mail_parameter_answers_555_naming_it)
{
	assert_reply("MAIL FROM:<a@example.com> SMTPUTF8", 555,
	    "5.5.4 Unsupported option: SMTPUTF8");
	assert_reply("MAIL FROM:<a@example.com> SIZE=1 RET=HDRS", 555,
	    "5.5.4 Unsupported option: RET");
}
END_TEST

START_TEST(test_long_option_name_is_cut_in_the_reply)
{
	char	 line[64 + LONG_NAME_LEN];

	strcpy(line, "MAIL FROM:<> ");
	memset(line + strlen(line), 'X', LONG_NAME_LEN);
	line[strlen("MAIL FROM:<> ") + LONG_NAME_LEN] = '\0';
	ck_assert_int_eq(parse(line), 555);
	ck_assert_uint_lt(strlen(cmd.error), LONG_NAME_LEN);
	ck_assert_int_eq(strncmp(cmd.error, "5.5.4 Unsupported option: XXX",
	    strlen("5.5.4 Unsupported option: XXX")), 0);
}
END_TEST

START_TEST(test_malformed_parameter_answers_501)
{
	assert_reply("MAIL FROM:<a@example.com> =5", 501,
	    "5.5.4 Syntax error in parameters");
	assert_reply("MAIL FROM:<a@example.com> -X=1", 501,
	    "5.5.4 Syntax error in parameters");
}
END_TEST

START_TEST(test_mail_without_from_answers_501_syntax)
{
	assert_reply("MAIL", 501, "5.5.4 Syntax: MAIL FROM:<address>");
	assert_reply("MAIL <a@example.com>", 501,
	    "5.5.4 Syntax: MAIL FROM:<address>");
	assert_reply("MAIL FROM <a@example.com>", 501,
	    "5.5.4 Syntax: MAIL FROM:<address>");
}
END_TEST

START_TEST(test_bad_sender_address_answers_501_5_1_7)
{
	assert_reply("MAIL FROM:<a..b@example.com>", 501,
	    "5.1.7 Bad sender address syntax");
	assert_reply("MAIL FROM:", 501, "5.1.7 Bad sender address syntax");
	assert_reply("MAIL FROM:<a@example.com", 501,
	    "5.1.7 Bad sender address syntax");
}
END_TEST

START_TEST(test_sender_without_domain_answers_501_5_1_7)
{
	assert_reply("MAIL FROM:<postmaster>", 501,
	    "5.1.7 Bad sender address syntax");
}
END_TEST

START_TEST(test_text_glued_to_the_path_answers_501_5_1_7)
{
	assert_reply("MAIL FROM:<a@example.com>SIZE=1", 501,
	    "5.1.7 Bad sender address syntax");
}
END_TEST

START_TEST(test_over_long_sender_answers_501_too_long)
{
	char	 line[512];
	char	*p;

	strcpy(line, "MAIL FROM:<");
	p = line + strlen(line);
	memset(p, 'a', 300);
	strcpy(p + 300, "@example.com>");
	assert_reply(line, 501, "5.1.7 Sender address too long");
}
END_TEST

/* RCPT */

START_TEST(test_rcpt_takes_a_path)
{
	ck_assert_int_eq(parse("RCPT TO:<b@[IPv6:2001:db8::1]>"), 0);
	ck_assert_int_eq(cmd.verb, CMD_RCPT);
	ck_assert_str_eq(cmd.path, "b@[IPv6:2001:db8::1]");
}
END_TEST

START_TEST(test_rcpt_with_a_parameter_answers_555)
{
	assert_reply("RCPT TO:<b@example.com> NOTIFY=NEVER", 555,
	    "5.5.4 Unsupported option: NOTIFY");
}
END_TEST

START_TEST(test_rcpt_refuses_a_mail_parameter_with_555)
{
	assert_reply("RCPT TO:<b@example.com> SIZE=100", 555,
	    "5.5.4 Unsupported option: SIZE");
}
END_TEST

START_TEST(test_rcpt_without_to_answers_501_syntax)
{
	assert_reply("RCPT", 501, "5.5.4 Syntax: RCPT TO:<address>");
	assert_reply("RCPT FROM:<b@example.com>", 501,
	    "5.5.4 Syntax: RCPT TO:<address>");
}
END_TEST

START_TEST(test_bad_recipient_address_answers_501_5_1_3)
{
	assert_reply("RCPT TO:<b@@example.com>", 501,
	    "5.1.3 Bad recipient address syntax");
}
END_TEST

START_TEST(test_recipient_without_domain_answers_501_5_1_3)
{
	assert_reply("RCPT TO:<postmaster>", 501,
	    "5.1.3 Bad recipient address syntax");
}
END_TEST

START_TEST(test_null_recipient_answers_501_5_1_3)
{
	assert_reply("RCPT TO:<>", 501, "5.1.3 Bad recipient address syntax");
}
END_TEST

START_TEST(test_over_long_recipient_answers_501_too_long)
{
	char	 line[512];
	char	*p;

	strcpy(line, "RCPT TO:<");
	p = line + strlen(line);
	memset(p, 'a', 65);
	strcpy(p + 65, "@example.com>");
	assert_reply(line, 501, "5.1.3 Recipient address too long");
}
END_TEST

/* line hygiene */

START_TEST(test_nul_inside_the_line_answers_500)
{
	static const char	 line[] = "MAIL FROM:<a\0@example.com>";

	ck_assert_int_eq(smtpcmd_parse(line, sizeof(line) - 1, &cmd), 500);
	ck_assert_str_eq(cmd.error,
	    "5.5.2 Error: control character in command line");
}
END_TEST

START_TEST(test_nul_after_a_complete_command_answers_500)
{
	static const char	 line[] = "QUIT\0junk";

	ck_assert_int_eq(smtpcmd_parse(line, sizeof(line) - 1, &cmd), 500);
	ck_assert_int_eq(cmd.verb, CMD_UNKNOWN);
}
END_TEST

START_TEST(test_bare_cr_inside_the_line_answers_500)
{
	assert_reply("RCPT TO:<b@example.com>\rDATA", 500,
	    "5.5.2 Error: control character in command line");
}
END_TEST

START_TEST(test_over_long_line_answers_500)
{
	char	*line = malloc(SMTP_COMMAND_LINE_MAX + 2);

	ck_assert_ptr_nonnull(line);
	memcpy(line, "NOOP ", 5);
	memset(line + 5, 'x', SMTP_COMMAND_LINE_MAX - 4);
	line[SMTP_COMMAND_LINE_MAX + 1] = '\0';
	assert_reply(line, 500, "5.5.2 Error: command line too long");
	free(line);
}
END_TEST

/* smtpcmd_suite - every test of this file */
static Suite *
smtpcmd_suite(void)
{
	Suite	*s = suite_create("smtpcmd");
	TCase	*verbs = tcase_create("verbs");
	TCase	*mail = tcase_create("mail");
	TCase	*rcpt = tcase_create("rcpt");
	TCase	*line = tcase_create("line");

	tcase_add_loop_test(verbs, test_each_verb_is_recognised_in_any_case,
	    0, sizeof(verb_lines) / sizeof(verb_lines[0]));
	tcase_add_test(verbs, test_unknown_verb_answers_500);
	tcase_add_test(verbs, test_empty_line_answers_500);
	tcase_add_test(verbs, test_verb_glued_to_its_argument_is_unknown);
	tcase_add_test(verbs, test_leading_blank_makes_the_verb_unknown);
	tcase_add_test(verbs, test_ehlo_without_argument_answers_501);
	tcase_add_test(verbs, test_helo_without_argument_answers_501);
	tcase_add_test(verbs, test_ehlo_argument_follows_the_blanks);
	tcase_add_test(verbs, test_ehlo_accepts_an_address_literal);
	tcase_add_loop_test(verbs,
	    test_verbs_without_arguments_refuse_one_with_501,
	    0, sizeof(no_arg_lines) / sizeof(no_arg_lines[0]));
	tcase_add_test(verbs, test_trailing_blanks_are_not_an_argument);
	tcase_add_test(verbs,
	    test_noop_help_vrfy_expn_take_anything_or_nothing);
	tcase_add_test(verbs, test_auth_without_mechanism_answers_501);
	tcase_add_test(verbs, test_auth_argument_points_at_the_mechanism);
	suite_add_tcase(s, verbs);

	tcase_add_test(mail, test_mail_takes_size_and_body);
	tcase_add_test(mail,
	    test_mail_without_parameters_leaves_size_and_body_unset);
	tcase_add_test(mail, test_body_value_is_case_insensitive);
	tcase_add_test(mail, test_space_after_colon_is_tolerated);
	tcase_add_test(mail, test_from_and_to_are_case_insensitive);
	tcase_add_test(mail, test_null_sender_is_accepted);
	tcase_add_test(mail, test_bare_sender_with_parameters_is_accepted);
	tcase_add_test(mail, test_quoted_sender_keeps_its_quotes);
	tcase_add_test(mail, test_auth_parameter_is_accepted_and_ignored);
	tcase_add_test(mail, test_size_of_the_largest_number_is_accepted);
	tcase_add_test(mail, test_size_with_other_than_digits_answers_501);
	tcase_add_test(mail, test_size_that_does_not_fit_answers_501);
	tcase_add_test(mail, test_empty_parameter_value_answers_501);
	tcase_add_test(mail, test_unknown_body_type_answers_501);
	tcase_add_test(mail, test_duplicate_size_answers_501);
	tcase_add_test(mail, test_unknown_mail_parameter_answers_555_naming_it);
	tcase_add_test(mail, test_long_option_name_is_cut_in_the_reply);
	tcase_add_test(mail, test_malformed_parameter_answers_501);
	tcase_add_test(mail, test_mail_without_from_answers_501_syntax);
	tcase_add_test(mail, test_bad_sender_address_answers_501_5_1_7);
	tcase_add_test(mail, test_sender_without_domain_answers_501_5_1_7);
	tcase_add_test(mail, test_text_glued_to_the_path_answers_501_5_1_7);
	tcase_add_test(mail, test_over_long_sender_answers_501_too_long);
	suite_add_tcase(s, mail);

	tcase_add_test(rcpt, test_rcpt_takes_a_path);
	tcase_add_test(rcpt, test_rcpt_with_a_parameter_answers_555);
	tcase_add_test(rcpt, test_rcpt_refuses_a_mail_parameter_with_555);
	tcase_add_test(rcpt, test_rcpt_without_to_answers_501_syntax);
	tcase_add_test(rcpt, test_bad_recipient_address_answers_501_5_1_3);
	tcase_add_test(rcpt, test_recipient_without_domain_answers_501_5_1_3);
	tcase_add_test(rcpt, test_null_recipient_answers_501_5_1_3);
	tcase_add_test(rcpt, test_over_long_recipient_answers_501_too_long);
	suite_add_tcase(s, rcpt);

	tcase_add_test(line, test_nul_inside_the_line_answers_500);
	tcase_add_test(line, test_nul_after_a_complete_command_answers_500);
	tcase_add_test(line, test_bare_cr_inside_the_line_answers_500);
	tcase_add_test(line, test_over_long_line_answers_500);
	suite_add_tcase(s, line);
	return s;
}

/* main - run the suite; the exit status says whether all tests passed */
int
main(void)
{
	SRunner	*sr = srunner_create(smtpcmd_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
