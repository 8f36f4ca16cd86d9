/*
 * test_pop - POP-before-SMTP: state file names, when a login is due, what
 * the dialogue shows and keeps, URLs, and the login record on disk (against
 * a scripted POP3 server in a child process; no other network).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "pop.h"
#include "util.h"

#define TEST_LINE_MAX	512

/* out - the loggable form of a command sent */
static const char *
out(struct pop_dialogue *d, const char *line)
{
	static char	shown[TEST_LINE_MAX];

	pop_dialogue_out(d, line, strlen(line), shown, sizeof(shown));
	return shown;
}

/* in - reply lines received */
static void
in(struct pop_dialogue *d, const char *data)
{
	pop_dialogue_in(d, data, strlen(data));
}

/* name_of - the state file name of an account, or "(refused)" */
static const char *
name_of(const char *account)
{
	static char	buf[POP_STATE_NAME_MAX];

	if (pop_state_name(account, buf, sizeof(buf)) == -1)
		return "(refused)";
	return buf;
}

/*
 * State file names.
 */

START_TEST(test_state_name_keeps_an_address)
{
	ck_assert_str_eq(name_of("foo@example.com"), "foo@example.com");
	ck_assert_str_eq(name_of("@example.com"), "@example.com");
	ck_assert_str_eq(name_of("default"), "default");
	ck_assert_str_eq(name_of("a.b+c_d-e@x.y"), "a.b+c_d-e@x.y");
}
END_TEST

START_TEST(test_state_name_escapes_slash_and_leading_dot)
{
	ck_assert_str_eq(name_of("a/b"), "a%2Fb");
	ck_assert_str_eq(name_of("../x"), "%2E.%2Fx");
	ck_assert_str_eq(name_of("."), "%2E");
	ck_assert_str_eq(name_of(".."), "%2E.");
	ck_assert_str_eq(name_of(".hidden"), "%2Ehidden");
}
END_TEST

START_TEST(test_state_name_escapes_percent_tilde_and_odd_bytes)
{
	ck_assert_str_eq(name_of("a%2Fb"), "a%252Fb");
	ck_assert_str_eq(name_of("~x"), "%7Ex");
	ck_assert_str_eq(name_of("a b\n"), "a%20b%0A");
	ck_assert_str_eq(name_of("\xc3\xbc"), "%C3%BC");
}
END_TEST

