/*
 * test_mailtx - the mail transaction of relay/mailtx.c against a scripted
 * server: what goes out in which write (pipelined or one command at a
 * time), when it stops, the reset after a refusal, dot-stuffing, and what
 * a broken connection or an unreadable message leaves.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailtx.h"

#define WRITES_MAX	16
#define TEXT_MAX	(256 * 1024)

/* The scripted server and what the transaction did. */
static struct {
	const char	*replies;	/* everything the server will say */
	size_t		 replies_pos;
	size_t		 read_chunk;	/* bytes per read, 0: all there is */
	int		 read_errno;	/* at the end of replies: 0 is EOF */

	const char	*body;		/* the message */
	size_t		 body_pos;
	size_t		 body_chunk;	/* bytes per call, 0: all */
	bool		 body_fails;

	int		 writes_ok;	/* writes before one fails, -1: all */
	char		*wire;		/* every byte written */
	size_t		 wire_len;
	size_t		 write_end[WRITES_MAX];	/* where each write ended */
	size_t		 nwrites;

	char		*dialogue;	/* "> cmd" and "< reply" lines */
	size_t		 dialogue_len;
} fake;

static const char *const two_rcpts[] = { "a@x", "b@x" };
static struct mailtx	 tx;
static struct mailtx_io	 io;

static void	setup(void);
static void	teardown(void);
static void	append(char *, size_t *, const char *, size_t);
static int	fake_write(void *, const char *, size_t);
static ssize_t	fake_read(void *, char *, size_t);
static ssize_t	fake_body(void *, char *, size_t);
static void	fake_sent(void *, const char *, size_t);
static void	fake_got(void *, const char *, size_t);
static char	*write_text(size_t);
static void	ck_write(size_t, const char *);
static void	one_recipient_accepted(void);
static Suite	*mailtx_suite(void);

/* setup - a message from s@x to a@x and b@x; a server that says nothing */
static void
setup(void)
{
	memset(&fake, 0, sizeof(fake));
	fake.writes_ok = -1;
	fake.body = "Subject: t\r\n\r\nhello\r\n";
	fake.wire = calloc(1, TEXT_MAX);
	fake.dialogue = calloc(1, TEXT_MAX);
	memset(&tx, 0, sizeof(tx));
	tx.from = "s@x";
	tx.rcpts = two_rcpts;
	tx.nrcpts = 2;
	tx.size = -1;
	io.arg = &fake;
	io.write = fake_write;
	io.read = fake_read;
	io.body = fake_body;
	io.sent = fake_sent;
	io.got = fake_got;
}

/* teardown - free the records */
static void
teardown(void)
{
	free(fake.wire);
	free(fake.dialogue);
}

/* append - bytes to a record */
static void
append(char *buf, size_t *len, const char *data, size_t n)
{
	ck_assert_uint_lt(*len + n, TEXT_MAX);
	memcpy(buf + *len, data, n);
	*len += n;
	buf[*len] = '\0';
}

static int
fake_write(void *arg, const char *buf, size_t len)
{
	(void)arg;
	if (fake.writes_ok == 0) {
		errno = EPIPE;
		return -1;
	}
	if (fake.writes_ok > 0)
		fake.writes_ok--;
	append(fake.wire, &fake.wire_len, buf, len);
	ck_assert_uint_lt(fake.nwrites, WRITES_MAX);
	fake.write_end[fake.nwrites++] = fake.wire_len;
	return 0;
}

static ssize_t
fake_read(void *arg, char *buf, size_t size)
{
	size_t	left = strlen(fake.replies) - fake.replies_pos;

	(void)arg;
	if (left == 0) {
		errno = fake.read_errno;
		return fake.read_errno == 0 ? 0 : -1;
	}
	if (fake.read_chunk > 0 && left > fake.read_chunk)
		left = fake.read_chunk;
	if (left > size)
		left = size;
	memcpy(buf, fake.replies + fake.replies_pos, left);
	fake.replies_pos += left;
	return (ssize_t)left;
}

static ssize_t
fake_body(void *arg, char *buf, size_t size)
{
	size_t	left = strlen(fake.body) - fake.body_pos;

	(void)arg;
	if (fake.body_fails && fake.body_pos > 0) {
		errno = ENODATA;
		return -1;
	}
	if (fake.body_chunk > 0 && left > fake.body_chunk)
		left = fake.body_chunk;
	if (left > size)
		left = size;
	memcpy(buf, fake.body + fake.body_pos, left);
	fake.body_pos += left;
	return (ssize_t)left;
}

static void
fake_sent(void *arg, const char *line, size_t len)
{
	(void)arg;
	append(fake.dialogue, &fake.dialogue_len, "> ", 2);
	append(fake.dialogue, &fake.dialogue_len, line, len);
}

