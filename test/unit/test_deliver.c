/*
 * test_deliver - the pure parts of relay/deliver.c: reading reply lines,
 * following the dialogue (recipient replies, login state, the extensions
 * of EHLO, redaction), classifying an attempt, and streaming the message
 * body.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "deliver.h"

static struct delivery_rcpt	rcpts[4];
static struct delivery_msg	msg;
static struct deliver_attempt	att;
static struct deliver_dialogue	dlg;
static char			shown[1024];

static void	setup(void);
static void	out(const char *);
static void	in(const char *);
static void	session_to_data(void);
static int	file_with(const char *);
static Suite	*deliver_suite(void);

/* setup - a message to a@x, b@x, c@x and a dialogue on a new connection */
static void
setup(void)
{
	static const char *const addrs[] = { "a@x", "b@x", "c@x", "d@x" };

	memset(rcpts, 0, sizeof(rcpts));
	memset(&msg, 0, sizeof(msg));
	memset(&att, 0, sizeof(att));
	memset(&dlg, 0, sizeof(dlg));
	for (size_t i = 0; i < 4; i++)
		rcpts[i].address = addrs[i];
	msg.rcpts = rcpts;
	msg.nrcpts = 3;
	deliver_dialogue_begin(&dlg, &msg, NULL, 0, &att);
}

/* out - a command went upstream */
static void
out(const char *line)
{
	deliver_dialogue_out(&dlg, line, strlen(line), shown, sizeof(shown));
}

/* in - a reply line came back */
static void
in(const char *line)
{
	deliver_dialogue_in(&dlg, line, strlen(line));
}

/* session_to_data - greeting to 354 with a@x and c@x accepted, b@x refused */
static void
session_to_data(void)
{
	in("220 mx ESMTP\r\n");
	out("EHLO me\r\n");
	in("250 mx\r\n");
	out("MAIL FROM:<s@x>\r\n");
	in("250 ok\r\n");
	out("RCPT TO:<a@x>\r\n");
	in("250 ok a\r\n");
	out("RCPT TO:<b@x>\r\n");
	in("550 5.1.1 <b@x>: user unknown\r\n");
	out("RCPT TO:<c@x>\r\n");
	in("250 ok c\r\n");
	out("DATA\r\n");
	in("354 go ahead\r\n");
}

/* file_with - an unlinked temporary file holding text */
static int
file_with(const char *text)
{
	char	path[] = "/tmp/test_deliverXXXXXX";
	int	fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	return fd;
}

/* reply lines */

START_TEST(test_reply_final_line_has_space_after_code)
{
	const char	*text;
	size_t		 len;
	int		 code;
	bool		 last;

	ck_assert_int_eq(deliver_parse_reply("550 5.1.1 no\r\n", 14, &code,
	    &last, &text, &len), 0);
	ck_assert_int_eq(code, 550);
	ck_assert(last);
	ck_assert_int_eq(len, 8);
	ck_assert(strncmp(text, "5.1.1 no", len) == 0);
}
END_TEST

START_TEST(test_reply_dash_marks_a_continuation_line)
{
	const char	*text;
	size_t		 len;
	int		 code;
	bool		 last;

	ck_assert_int_eq(deliver_parse_reply("250-PIPELINING\r\n", 16, &code,
	    &last, &text, &len), 0);
	ck_assert_int_eq(code, 250);
	ck_assert(!last);
}
END_TEST

START_TEST(test_reply_bare_code_is_a_final_line)
{
	const char	*text;
	size_t		 len;
	int		 code;
	bool		 last;

	ck_assert_int_eq(deliver_parse_reply("250\r\n", 5, &code, &last,
	    &text, &len), 0);
	ck_assert_int_eq(code, 250);
	ck_assert(last);
	ck_assert_int_eq(len, 0);
}
END_TEST

START_TEST(test_reply_garbage_is_not_a_reply)
{
	static const char *const bad[] = {
		"", "25", "abc def", "250x", "2a0 x", "650 x", "050 x"
	};
	const char	*text;
	size_t		 len;
	int		 code;
	bool		 last;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_int_eq(deliver_parse_reply(bad[i], strlen(bad[i]),
		    &code, &last, &text, &len), -1);
}
END_TEST

/* the dialogue */