START_TEST(test_different_accounts_get_different_names)
{
	char	a[POP_STATE_NAME_MAX], b[POP_STATE_NAME_MAX];

	ck_assert_int_eq(pop_state_name("a/b", a, sizeof(a)), 0);
	ck_assert_int_eq(pop_state_name("a%2Fb", b, sizeof(b)), 0);
	ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(test_long_state_name_is_a_hash)
{
	char	name[POP_STATE_NAME_MAX * 2];
	char	a[POP_STATE_NAME_MAX], b[POP_STATE_NAME_MAX];

	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	ck_assert_int_eq(pop_state_name(name, a, sizeof(a)), 0);
	ck_assert_int_eq(a[0], '~');
	ck_assert_uint_eq(strlen(a), 65);
	ck_assert_uint_eq(strspn(a + 1, "0123456789abcdef"), 64);
	/* stable, and another name has another hash */
	ck_assert_int_eq(pop_state_name(name, b, sizeof(b)), 0);
	ck_assert_str_eq(a, b);
	name[0] = 'b';
	ck_assert_int_eq(pop_state_name(name, b, sizeof(b)), 0);
	ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(test_state_name_that_fits_is_kept)
{
	char	name[POP_STATE_NAME_MAX + 1];

	memset(name, 'a', POP_STATE_NAME_MAX - 1);
	name[POP_STATE_NAME_MAX - 1] = '\0';
	ck_assert_str_eq(name_of(name), name);
	memset(name, 'a', POP_STATE_NAME_MAX);
	name[POP_STATE_NAME_MAX] = '\0';
	ck_assert_int_eq(name_of(name)[0], '~');
	/* escaping counts: 67 '/' are 201 bytes escaped */
	memset(name, '/', 67);
	name[67] = '\0';
	ck_assert_int_eq(name_of(name)[0], '~');
}
END_TEST

START_TEST(test_empty_name_or_small_buffer_is_refused)
{
	char	small[POP_STATE_NAME_MAX - 1];

	ck_assert_str_eq(name_of(""), "(refused)");
	ck_assert_int_eq(pop_state_name(NULL, small, sizeof(small)), -1);
	ck_assert_int_eq(pop_state_name("x", small, sizeof(small)), -1);
}
END_TEST

/*
 * When a login is due.
 */

START_TEST(test_login_due_when_never_logged_in)
{
	ck_assert(pop_login_due(0, 1000, 60));
}
END_TEST

START_TEST(test_no_login_within_checkdelay)
{
	ck_assert(!pop_login_due(1000, 1000, 60));
	ck_assert(!pop_login_due(1000, 1059, 60));
}
END_TEST

START_TEST(test_login_due_once_checkdelay_has_passed)
{
	ck_assert(pop_login_due(1000, 1060, 60));
	ck_assert(pop_login_due(1000, 5000, 60));
}
END_TEST

START_TEST(test_checkdelay_zero_logs_in_every_time)
{
	ck_assert(pop_login_due(1000, 1000, 0));
}
END_TEST

START_TEST(test_login_in_the_future_is_due)
{
	ck_assert(pop_login_due(2000, 1000, 60));
}
END_TEST

/*
 * The dialogue.
 */

START_TEST(test_err_line_is_kept)
{
	struct pop_dialogue	d = { 0 };

	out(&d, "PASS x");
	in(&d, "-ERR [AUTH] Authentication failed.\r\n");
	ck_assert_str_eq(d.err, "-ERR [AUTH] Authentication failed.");
}
END_TEST

START_TEST(test_err_line_found_among_other_lines)
{
	struct pop_dialogue	d = { 0 };

	in(&d, "+OK\r\nTOP\r\n-ERR no\r\n");
	ck_assert_str_eq(d.err, "-ERR no");
	in(&d, "+OK fine\r\n");
	ck_assert_str_eq(d.err, "-ERR no");
}
END_TEST

START_TEST(test_no_err_line_when_all_is_well)
{
	struct pop_dialogue	d = { 0 };

	in(&d, "+OK Dovecot ready.\r\n");
	out(&d, "NOOP");
	in(&d, "+OK\r\n");
	ck_assert_str_eq(d.err, "");
}
END_TEST

START_TEST(test_err_before_the_last_command_is_forgotten)
{
	struct pop_dialogue	d = { 0 };

	/* an old server refuses CAPA; the login then goes on */
	out(&d, "CAPA");
	in(&d, "-ERR unknown command\r\n");
	out(&d, "USER u");
	ck_assert_str_eq(d.err, "");
}
END_TEST

START_TEST(test_err_survives_quit)
{
	struct pop_dialogue	d = { 0 };

	out(&d, "PASS x");
	in(&d, "-ERR [AUTH] bad\r\n");
	out(&d, "QUIT");
	in(&d, "+OK bye\r\n");
	ck_assert_str_eq(d.err, "-ERR [AUTH] bad");
}
END_TEST

START_TEST(test_err_line_is_cleaned_and_bounded)
{
	struct pop_dialogue	d = { 0 };
	char			line[POP_REPLY_MAX * 3];

	in(&d, "-ERR a\tb\x01" "c\x7f\r\n");
	ck_assert_str_eq(d.err, "-ERR a bc");
	memset(line, 'x', sizeof(line) - 3);
	memcpy(line, "-ERR ", 5);
	memcpy(line + sizeof(line) - 3, "\r\n", 3);
	in(&d, line);
	ck_assert_uint_eq(strlen(d.err), POP_REPLY_MAX - 1);
}
END_TEST

START_TEST(test_user_and_pass_are_redacted)
{
	struct pop_dialogue	d = { 0 };

	ck_assert_str_eq(out(&d, "USER someone\r\n"), "USER " POP_REDACTED);
	ck_assert_str_eq(out(&d, "PASS s3cret\r\n"), "PASS " POP_REDACTED);
	ck_assert_str_eq(out(&d, "pass s3cret"), "pass " POP_REDACTED);
	ck_assert_str_eq(out(&d, "APOP someone 0123abcd"),
	    "APOP " POP_REDACTED);
}
END_TEST

START_TEST(test_sasl_exchange_is_redacted)
{
	struct pop_dialogue	d = { 0 };

	ck_assert_str_eq(out(&d, "AUTH PLAIN\r\n"), "AUTH PLAIN");
	in(&d, "+ \r\n");
	ck_assert_str_eq(out(&d, "AHVzZXIAczNjcmV0\r\n"), POP_REDACTED);
	in(&d, "+OK Logged in.\r\n");
	ck_assert_str_eq(out(&d, "NOOP\r\n"), "NOOP");
}
END_TEST

START_TEST(test_sasl_initial_response_is_redacted)
{
	struct pop_dialogue	d = { 0 };

	ck_assert_str_eq(out(&d, "AUTH PLAIN AHVzZXIAczNjcmV0"),
	    "AUTH PLAIN " POP_REDACTED);
	in(&d, "-ERR [AUTH] Authentication failed.\r\n");
	ck_assert_str_eq(d.err, "-ERR [AUTH] Authentication failed.");
	ck_assert_str_eq(out(&d, "QUIT"), "QUIT");
}
END_TEST

START_TEST(test_sasl_login_steps_are_redacted)
{
	struct pop_dialogue	d = { 0 };

	ck_assert_str_eq(out(&d, "AUTH LOGIN"), "AUTH LOGIN");
	in(&d, "+ VXNlcm5hbWU6\r\n");
	ck_assert_str_eq(out(&d, "dXNlcg=="), POP_REDACTED);
	in(&d, "+ UGFzc3dvcmQ6\r\n");
	ck_assert_str_eq(out(&d, "czNjcmV0"), POP_REDACTED);
	in(&d, "+OK\r\n");
	ck_assert_str_eq(out(&d, "NOOP"), "NOOP");
}
END_TEST

/*
 * URLs.
 */

START_TEST(test_url_of_pop3s_and_pop3)
{
	char	*u;

	u = pop_url("pop.example.com", 995, true);
	ck_assert_str_eq(u, "pop3s://pop.example.com:995/");
	free(u);
	u = pop_url("192.0.2.1", 110, false);
	ck_assert_str_eq(u, "pop3://192.0.2.1:110/");
	free(u);
}
END_TEST

START_TEST(test_url_puts_ipv6_in_brackets)
{
	char	*u;

	u = pop_url("2001:db8::1", 995, true);
	ck_assert_str_eq(u, "pop3s://[2001:db8::1]:995/");
	free(u);
	u = pop_url("[::1]", 110, false);
	ck_assert_str_eq(u, "pop3://[::1]:110/");
	free(u);
	u = pop_url("fe80::1%eth0", 995, true);
	ck_assert_str_eq(u, "pop3s://[fe80::1%25eth0]:995/");
	free(u);
}
END_TEST

START_TEST(test_url_refuses_what_would_bend_it)
{
	ck_assert_ptr_null(pop_url("evil.example/x", 995, true));
	ck_assert_ptr_null(pop_url("user@host", 995, true));
	ck_assert_ptr_null(pop_url("a b", 995, true));
	ck_assert_ptr_null(pop_url("", 995, true));
	ck_assert_ptr_null(pop_url(NULL, 995, true));
	ck_assert_ptr_null(pop_url("host", 0, true));
	ck_assert_ptr_null(pop_url("host", 65536, true));
}
END_TEST

/*
 * pop_before_smtp and its record, against a scripted server.
 */

struct fixture {
	char		 dir[PATH_MAX];
	struct config	 cfg;
	struct account	 acct;
	int		 closed_fd;	/* bound, not listening: refuses */
	int		 closed_port;
};

/* bound_socket - a TCP socket on 127.0.0.1 and a port of its own */
static int
bound_socket(int *port)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);
	int			fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* fixture_init - a spool folder and a POP-before-SMTP account */
static void
fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	strlcpy_s(f->dir, "/tmp/test_pop.XXXXXX", sizeof(f->dir));
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	f->cfg.msgdir = f->dir;
	f->cfg.relaytimeout = 5;
	f->cfg.waitafterpop = 0;
	f->closed_fd = bound_socket(&f->closed_port);
	f->acct.name = "user/x@example.com";
	f->acct.popbeforesmtp = true;
	f->acct.pophost = "127.0.0.1";
	f->acct.popport = f->closed_port;
	f->acct.popssl = false;
	f->acct.popusername = "user";
	f->acct.poppassword = "s3cret";
	f->acct.popcheckdelay = 60;
	f->acct.tlsverify = true;
}

