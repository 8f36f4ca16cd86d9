/*
 * test_data - DATA decoding (end marker, dot-unstuffing, line-end
 * normalisation, smuggling sequences) and writing with added headers.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data.h"
#include "netio.h"

/* decode_all - run the decoder over input fed in chunks; returns output */
static char *
decode_all(const char *in, size_t len, size_t chunk, size_t *used, bool *done)
{
	struct data_decoder	 d;
	char			*out = malloc(2 * len + 8), *tmp;
	size_t			 olen = 0, pos = 0;

	data_decoder_init(&d);
	*done = false;
	while (pos < len && !*done) {
		size_t	n = len - pos < chunk ? len - pos : chunk, o;

		tmp = malloc(2 * n + 8);
		pos += data_decode(&d, in + pos, n, tmp, &o, done);
		memcpy(out + olen, tmp, o);
		olen += o;
		free(tmp);
	}
	out[olen] = '\0';
	*used = pos;
	return out;
}

/* check_decode - the same result whatever the chunking */
static void
check_decode(const char *in, const char *want, bool want_done, size_t want_used)
{
	static const size_t	chunks[] = { 1, 2, 3, 7, 4096 };

	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		size_t	 used;
		bool	 done;
		char	*out = decode_all(in, strlen(in), chunks[i], &used, &done);

		ck_assert_str_eq(out, want);
		ck_assert_int_eq(done, want_done);
		if (want_done)
			ck_assert_uint_eq(used, want_used);
		free(out);
	}
}

START_TEST(test_crlf_dot_crlf_ends_data)
{
	check_decode("Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n",
	    "Subject: x\r\n\r\nbody\r\n", true, 23);
}
END_TEST

START_TEST(test_empty_message_ends_at_once)
{
	check_decode(".\r\n", "", true, 3);
}
END_TEST

START_TEST(test_leading_dot_is_unstuffed)
{
	check_decode("..hidden\r\n...two\r\n.\r\n", ".hidden\r\n..two\r\n",
	    true, 21);
}
END_TEST

START_TEST(test_bare_lf_becomes_crlf)
{
	check_decode("a\nb\r\n.\r\n", "a\r\nb\r\n", true, 8);
}
END_TEST

START_TEST(test_bare_cr_becomes_crlf)
{
	check_decode("a\rb\r\n.\r\n", "a\r\nb\r\n", true, 8);
}
END_TEST

START_TEST(test_lf_dot_lf_does_not_end_data)
{
	check_decode("a\n.\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", true, 10);
}
END_TEST

START_TEST(test_lf_dot_crlf_does_not_end_data)
{
	check_decode("a\n.\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", true, 11);
}
END_TEST

START_TEST(test_crlf_dot_lf_does_not_end_data)
{
	check_decode("a\r\n.\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", true, 11);
}
END_TEST

START_TEST(test_cr_dot_cr_does_not_end_data)
{
	check_decode("a\r.\rb\r\n.\r\n", "a\r\n.\r\nb\r\n", true, 10);
}
END_TEST

START_TEST(test_no_end_marker_is_not_done)
{
	check_decode("a\r\nb\r\n", "a\r\nb\r\n", false, 0);
}
END_TEST

START_TEST(test_eight_bit_and_nul_bytes_pass)
{
	struct data_decoder	d;
	const char		in[] = "\xc3\xa4\0x\r\n.\r\n";
	char			out[64];
	size_t			olen;
	bool			done;

	data_decoder_init(&d);
	ck_assert_uint_eq(data_decode(&d, in, sizeof(in) - 1, out, &olen,
	    &done), sizeof(in) - 1);
	ck_assert(done);
	ck_assert_uint_eq(olen, 6);
	ck_assert(memcmp(out, "\xc3\xa4\0x\r\n", 6) == 0);
}
END_TEST