static void
fake_got(void *arg, const char *line, size_t len)
{
	(void)arg;
	append(fake.dialogue, &fake.dialogue_len, "< ", 2);
	append(fake.dialogue, &fake.dialogue_len, line, len);
}

/* write_text - the bytes of the k-th write, as a new string */
static char *
write_text(size_t k)
{
	size_t	from = k == 0 ? 0 : fake.write_end[k - 1];
	size_t	len = fake.write_end[k] - from;
	char	*s = malloc(len + 1);

	memcpy(s, fake.wire + from, len);
	s[len] = '\0';
	return s;
}

/* ck_write - the k-th write was exactly this */
static void
ck_write(size_t k, const char *want)
{
	char	*got;

	ck_assert_uint_gt(fake.nwrites, k);
	got = write_text(k);
	ck_assert_str_eq(got, want);
	free(got);
}

/* one_recipient_accepted - a@x only, and a server that takes the message */
static void
one_recipient_accepted(void)
{
	tx.nrcpts = 1;
	fake.replies = "250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n";
}

START_TEST(test_pipelined_envelope_is_one_write_and_body_another)
{
	tx.pipelining = true;
	fake.replies = "250 ok\r\n250 ok a\r\n250 ok b\r\n354 go\r\n"
	    "250 queued\r\n";
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_DONE);
	ck_assert_uint_eq(fake.nwrites, 2);
	ck_write(0, "MAIL FROM:<s@x>\r\nRCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\n"
	    "DATA\r\n");
	ck_write(1, "Subject: t\r\n\r\nhello\r\n.\r\n");
	ck_assert(tx.clean);
	ck_assert(tx.body_complete);
}
END_TEST

START_TEST(test_pipelined_dialogue_is_reported_command_by_reply)
{
	tx.pipelining = true;
	fake.replies = "250 ok\r\n250 ok a\r\n550-no\r\n550 such user\r\n"
	    "354 go\r\n250 queued\r\n";
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_DONE);
	ck_assert_str_eq(fake.dialogue,
	    "> MAIL FROM:<s@x>\r\n< 250 ok\r\n"
	    "> RCPT TO:<a@x>\r\n< 250 ok a\r\n"
	    "> RCPT TO:<b@x>\r\n< 550-no\r\n< 550 such user\r\n"
	    "> DATA\r\n< 354 go\r\n< 250 queued\r\n");
}
END_TEST

START_TEST(test_without_pipelining_each_command_waits_for_its_reply)
{
	fake.replies = "250 ok\r\n250 ok a\r\n250 ok b\r\n354 go\r\n"
	    "250 queued\r\n";
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_DONE);
	ck_assert_uint_eq(fake.nwrites, 5);
	ck_write(0, "MAIL FROM:<s@x>\r\n");
	ck_write(1, "RCPT TO:<a@x>\r\n");
	ck_write(2, "RCPT TO:<b@x>\r\n");
	ck_write(3, "DATA\r\n");
	ck_write(4, "Subject: t\r\n\r\nhello\r\n.\r\n");
}
END_TEST

START_TEST(test_size_and_null_sender)
{
	tx.from = "";
	tx.size = 12345;
	one_recipient_accepted();
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_DONE);
	ck_write(0, "MAIL FROM:<> SIZE=12345\r\n");
}
END_TEST

START_TEST(test_replies_arriving_byte_by_byte)
{
	tx.pipelining = true;
	fake.read_chunk = 1;
	fake.replies = "250-a\r\n250 ok\r\n250 ok a\r\n250 ok b\r\n354 go\r\n"
	    "250 queued\r\n";
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_DONE);
	ck_assert(tx.clean);
}
END_TEST

START_TEST(test_lines_starting_with_a_dot_are_stuffed)
{
	one_recipient_accepted();
	fake.body = ".\r\n..two\r\nmid.dle\r\n.end";
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_DONE);
	ck_write(3, "..\r\n...two\r\nmid.dle\r\n..end\r\n.\r\n");
}
END_TEST

START_TEST(test_stuffing_holds_across_chunks)
{
	one_recipient_accepted();
	fake.body = "a\r\n.b\r\n.\r\n";
	fake.body_chunk = 1;
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_DONE);
	ck_write(3, "a\r\n..b\r\n..\r\n.\r\n");
}
END_TEST

START_TEST(test_empty_message_is_just_the_end)
{
	one_recipient_accepted();
	fake.body = "";
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_DONE);
	ck_write(3, ".\r\n");
}
END_TEST