/* fixture_state - path of the account's state file */
static char *
fixture_state(const struct fixture *f)
{
	char	name[POP_STATE_NAME_MAX];

	ck_assert_int_eq(pop_state_name(f->acct.name, name, sizeof(name)), 0);
	return xasprintf("%s/%s/%s", f->dir, POP_STATE_DIR, name);
}

/* fixture_done - remove what a test left */
static void
fixture_done(struct fixture *f)
{
	char	*path = fixture_state(f);
	char	*dir = xasprintf("%s/%s", f->dir, POP_STATE_DIR);

	unlink(path);
	rmdir(dir);
	rmdir(f->dir);
	close(f->closed_fd);
	free(path);
	free(dir);
}

/* serve_reply - the scripted answer to one command */
static const char *
serve_reply(const char *line)
{
	if (strncasecmp(line, "CAPA", 4) == 0)
		return "+OK\r\nUSER\r\n.\r\n";
	if (strncasecmp(line, "PASS", 4) == 0)
		return strstr(line, "s3cret") != NULL ? "+OK in\r\n" :
		    "-ERR [AUTH] wrong\r\n";
	return "+OK\r\n";
}

/* serve_once - a POP3 server for one session, in a child; its pid */
static pid_t
serve_once(int *port)
{
	char	buf[TEST_LINE_MAX];
	size_t	n = 0;
	pid_t	pid;
	int	lfd, fd;

	lfd = bound_socket(port);
	ck_assert_int_eq(listen(lfd, 1), 0);
	if ((pid = fork()) != 0) {
		close(lfd);
		return pid;
	}
	alarm(10);
	if ((fd = accept(lfd, NULL, NULL)) == -1)
		_exit(1);
	close(lfd);
	write_all(fd, "+OK ready\r\n", 11);
	for (;;) {
		const char	*reply;
		char		*nl;
		ssize_t		 got;

		if ((nl = memchr(buf, '\n', n)) == NULL) {
			if (n == sizeof(buf) ||
			    (got = read(fd, buf + n, sizeof(buf) - n)) <= 0)
				_exit(1);
			n += (size_t)got;
			continue;
		}
		*nl = '\0';
		reply = serve_reply(buf);
		write_all(fd, reply, strlen(reply));
		if (strncasecmp(buf, "QUIT", 4) == 0 || reply[0] == '-')
			_exit(0);
		n -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, n);
	}
}