/* receive - run data_receive over a memory peer into a temp file */
static char *
receive(const char *in, long long max, struct data_result *res, size_t *rest)
{
	struct netio_memory	 mem = { .in = in, .inlen = strlen(in), .chunk = 5 };
	struct netio		 io;
	struct data_params	 p = { "X-Envelope-From: <a@b>\r\n",
	    "<id@host>", "Mon, 1 Jan 2024 00:00:00 +0000", max };
	FILE			*fp = tmpfile();
	char			*buf;
	long			 len;

	netio_init_memory(&io, &mem);
	data_receive(&io, fileno(fp), &p, res);
	*rest = netio_pending(&io) + (mem.inlen - mem.inpos);
	fflush(fp);
	len = lseek(fileno(fp), 0, SEEK_END);
	buf = calloc(1, (size_t)len + 1);
	ck_assert_int_eq(pread(fileno(fp), buf, (size_t)len, 0), len);
	fclose(fp);
	free(mem.out);
	return buf;
}

START_TEST(test_missing_date_and_message_id_are_added)
{
	struct data_result	 r;
	size_t			 rest;
	char			*f = receive("Subject: s\r\n\r\nbody\r\n.\r\n", 0,
	    &r, &rest);

	ck_assert_int_eq(r.outcome, DATA_OK);
	ck_assert_str_eq(f, "X-Envelope-From: <a@b>\r\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	    "Message-ID: <id@host>\r\n"
	    "Subject: s\r\n\r\nbody\r\n");
	ck_assert(r.added_date && r.added_message_id);
	free(f);
}
END_TEST

START_TEST(test_present_date_and_message_id_are_kept_untouched)
{
	struct data_result	 r;
	size_t			 rest;
	const char		*msg = "DATE: x\r\nmessage-id: <m@h>\r\n\r\nb\r\n";
	char			*in, *f, *want;

	asprintf(&in, "%s.\r\n", msg);
	asprintf(&want, "X-Envelope-From: <a@b>\r\n%s", msg);
	f = receive(in, 0, &r, &rest);
	ck_assert_str_eq(f, want);
	ck_assert(!r.added_date && !r.added_message_id);
	free(in);
	free(want);
	free(f);
}
END_TEST

START_TEST(test_date_in_body_does_not_count_as_header)
{
	struct data_result	 r;
	size_t			 rest;
	char			*f = receive("Subject: s\r\n\r\nDate: no\r\n.\r\n",
	    0, &r, &rest);

	ck_assert(r.added_date);
	free(f);
}
END_TEST

START_TEST(test_folded_header_lines_stay_in_the_header_block)
{
	struct data_result	 r;
	size_t			 rest;
	char			*f = receive("Subject: a\r\n b\r\nDate: d\r\n\r\nx\r\n.\r\n",
	    0, &r, &rest);

	ck_assert(!r.added_date);
	free(f);
}
END_TEST

START_TEST(test_body_without_header_gets_an_empty_line_after_our_fields)
{
	struct data_result	 r;
	size_t			 rest;
	char			*f = receive("hello printer\r\nSubject: no\r\n.\r\n",
	    0, &r, &rest);

	ck_assert_str_eq(f, "X-Envelope-From: <a@b>\r\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	    "Message-ID: <id@host>\r\n"
	    "\r\nhello printer\r\nSubject: no\r\n");
	free(f);
}
END_TEST

START_TEST(test_body_text_after_fields_is_separated_by_an_empty_line)
{
	struct data_result	 r;
	size_t			 rest;
	char			*f = receive("Date: d\r\nMessage-ID: <m@h>\r\n"
	    "just text\r\n.\r\n", 0, &r, &rest);

	ck_assert_str_eq(f, "X-Envelope-From: <a@b>\r\nDate: d\r\n"
	    "Message-ID: <m@h>\r\n\r\njust text\r\n");
	free(f);
}
END_TEST

START_TEST(test_leading_continuation_cannot_fold_into_our_fields)
{
	struct data_result	 r;
	size_t			 rest;
	char			*f = receive("\tby evil.example\r\nSubject: s\r\n"
	    "\r\nb\r\n.\r\n", 0, &r, &rest);

	ck_assert_ptr_nonnull(strstr(f, "Message-ID: <id@host>\r\n\r\n"
	    "\tby evil.example\r\n"));
	free(f);
}
END_TEST