START_TEST(test_kth_rcpt_reply_goes_to_kth_recipient)
{
	session_to_data();
	ck_assert_int_eq(rcpts[0].code, 250);
	ck_assert_int_eq(rcpts[1].code, 550);
	ck_assert_str_eq(rcpts[1].reply, "550 5.1.1 <b@x>: user unknown");
	ck_assert_int_eq(rcpts[2].code, 250);
}
END_TEST

START_TEST(test_rcpt_map_skips_recipients_not_sent)
{
	static const size_t	map[] = { 0, 2 };

	deliver_dialogue_begin(&dlg, &msg, map, 2, &att);
	out("MAIL FROM:<s@x>\r\n");
	in("250 ok\r\n");
	out("RCPT TO:<a@x>\r\n");
	in("250 ok a\r\n");
	out("RCPT TO:<c@x>\r\n");
	in("450 busy c\r\n");
	ck_assert_int_eq(rcpts[0].code, 250);
	ck_assert_int_eq(rcpts[1].code, 0);
	ck_assert_int_eq(rcpts[2].code, 450);
}
END_TEST

START_TEST(test_multiline_reply_keeps_first_line_and_final_code)
{
	out("MAIL FROM:<s@x>\r\n");
	in("250 ok\r\n");
	out("RCPT TO:<a@x>\r\n");
	in("551-5.1.6 moved to\r\n");
	in("551-5.1.6 another place\r\n");
	ck_assert_int_eq(rcpts[0].code, 0);
	in("551 5.1.6 see https://example.org\r\n");
	ck_assert_int_eq(rcpts[0].code, 551);
	ck_assert_str_eq(rcpts[0].reply, "551 5.1.6 moved to");
}
END_TEST

START_TEST(test_reply_lines_in_one_chunk_are_split)
{
	out("EHLO me\r\n");
	in("250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n");
	ck_assert_int_eq(att.conn.code, 250);
	ck_assert_str_eq(att.conn.text, "250 mx");
}
END_TEST

START_TEST(test_reply_text_loses_control_characters)
{
	out("MAIL FROM:<s@x>\r\n");
	in("451 a\033[31mb\tc\x7f" "d\r\n");
	ck_assert_str_eq(att.mail.text, "451 a[31mb cd");
}
END_TEST

START_TEST(test_reply_text_is_bounded)
{
	char	line[2000];

	memset(line, 'x', sizeof(line));
	memcpy(line, "550 ", 4);
	memcpy(line + sizeof(line) - 3, "\r\n", 3);
	out("MAIL FROM:<s@x>\r\n");
	in(line);
	ck_assert_int_eq(att.mail.code, 550);
	ck_assert_uint_eq(strlen(att.mail.text), DELIVERY_REPLY_MAX - 1);
}
END_TEST

START_TEST(test_stages_follow_the_commands)
{
	ck_assert_int_eq(att.stage, DELIVER_STAGE_CONNECT);
	session_to_data();
	ck_assert_int_eq(att.stage, DELIVER_STAGE_BODY);
	ck_assert_int_eq(att.data.code, 354);
	in("250 2.0.0 queued as X\r\n");
	ck_assert_int_eq(att.stage, DELIVER_STAGE_DONE);
	ck_assert_str_eq(att.final.text, "250 2.0.0 queued as X");
}
END_TEST

START_TEST(test_quit_reply_is_ignored)
{
	session_to_data();
	in("250 queued\r\n");
	out("QUIT\r\n");
	in("221 bye\r\n");
	ck_assert_int_eq(att.final.code, 250);
	ck_assert_int_eq(att.conn.code, 250);
}
END_TEST

START_TEST(test_235_to_auth_logs_the_connection_in)
{
	in("220 mx\r\n");
	out("EHLO me\r\n");
	in("250 AUTH PLAIN\r\n");
	out("AUTH PLAIN AGEAYg==\r\n");
	ck_assert(!dlg.authenticated);
	in("235 2.7.0 ok\r\n");
	ck_assert(dlg.authenticated);
	ck_assert(att.auth_sent);
}
END_TEST

START_TEST(test_235_outside_auth_does_not_log_in)
{
	in("235 welcome\r\n");
	out("EHLO me\r\n");
	in("235 hello\r\n");
	ck_assert(!dlg.authenticated);
}
END_TEST

START_TEST(test_failed_auth_leaves_connection_logged_out)
{
	in("220 mx\r\n");
	out("EHLO me\r\n");
	in("250 AUTH PLAIN\r\n");
	out("AUTH PLAIN AGEAYg==\r\n");
	in("535 5.7.8 bad credentials\r\n");
	ck_assert(!dlg.authenticated);
	ck_assert_int_eq(att.conn.code, 535);
}
END_TEST