/* served - the scripted server's exit status */
static int
served(pid_t pid)
{
	int	status;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_off_does_nothing)
{
	struct fixture	f;
	struct stat	st;
	char		err[POP_REPLY_MAX] = "";
	char		*dir;

	fixture_init(&f);
	f.acct.popbeforesmtp = false;
	ck_assert_int_eq(pop_before_smtp(&f.cfg, &f.acct, err, sizeof(err)),
	    0);
	dir = xasprintf("%s/%s", f.dir, POP_STATE_DIR);
	ck_assert_int_eq(stat(dir, &st), -1);
	free(dir);
	fixture_done(&f);
}
END_TEST

START_TEST(test_login_is_recorded_and_not_repeated_within_checkdelay)
{
	struct fixture	f;
	struct stat	st;
	char		err[POP_REPLY_MAX] = "";
	char		*path, *dir;
	pid_t		pid;
	int		port;

	fixture_init(&f);
	pid = serve_once(&port);
	f.acct.popport = port;
	ck_assert_int_eq(pop_before_smtp(&f.cfg, &f.acct, err, sizeof(err)),
	    0);
	ck_assert_int_eq(served(pid), 0);

	path = fixture_state(&f);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_le(labs((long)(st.st_mtime - time(NULL))), 2);
	dir = xasprintf("%s/%s", f.dir, POP_STATE_DIR);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);

	/* no server any more: a login attempt would fail */
	ck_assert_int_eq(pop_before_smtp(&f.cfg, &f.acct, err, sizeof(err)),
	    0);
	free(path);
	free(dir);
	fixture_done(&f);
}
END_TEST