START_TEST(test_empty_message_gets_only_the_added_fields)
{
	struct data_result	 r;
	size_t			 rest;
	char			*f = receive(".\r\n", 0, &r, &rest);

	ck_assert_int_eq(r.outcome, DATA_OK);
	ck_assert_str_eq(f, "X-Envelope-From: <a@b>\r\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	    "Message-ID: <id@host>\r\n");
	free(f);
}
END_TEST

START_TEST(test_over_size_message_is_refused_and_read_to_its_end)
{
	struct data_result	 r;
	size_t			 rest;
	char			*f = receive("Subject: s\r\n\r\n0123456789\r\n.\r\nQUIT\r\n",
	    10, &r, &rest);

	ck_assert_int_eq(r.outcome, DATA_TOO_BIG);
	ck_assert_uint_eq(rest, 6);	/* "QUIT\r\n" is left for the session */
	free(f);
}
END_TEST

START_TEST(test_lost_connection_is_reported)
{
	struct data_result	 r;
	size_t			 rest;
	char			*f = receive("Subject: s\r\n\r\nbody", 0, &r, &rest);

	ck_assert_int_eq(r.outcome, DATA_NETWORK);
	free(f);
}
END_TEST

START_TEST(test_write_error_is_reported_with_errno)
{
	struct netio_memory	mem = { .in = "a\r\n.\r\n", .inlen = 6 };
	struct netio		io;
	struct data_params	p = { "X\r\n", NULL, NULL, 0 };
	struct data_result	r;

	netio_init_memory(&io, &mem);
	data_receive(&io, -1, &p, &r);
	ck_assert_int_eq(r.outcome, DATA_DISK_ERROR);
	ck_assert_int_ne(r.write_errno, 0);
}
END_TEST

static Suite *
data_suite(void)
{
	Suite	*s = suite_create("data");
	TCase	*tc = tcase_create("decode");

	tcase_add_test(tc, test_crlf_dot_crlf_ends_data);
	tcase_add_test(tc, test_empty_message_ends_at_once);
	tcase_add_test(tc, test_leading_dot_is_unstuffed);
	tcase_add_test(tc, test_bare_lf_becomes_crlf);
	tcase_add_test(tc, test_bare_cr_becomes_crlf);
	tcase_add_test(tc, test_lf_dot_lf_does_not_end_data);
	tcase_add_test(tc, test_lf_dot_crlf_does_not_end_data);
	tcase_add_test(tc, test_crlf_dot_lf_does_not_end_data);
	tcase_add_test(tc, test_cr_dot_cr_does_not_end_data);
	tcase_add_test(tc, test_no_end_marker_is_not_done);
	tcase_add_test(tc, test_eight_bit_and_nul_bytes_pass);
	suite_add_tcase(s, tc);
	tc = tcase_create("write");
	tcase_add_test(tc, test_missing_date_and_message_id_are_added);
	tcase_add_test(tc, test_present_date_and_message_id_are_kept_untouched);
	tcase_add_test(tc, test_date_in_body_does_not_count_as_header);
	tcase_add_test(tc, test_folded_header_lines_stay_in_the_header_block);
	tcase_add_test(tc, test_body_without_header_gets_an_empty_line_after_our_fields);
	tcase_add_test(tc, test_body_text_after_fields_is_separated_by_an_empty_line);
	tcase_add_test(tc, test_leading_continuation_cannot_fold_into_our_fields);
	tcase_add_test(tc, test_empty_message_gets_only_the_added_fields);
	tcase_add_test(tc, test_over_size_message_is_refused_and_read_to_its_end);
	tcase_add_test(tc, test_lost_connection_is_reported);
	tcase_add_test(tc, test_write_error_is_reported_with_errno);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(data_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