START_TEST(test_login_after_starttls_counts)
{
	in("220 mx\r\n");
	out("EHLO me\r\n");
	in("250 STARTTLS\r\n");
	out("STARTTLS\r\n");
	in("220 go ahead\r\n");
	out("EHLO me\r\n");
	in("250 AUTH LOGIN\r\n");
	out("AUTH LOGIN dXNlcg==\r\n");
	in("334 UGFzc3dvcmQ6\r\n");
	out("c2VjcmV0\r\n");
	in("235 ok\r\n");
	ck_assert(dlg.authenticated);
}
END_TEST

START_TEST(test_new_greeting_logs_the_connection_out)
{
	dlg.authenticated = true;
	in("220 mx ESMTP\r\n");
	ck_assert(!dlg.authenticated);
}
END_TEST

START_TEST(test_ehlo_logs_the_connection_out)
{
	dlg.authenticated = true;
	out("EHLO me\r\n");
	ck_assert(!dlg.authenticated);
}
END_TEST

START_TEST(test_ehlo_reply_tells_pipelining_and_size)
{
	in("220 mx ESMTP\r\n");
	out("EHLO me\r\n");
	in("250-mx.example.org\r\n");
	in("250-pipelining\r\n");
	in("250-SIZE 10240000\r\n");
	in("250 8BITMIME\r\n");
	ck_assert(dlg.pipelining);
	ck_assert(dlg.size);
}
END_TEST

START_TEST(test_extensions_are_read_from_the_ehlo_reply_only)
{
	in("220 PIPELINING ESMTP\r\n");
	out("EHLO me\r\n");
	in("250-mx\r\n");
	in("250 SIZES\r\n");
	out("NOOP\r\n");
	in("250 PIPELINING\r\n");
	ck_assert(!dlg.pipelining);
	ck_assert(!dlg.size);
}
END_TEST

START_TEST(test_ehlo_after_starttls_forgets_the_extensions)
{
	in("220 mx ESMTP\r\n");
	out("EHLO me\r\n");
	in("250-mx\r\n");
	in("250-PIPELINING\r\n");
	in("250 STARTTLS\r\n");
	out("STARTTLS\r\n");
	in("220 go ahead\r\n");
	out("EHLO me\r\n");
	ck_assert(!dlg.pipelining);
	in("250-mx\r\n");
	in("250 SIZE\r\n");
	ck_assert(!dlg.pipelining);
	ck_assert(dlg.size);
}
END_TEST

START_TEST(test_new_greeting_forgets_the_extensions)
{
	dlg.pipelining = dlg.size = true;
	in("220 mx ESMTP\r\n");
	ck_assert(!dlg.pipelining);
	ck_assert(!dlg.size);
}
END_TEST

START_TEST(test_reused_connection_stays_logged_in)
{
	dlg.authenticated = true;
	deliver_dialogue_begin(&dlg, &msg, NULL, 0, &att);
	out("MAIL FROM:<s@x>\r\n");
	in("250 ok\r\n");
	ck_assert(dlg.authenticated);
}
END_TEST