START_TEST(test_old_record_means_a_new_login)
{
	struct fixture	f;
	struct timespec	old[2] = { { .tv_sec = 1000 }, { .tv_sec = 1000 } };
	char		err[POP_REPLY_MAX] = "";
	char		*path;
	pid_t		pid;
	int		port;

	fixture_init(&f);
	pid = serve_once(&port);
	f.acct.popport = port;
	ck_assert_int_eq(pop_before_smtp(&f.cfg, &f.acct, err, sizeof(err)),
	    0);
	ck_assert_int_eq(served(pid), 0);
	path = fixture_state(&f);
	ck_assert_int_eq(utimensat(AT_FDCWD, path, old, 0), 0);

	/* due again: tries the server, which is gone */
	ck_assert_int_eq(pop_before_smtp(&f.cfg, &f.acct, err, sizeof(err)),
	    -1);
	free(path);
	fixture_done(&f);
}
END_TEST

START_TEST(test_forget_means_a_new_login)
{
	struct fixture	f;
	char		err[POP_REPLY_MAX] = "";
	pid_t		pid;
	int		port;

	fixture_init(&f);
	pid = serve_once(&port);
	f.acct.popport = port;
	ck_assert_int_eq(pop_before_smtp(&f.cfg, &f.acct, err, sizeof(err)),
	    0);
	ck_assert_int_eq(served(pid), 0);
	pop_forget(&f.cfg, &f.acct);
	ck_assert_int_eq(pop_before_smtp(&f.cfg, &f.acct, err, sizeof(err)),
	    -1);
	fixture_done(&f);
}
END_TEST

START_TEST(test_refused_login_gives_the_server_reply)
{
	struct fixture	f;
	struct stat	st;
	char		err[POP_REPLY_MAX] = "";
	char		*path;
	pid_t		pid;
	int		port;

	fixture_init(&f);
	pid = serve_once(&port);
	f.acct.popport = port;
	f.acct.poppassword = "wrong";
	ck_assert_int_eq(pop_before_smtp(&f.cfg, &f.acct, err, sizeof(err)),
	    -1);
	ck_assert_int_eq(served(pid), 0);
	ck_assert_ptr_nonnull(strstr(err, "-ERR [AUTH] wrong"));
	ck_assert_ptr_null(strchr(err, '\n'));
	path = fixture_state(&f);
	ck_assert_int_eq(stat(path, &st), -1);
	free(path);
	fixture_done(&f);
}
END_TEST