START_TEST(test_long_message_goes_out_whole_in_chunks)
{
	static char	 big[3 * MAILTX_BODY_CHUNK + 10];
	char		*want;

	for (size_t i = 0; i + 1 < sizeof(big); i++)
		big[i] = i % 80 == 78 ? '\r' : i % 80 == 79 ? '\n' : '.';
	big[sizeof(big) - 1] = '\0';
	one_recipient_accepted();
	fake.body = big;
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_DONE);
	ck_assert_uint_gt(fake.nwrites, 5);
	/* every line starts with a dot: each gets one more */
	want = malloc(2 * sizeof(big));
	size_t	n = 0;
	bool	start = true;
	for (size_t i = 0; big[i] != '\0'; i++) {
		if (start && big[i] == '.')
			want[n++] = '.';
		want[n++] = big[i];
		start = big[i] == '\n';
	}
	memcpy(want + n, start ? ".\r\n" : "\r\n.\r\n", start ? 4 : 6);
	/* no ck_assert_str_eq: its message would be too long for check */
	ck_assert_uint_eq(strlen(fake.wire + fake.write_end[2]), strlen(want));
	ck_assert(strcmp(fake.wire + fake.write_end[2], want) == 0);
	free(want);
}
END_TEST

START_TEST(test_mail_refused_stops_at_once_without_pipelining)
{
	fake.replies = "451 4.3.0 try later\r\n";
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_REFUSED);
	ck_assert_uint_eq(fake.nwrites, 1);
	ck_assert(tx.clean);
}
END_TEST

START_TEST(test_mail_refused_when_pipelined_is_followed_by_rset)
{
	tx.pipelining = true;
	fake.replies = "550 5.7.1 no\r\n503 5.5.1 sender first\r\n"
	    "503 5.5.1 sender first\r\n503 5.5.1 no recipients\r\n"
	    "250 2.0.0 reset\r\n";
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_REFUSED);
	ck_assert_uint_eq(fake.nwrites, 2);
	ck_write(1, "RSET\r\n");
	ck_assert(tx.clean);
	ck_assert(!tx.body_complete);
}
END_TEST

START_TEST(test_no_recipient_accepted_sends_no_data)
{
	fake.replies = "250 ok\r\n550 no a\r\n550 no b\r\n250 reset\r\n";
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_REFUSED);
	ck_assert_uint_eq(fake.nwrites, 4);
	ck_write(3, "RSET\r\n");
	ck_assert(strstr(fake.wire, "DATA") == NULL);
	ck_assert(tx.clean);
}
END_TEST

START_TEST(test_pipelined_data_taken_without_recipients_ends_empty)
{
	/* a server that answers 354 although it refused everyone */
	tx.pipelining = true;
	fake.replies = "250 ok\r\n550 no a\r\n550 no b\r\n354 go\r\n"
	    "554 no valid recipients\r\n250 reset\r\n";
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_REFUSED);
	ck_assert_uint_eq(fake.nwrites, 3);
	ck_write(1, ".\r\n");
	ck_write(2, "RSET\r\n");
	ck_assert(strstr(fake.wire, "hello") == NULL);
	ck_assert(!tx.body_complete);
}
END_TEST

START_TEST(test_data_refused_resets)
{
	fake.replies = "250 ok\r\n250 ok\r\n250 ok\r\n554 5.3.0 no\r\n"
	    "250 reset\r\n";
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_REFUSED);
	ck_write(4, "RSET\r\n");
	ck_assert(tx.clean);
}
END_TEST

START_TEST(test_failed_reset_leaves_the_session_unusable)
{
	fake.replies = "250 ok\r\n250 ok\r\n250 ok\r\n554 no\r\n";
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_REFUSED);
	ck_assert(!tx.clean);
}
END_TEST

START_TEST(test_closed_connection_reports_what_went_unanswered)
{
	tx.pipelining = true;
	fake.replies = "250 ok\r\n";
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_IO);
	ck_assert_int_eq(tx.err, 0);
	ck_assert(!tx.clean);
	ck_assert_str_eq(fake.dialogue,
	    "> MAIL FROM:<s@x>\r\n< 250 ok\r\n"
	    "> RCPT TO:<a@x>\r\n> RCPT TO:<b@x>\r\n> DATA\r\n");
}
END_TEST

START_TEST(test_read_timeout_is_an_io_failure)
{
	fake.replies = "250 ok\r\n";
	fake.read_errno = ETIMEDOUT;
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_IO);
	ck_assert_int_eq(tx.err, ETIMEDOUT);
	/* without pipelining only what was written is reported */
	ck_assert_str_eq(fake.dialogue,
	    "> MAIL FROM:<s@x>\r\n< 250 ok\r\n> RCPT TO:<a@x>\r\n");
}
END_TEST

START_TEST(test_failed_write_is_an_io_failure)
{
	fake.writes_ok = 1;
	fake.replies = "250 ok\r\n";
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_IO);
	ck_assert_int_eq(tx.err, EPIPE);
}
END_TEST

START_TEST(test_garbage_reply_is_a_protocol_error)
{
	fake.replies = "hello there\r\n";
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_IO);
	ck_assert_int_eq(tx.err, EPROTO);
}
END_TEST