START_TEST(test_auth_initial_response_is_redacted)
{
	out("AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
	ck_assert_str_eq(shown, "AUTH PLAIN <redacted>");
	ck_assert_ptr_null(strstr(shown, "AHVz"));
}
END_TEST

START_TEST(test_auth_continuation_lines_are_redacted)
{
	out("AUTH LOGIN\r\n");
	ck_assert_str_eq(shown, "AUTH LOGIN");
	in("334 VXNlcm5hbWU6\r\n");
	out("dXNlcg==\r\n");
	ck_assert_str_eq(shown, "<redacted>");
	in("334 UGFzc3dvcmQ6\r\n");
	out("c2VjcmV0\r\n");
	ck_assert_str_eq(shown, "<redacted>");
	in("235 ok\r\n");
	out("MAIL FROM:<s@x>\r\n");
	ck_assert_str_eq(shown, "MAIL FROM:<s@x>");
}
END_TEST

START_TEST(test_commands_are_shown_cleaned)
{
	out("RCPT TO:<a@x>\r\n");
	ck_assert_str_eq(shown, "RCPT TO:<a@x>");
}
END_TEST

/* classification */

START_TEST(test_success_classifies_each_rcpt_by_its_reply)
{
	session_to_data();
	in("250 queued\r\n");
	deliver_classify(&msg, &att);
	ck_assert_int_eq(rcpts[0].status, DELIVERY_DELIVERED);
	ck_assert_int_eq(rcpts[1].status, DELIVERY_PERMFAIL);
	ck_assert_int_eq(rcpts[2].status, DELIVERY_DELIVERED);
	ck_assert_str_eq(rcpts[0].reply, "250 queued");
	ck_assert_int_eq(msg.status, DELIVERY_PERMFAIL);
	ck_assert(!msg.possible_duplicate);
}
END_TEST

START_TEST(test_rcpt_4xx_is_tempfail)
{
	out("MAIL FROM:<s@x>\r\n");
	in("250 ok\r\n");
	out("RCPT TO:<a@x>\r\n");
	in("450 4.2.1 busy\r\n");
	out("RCPT TO:<b@x>\r\n");
	in("250 ok\r\n");
	out("RCPT TO:<c@x>\r\n");
	in("250 ok\r\n");
	out("DATA\r\n");
	in("354 go\r\n");
	in("250 queued\r\n");
	deliver_classify(&msg, &att);
	ck_assert_int_eq(rcpts[0].status, DELIVERY_TEMPFAIL);
	ck_assert_int_eq(msg.status, DELIVERY_TEMPFAIL);
	ck_assert_str_eq(msg.error, "a@x: 450 4.2.1 busy");
}
END_TEST

START_TEST(test_final_4xx_tempfails_only_accepted_rcpts)
{
	session_to_data();
	in("452 4.3.1 insufficient storage\r\n");
	att.rc = CURLE_WEIRD_SERVER_REPLY;
	deliver_classify(&msg, &att);
	ck_assert_int_eq(rcpts[0].status, DELIVERY_TEMPFAIL);
	ck_assert_int_eq(rcpts[0].code, 452);
	ck_assert_int_eq(rcpts[1].status, DELIVERY_PERMFAIL);
	ck_assert_int_eq(rcpts[1].code, 550);
	ck_assert_int_eq(rcpts[2].status, DELIVERY_TEMPFAIL);
	ck_assert(!msg.possible_duplicate);
}
END_TEST

START_TEST(test_final_5xx_permfails_accepted_rcpts)
{
	session_to_data();
	in("552 5.3.4 too big\r\n");
	att.rc = CURLE_WEIRD_SERVER_REPLY;
	deliver_classify(&msg, &att);
	ck_assert_int_eq(rcpts[0].status, DELIVERY_PERMFAIL);
	ck_assert_str_eq(rcpts[0].reply, "552 5.3.4 too big");
	ck_assert_int_eq(msg.status, DELIVERY_PERMFAIL);
}
END_TEST

START_TEST(test_body_sent_without_reply_is_possible_duplicate)
{
	session_to_data();
	att.body_complete = true;
	att.rc = CURLE_OPERATION_TIMEDOUT;
	strcpy(att.reason, "no reply after the message was sent");
	deliver_classify(&msg, &att);
	ck_assert_int_eq(rcpts[0].status, DELIVERY_TEMPFAIL);
	ck_assert_int_eq(rcpts[2].status, DELIVERY_TEMPFAIL);
	ck_assert_int_eq(rcpts[1].status, DELIVERY_PERMFAIL);
	ck_assert_int_eq(msg.status, DELIVERY_TEMPFAIL);
	ck_assert(msg.possible_duplicate);
}
END_TEST

START_TEST(test_body_cut_short_is_not_a_duplicate)
{
	session_to_data();
	att.rc = CURLE_SEND_ERROR;
	deliver_classify(&msg, &att);
	ck_assert_int_eq(rcpts[0].status, DELIVERY_TEMPFAIL);
	ck_assert(!msg.possible_duplicate);
}
END_TEST

START_TEST(test_data_5xx_permfails_accepted_rcpts)
{
	out("MAIL FROM:<s@x>\r\n");
	in("250 ok\r\n");
	out("RCPT TO:<a@x>\r\n");
	in("250 ok\r\n");
	out("RCPT TO:<b@x>\r\n");
	in("450 busy\r\n");
	out("DATA\r\n");
	in("554 5.7.1 no thanks\r\n");
	att.rc = CURLE_SEND_ERROR;
	msg.nrcpts = 2;
	deliver_classify(&msg, &att);
	ck_assert_int_eq(rcpts[0].status, DELIVERY_PERMFAIL);
	ck_assert_int_eq(rcpts[0].code, 554);
	ck_assert_int_eq(rcpts[1].status, DELIVERY_TEMPFAIL);
}
END_TEST

START_TEST(test_mail_5xx_permfails_every_rcpt)
{
	out("MAIL FROM:<s@x>\r\n");
	in("553 5.1.8 bad sender\r\n");
	att.rc = CURLE_SEND_ERROR;
	deliver_classify(&msg, &att);
	for (size_t i = 0; i < msg.nrcpts; i++) {
		ck_assert_int_eq(rcpts[i].status, DELIVERY_PERMFAIL);
		ck_assert_str_eq(rcpts[i].reply, "553 5.1.8 bad sender");
	}
	ck_assert_str_eq(msg.error, "553 5.1.8 bad sender");
}
END_TEST

START_TEST(test_mail_4xx_tempfails_every_rcpt)
{
	out("MAIL FROM:<s@x>\r\n");
	in("451 4.3.0 try later\r\n");
	att.rc = CURLE_SEND_ERROR;
	deliver_classify(&msg, &att);
	ck_assert_int_eq(rcpts[0].status, DELIVERY_TEMPFAIL);
	ck_assert_int_eq(msg.status, DELIVERY_TEMPFAIL);
}
END_TEST

START_TEST(test_connect_failure_tempfails_with_reason)
{
	att.rc = CURLE_COULDNT_CONNECT;
	strcpy(att.reason, "Failed to connect");
	deliver_classify(&msg, &att);
	for (size_t i = 0; i < msg.nrcpts; i++) {
		ck_assert_int_eq(rcpts[i].status, DELIVERY_TEMPFAIL);
		ck_assert_int_eq(rcpts[i].code, 0);
	}
	ck_assert_str_eq(msg.error, "Failed to connect");
}
END_TEST

START_TEST(test_auth_535_is_tempfail)
{
	in("220 mx\r\n");
	out("EHLO me\r\n");
	in("250 AUTH PLAIN\r\n");
	out("AUTH PLAIN AGEAYg==\r\n");
	in("535 5.7.8 bad credentials\r\n");
	att.rc = CURLE_LOGIN_DENIED;
	strcpy(att.reason, "authentication failed: 535 5.7.8 bad credentials");
	deliver_classify(&msg, &att);
	ck_assert_int_eq(rcpts[0].status, DELIVERY_TEMPFAIL);
	ck_assert_int_eq(msg.status, DELIVERY_TEMPFAIL);
}
END_TEST

START_TEST(test_missing_login_tempfails_accepted_rcpts)
{
	session_to_data();
	att.rc = CURLE_ABORTED_BY_CALLBACK;
	att.not_authenticated = true;
	strcpy(att.reason, "not authenticated upstream");
	deliver_classify(&msg, &att);
	for (size_t i = 0; i < msg.nrcpts; i++)
		ck_assert_int_eq(rcpts[i].status, DELIVERY_TEMPFAIL);
	ck_assert_str_eq(msg.error, "not authenticated upstream");
	ck_assert(!msg.possible_duplicate);
}
END_TEST

START_TEST(test_rcpts_never_sent_are_tempfail)
{
	out("MAIL FROM:<s@x>\r\n");
	in("250 ok\r\n");
	out("RCPT TO:<a@x>\r\n");
	in("421 4.4.2 closing\r\n");
	att.rc = CURLE_SEND_ERROR;
	strcpy(att.reason, "connection reset");
	deliver_classify(&msg, &att);
	ck_assert_int_eq(rcpts[0].status, DELIVERY_TEMPFAIL);
	ck_assert_int_eq(rcpts[1].status, DELIVERY_TEMPFAIL);
	ck_assert_str_eq(rcpts[1].reply, "connection reset");
	ck_assert_str_eq(msg.error, "421 4.4.2 closing");
}
END_TEST

START_TEST(test_classify_keeps_outcomes_already_given)
{
	rcpts[1].status = DELIVERY_PERMFAIL;
	strcpy(rcpts[1].reply, "invalid recipient address");
	session_to_data();
	in("250 queued\r\n");
	deliver_classify(&msg, &att);
	ck_assert_int_eq(rcpts[1].status, DELIVERY_PERMFAIL);
}
END_TEST

START_TEST(test_all_delivered_is_delivered)
{
	msg.nrcpts = 1;
	out("MAIL FROM:<s@x>\r\n");
	in("250 ok\r\n");
	out("RCPT TO:<a@x>\r\n");
	in("250 ok\r\n");
	out("DATA\r\n");
	in("354 go\r\n");
	in("250 2.0.0 queued as ABC\r\n");
	deliver_classify(&msg, &att);
	ck_assert_int_eq(msg.status, DELIVERY_DELIVERED);
	ck_assert_str_eq(msg.error, "250 2.0.0 queued as ABC");
}
END_TEST

START_TEST(test_no_recipients_is_permfail)
{
	msg.nrcpts = 0;
	deliver_classify(&msg, &att);
	ck_assert_int_eq(msg.status, DELIVERY_PERMFAIL);
}
END_TEST

/* the body */

START_TEST(test_source_sends_prefix_then_file_from_offset)
{
	struct deliver_source	src;
	char			buf[256];
	ssize_t			n, total = 0;
	int			fd;

	fd = file_with("ENVELOPE\r\nSubject: s\r\n\r\nbody\r\n");
	msg.prefix = "From: p\r\n";
	msg.prefix_len = 9;
	msg.fd = fd;
	msg.offset = 10;
	msg.length = 20;
	deliver_source_init(&src, &msg);
	while ((n = deliver_source_read(&src, buf + total,
	    sizeof(buf) - (size_t)total)) > 0)
		total += n;
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(total, 29);
	ck_assert(memcmp(buf,
	    "From: p\r\nSubject: s\r\n\r\nbody\r\n", 29) == 0);
	ck_assert(deliver_source_done(&src));
	close(fd);
}
END_TEST

START_TEST(test_source_fills_small_buffers_in_order)
{
	struct deliver_source	src;
	char			got[64], buf[4];
	size_t			total = 0;
	ssize_t			n;
	int			fd = file_with("xxABCDEFGyy");

	msg.prefix = "123456";
	msg.prefix_len = 6;
	msg.fd = fd;
	msg.offset = 2;
	msg.length = 7;
	deliver_source_init(&src, &msg);
	while ((n = deliver_source_read(&src, buf, sizeof(buf))) > 0) {
		ck_assert_int_le(n, (ssize_t)sizeof(buf));
		memcpy(got + total, buf, (size_t)n);
		total += (size_t)n;
	}
	ck_assert_uint_eq(total, 13);
	ck_assert(memcmp(got, "123456ABCDEFG", 13) == 0);
	close(fd);
}
END_TEST

START_TEST(test_source_without_prefix_sends_the_file)
{
	struct deliver_source	src;
	char			buf[16];
	int			fd = file_with("hello\r\n");

	msg.fd = fd;
	msg.length = 7;
	deliver_source_init(&src, &msg);
	ck_assert_int_eq(deliver_source_read(&src, buf, sizeof(buf)), 7);
	ck_assert(memcmp(buf, "hello\r\n", 7) == 0);
	ck_assert(deliver_source_done(&src));
	ck_assert_int_eq(deliver_source_read(&src, buf, sizeof(buf)), 0);
	close(fd);
}
END_TEST

START_TEST(test_source_short_file_is_an_error)
{
	struct deliver_source	src;
	char			buf[64];
	int			fd = file_with("short");

	msg.fd = fd;
	msg.length = 50;
	deliver_source_init(&src, &msg);
	ck_assert_int_eq(deliver_source_read(&src, buf, sizeof(buf)), 5);
	ck_assert(!deliver_source_done(&src));
	errno = 0;
	ck_assert_int_eq(deliver_source_read(&src, buf, sizeof(buf)), -1);
	ck_assert_int_eq(errno, ENODATA);
	close(fd);
}
END_TEST

START_TEST(test_source_unreadable_file_is_an_error)
{
	struct deliver_source	src;
	char			buf[64];

	msg.fd = -1;
	msg.length = 10;
	deliver_source_init(&src, &msg);
	ck_assert_int_eq(deliver_source_read(&src, buf, sizeof(buf)), -1);
	ck_assert_int_eq(errno, EBADF);
}
END_TEST

/* deliver_suite - every test above */
static Suite *
deliver_suite(void)
{
	Suite	*s = suite_create("deliver");
	TCase	*reply = tcase_create("reply");
	TCase	*dialogue = tcase_create("dialogue");
	TCase	*classify = tcase_create("classify");
	TCase	*source = tcase_create("source");

	tcase_add_test(reply, test_reply_final_line_has_space_after_code);
	tcase_add_test(reply, test_reply_dash_marks_a_continuation_line);
	tcase_add_test(reply, test_reply_bare_code_is_a_final_line);
	tcase_add_test(reply, test_reply_garbage_is_not_a_reply);

	tcase_add_checked_fixture(dialogue, setup, NULL);
	tcase_add_test(dialogue, test_kth_rcpt_reply_goes_to_kth_recipient);
	tcase_add_test(dialogue, test_rcpt_map_skips_recipients_not_sent);
	tcase_add_test(dialogue,
	    test_multiline_reply_keeps_first_line_and_final_code);
	tcase_add_test(dialogue, test_reply_lines_in_one_chunk_are_split);
	tcase_add_test(dialogue, test_reply_text_loses_control_characters);
	tcase_add_test(dialogue, test_reply_text_is_bounded);
	tcase_add_test(dialogue, test_stages_follow_the_commands);
	tcase_add_test(dialogue, test_quit_reply_is_ignored);
	tcase_add_test(dialogue, test_235_to_auth_logs_the_connection_in);
	tcase_add_test(dialogue, test_235_outside_auth_does_not_log_in);
	tcase_add_test(dialogue, test_failed_auth_leaves_connection_logged_out);
	tcase_add_test(dialogue, test_login_after_starttls_counts);
	tcase_add_test(dialogue, test_new_greeting_logs_the_connection_out);
	tcase_add_test(dialogue, test_ehlo_logs_the_connection_out);
	tcase_add_test(dialogue, test_ehlo_reply_tells_pipelining_and_size);
	tcase_add_test(dialogue,
	    test_extensions_are_read_from_the_ehlo_reply_only);
	tcase_add_test(dialogue, test_ehlo_after_starttls_forgets_the_extensions);
	tcase_add_test(dialogue, test_new_greeting_forgets_the_extensions);
	tcase_add_test(dialogue, test_reused_connection_stays_logged_in);
	tcase_add_test(dialogue, test_auth_initial_response_is_redacted);
	tcase_add_test(dialogue, test_auth_continuation_lines_are_redacted);
	tcase_add_test(dialogue, test_commands_are_shown_cleaned);

	tcase_add_checked_fixture(classify, setup, NULL);
	tcase_add_test(classify,
	    test_success_classifies_each_rcpt_by_its_reply);
	tcase_add_test(classify, test_rcpt_4xx_is_tempfail);
	tcase_add_test(classify, test_final_4xx_tempfails_only_accepted_rcpts);
	tcase_add_test(classify, test_final_5xx_permfails_accepted_rcpts);
	tcase_add_test(classify,
	    test_body_sent_without_reply_is_possible_duplicate);
	tcase_add_test(classify, test_body_cut_short_is_not_a_duplicate);
	tcase_add_test(classify, test_data_5xx_permfails_accepted_rcpts);
	tcase_add_test(classify, test_mail_5xx_permfails_every_rcpt);
	tcase_add_test(classify, test_mail_4xx_tempfails_every_rcpt);
	tcase_add_test(classify, test_connect_failure_tempfails_with_reason);
	tcase_add_test(classify, test_auth_535_is_tempfail);
	tcase_add_test(classify, test_missing_login_tempfails_accepted_rcpts);
	tcase_add_test(classify, test_rcpts_never_sent_are_tempfail);
	tcase_add_test(classify, test_classify_keeps_outcomes_already_given);
	tcase_add_test(classify, test_all_delivered_is_delivered);
	tcase_add_test(classify, test_no_recipients_is_permfail);

	tcase_add_checked_fixture(source, setup, NULL);
	tcase_add_test(source, test_source_sends_prefix_then_file_from_offset);
	tcase_add_test(source, test_source_fills_small_buffers_in_order);
	tcase_add_test(source, test_source_without_prefix_sends_the_file);
	tcase_add_test(source, test_source_short_file_is_an_error);
	tcase_add_test(source, test_source_unreadable_file_is_an_error);

	suite_add_tcase(s, reply);
	suite_add_tcase(s, dialogue);
	suite_add_tcase(s, classify);
	suite_add_tcase(s, source);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(deliver_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