START_TEST(test_unreachable_server_fails_with_a_reason)
{
	struct fixture	f;
	char		err[POP_REPLY_MAX] = "";
	char		*where;

	fixture_init(&f);
	ck_assert_int_eq(pop_before_smtp(&f.cfg, &f.acct, err, sizeof(err)),
	    -1);
	where = xasprintf("127.0.0.1:%d", f.closed_port);
	ck_assert_ptr_nonnull(strstr(err, where));
	ck_assert_ptr_null(strstr(err, "s3cret"));
	free(where);
	fixture_done(&f);
}
END_TEST

START_TEST(test_invalid_pophost_fails_before_the_network)
{
	struct fixture	f;
	char		err[POP_REPLY_MAX] = "";

	fixture_init(&f);
	f.acct.pophost = "bad/host";
	ck_assert_int_eq(pop_before_smtp(&f.cfg, &f.acct, err, sizeof(err)),
	    -1);
	ck_assert_ptr_nonnull(strstr(err, "invalid pophost"));
	fixture_done(&f);
}
END_TEST

static Suite *
pop_suite(void)
{
	Suite	*s = suite_create("pop");
	TCase	*names = tcase_create("state names");
	TCase	*due = tcase_create("login due");
	TCase	*dlg = tcase_create("dialogue");
	TCase	*url = tcase_create("url");
	TCase	*login = tcase_create("login");

	tcase_add_test(names, test_state_name_keeps_an_address);
	tcase_add_test(names, test_state_name_escapes_slash_and_leading_dot);
	tcase_add_test(names,
	    test_state_name_escapes_percent_tilde_and_odd_bytes);
	tcase_add_test(names, test_different_accounts_get_different_names);
	tcase_add_test(names, test_long_state_name_is_a_hash);
	tcase_add_test(names, test_state_name_that_fits_is_kept);
	tcase_add_test(names, test_empty_name_or_small_buffer_is_refused);
	suite_add_tcase(s, names);

	tcase_add_test(due, test_login_due_when_never_logged_in);
	tcase_add_test(due, test_no_login_within_checkdelay);
	tcase_add_test(due, test_login_due_once_checkdelay_has_passed);
	tcase_add_test(due, test_checkdelay_zero_logs_in_every_time);
	tcase_add_test(due, test_login_in_the_future_is_due);
	suite_add_tcase(s, due);

	tcase_add_test(dlg, test_err_line_is_kept);
	tcase_add_test(dlg, test_err_line_found_among_other_lines);
	tcase_add_test(dlg, test_no_err_line_when_all_is_well);
	tcase_add_test(dlg, test_err_before_the_last_command_is_forgotten);
	tcase_add_test(dlg, test_err_survives_quit);
	tcase_add_test(dlg, test_err_line_is_cleaned_and_bounded);
	tcase_add_test(dlg, test_user_and_pass_are_redacted);
	tcase_add_test(dlg, test_sasl_exchange_is_redacted);
	tcase_add_test(dlg, test_sasl_initial_response_is_redacted);
	tcase_add_test(dlg, test_sasl_login_steps_are_redacted);
	suite_add_tcase(s, dlg);

	tcase_add_test(url, test_url_of_pop3s_and_pop3);
	tcase_add_test(url, test_url_puts_ipv6_in_brackets);
	tcase_add_test(url, test_url_refuses_what_would_bend_it);
	suite_add_tcase(s, url);

	tcase_set_timeout(login, 20);
	tcase_add_test(login, test_off_does_nothing);
	tcase_add_test(login,
	    test_login_is_recorded_and_not_repeated_within_checkdelay);
	tcase_add_test(login, test_old_record_means_a_new_login);
	tcase_add_test(login, test_forget_means_a_new_login);
	tcase_add_test(login, test_refused_login_gives_the_server_reply);
	tcase_add_test(login, test_unreachable_server_fails_with_a_reason);
	tcase_add_test(login, test_invalid_pophost_fails_before_the_network);
	suite_add_tcase(s, login);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(pop_suite());
	int	 failed;

	/* a scripted server that dies must not take the test with it */
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_LEVEL_WARNING);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