START_TEST(test_long_reply_line_is_cut_not_misread)
{
	static char	replies[3 * MAILTX_LINE_MAX];
	size_t		n;

	n = (size_t)snprintf(replies, sizeof(replies), "250-");
	memset(replies + n, 'x', 2 * MAILTX_LINE_MAX);
	n += 2 * MAILTX_LINE_MAX;
	snprintf(replies + n, sizeof(replies) - n,
	    "\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n");
	tx.nrcpts = 1;
	fake.replies = replies;
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_DONE);
}
END_TEST

START_TEST(test_unreadable_message_never_gets_its_end)
{
	tx.nrcpts = 1;
	fake.body_chunk = 4;
	fake.body_fails = true;
	fake.replies = "250 ok\r\n250 ok\r\n354 go\r\n";
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_BODY);
	ck_assert_int_eq(tx.err, ENODATA);
	ck_assert(!tx.clean);
	ck_assert(!tx.body_complete);
	ck_assert(strstr(fake.wire, "\r\n.\r\n") == NULL);
}
END_TEST

START_TEST(test_no_final_reply_after_the_whole_message)
{
	tx.nrcpts = 1;
	fake.replies = "250 ok\r\n250 ok\r\n354 go\r\n";
	fake.read_errno = ETIMEDOUT;
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_IO);
	ck_assert(tx.body_complete);
	ck_assert(!tx.clean);
}
END_TEST

START_TEST(test_refused_message_is_done_and_clean)
{
	tx.nrcpts = 1;
	fake.replies = "250 ok\r\n250 ok\r\n354 go\r\n552 too big\r\n";
	ck_assert_int_eq(mailtx_run(&tx, &io), MAILTX_DONE);
	ck_assert(tx.clean);
}
END_TEST

START_TEST(test_quit_waits_for_its_reply)
{
	fake.replies = "221 bye\r\n";
	mailtx_quit(&io);
	ck_write(0, "QUIT\r\n");
	ck_assert_str_eq(fake.dialogue, "> QUIT\r\n< 221 bye\r\n");
}
END_TEST

static Suite *
mailtx_suite(void)
{
	Suite	*s = suite_create("mailtx");
	TCase	*order = tcase_create("order");
	TCase	*body = tcase_create("body");
	TCase	*refusal = tcase_create("refusal");
	TCase	*broken = tcase_create("broken");

	tcase_add_checked_fixture(order, setup, teardown);
	tcase_add_test(order,
	    test_pipelined_envelope_is_one_write_and_body_another);
	tcase_add_test(order,
	    test_pipelined_dialogue_is_reported_command_by_reply);
	tcase_add_test(order,
	    test_without_pipelining_each_command_waits_for_its_reply);
	tcase_add_test(order, test_size_and_null_sender);
	tcase_add_test(order, test_replies_arriving_byte_by_byte);
	tcase_add_test(order, test_quit_waits_for_its_reply);

	tcase_add_checked_fixture(body, setup, teardown);
	tcase_add_test(body, test_lines_starting_with_a_dot_are_stuffed);
	tcase_add_test(body, test_stuffing_holds_across_chunks);
	tcase_add_test(body, test_empty_message_is_just_the_end);
	tcase_add_test(body, test_long_message_goes_out_whole_in_chunks);

	tcase_add_checked_fixture(refusal, setup, teardown);
	tcase_add_test(refusal,
	    test_mail_refused_stops_at_once_without_pipelining);
	tcase_add_test(refusal,
	    test_mail_refused_when_pipelined_is_followed_by_rset);
	tcase_add_test(refusal, test_no_recipient_accepted_sends_no_data);
	tcase_add_test(refusal,
	    test_pipelined_data_taken_without_recipients_ends_empty);
	tcase_add_test(refusal, test_data_refused_resets);
	tcase_add_test(refusal, test_failed_reset_leaves_the_session_unusable);
	tcase_add_test(refusal, test_refused_message_is_done_and_clean);

	tcase_add_checked_fixture(broken, setup, teardown);
	tcase_add_test(broken,
	    test_closed_connection_reports_what_went_unanswered);
	tcase_add_test(broken, test_read_timeout_is_an_io_failure);
	tcase_add_test(broken, test_failed_write_is_an_io_failure);
	tcase_add_test(broken, test_garbage_reply_is_a_protocol_error);
	tcase_add_test(broken, test_long_reply_line_is_cut_not_misread);
	tcase_add_test(broken, test_unreadable_message_never_gets_its_end);
	tcase_add_test(broken, test_no_final_reply_after_the_whole_message);

	suite_add_tcase(s, order);
	suite_add_tcase(s, body);
	suite_add_tcase(s, refusal);
	suite_add_tcase(s, broken);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(mailtx_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
