/*
 * test_tls - unit tests of common/tls.c: the server context, the STARTTLS
 * handshake over a socket pair against an OpenSSL client in a thread,
 * discarding of input pipelined in the clear, deadlines, the protocol
 * floor, and reading what OpenSSL has decrypted but not yet handed out.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "netio.h"
#include "tls.h"
#include "util.h"

#define TIMEOUT_MS	5000	/* generous: only a bug makes tests wait */
#define SHORT_TIMEOUT_MS 200	/* the deadline of the timeout tests */
#define LATE_MS		1000	/* later than this is not "promptly" */
#define DRIP_INTERVAL_MS 50	/* a slow client sends a byte this often */
#define DRIP_BYTES	40	/* for DRIP_BYTES * DRIP_INTERVAL_MS in all */
#define LINE_MAX_TEST	(NETIO_RBUF - 1)
#define REPLY_MAX	64
#define GOT_MAX		256
#define DIR_MAX		32	/* holds the mkdtemp template below */
#define PATH_MAX_TEST	256
#define RECORDS_MAX	4

/* A TLS client on the other end of the socket pair, run in a thread. */
struct client {
	int		 fd;
	const char	*plain;		/* sent in the clear first */
	int		 wait_reply;	/* read a clear line before TLS */
	int		 max_version;	/* highest offered; 0: default */
	int		 hang_up;	/* end without close_notify */
	const char	*records[RECORDS_MAX];	/* one SSL_write each */
	int		 connected;	/* the handshake succeeded */
	int		 close_notify;	/* the server sent close_notify */
	char		 reply[REPLY_MAX];	/* the clear line read */
	char		 got[GOT_MAX];	/* what came over TLS */
	size_t		 gotlen;
	pthread_t	 thread;
	int		 running;
};

static char		 tmpdir[DIR_MAX];
static char		 certfile[PATH_MAX_TEST];
static char		 keyfile[PATH_MAX_TEST];
static char		 othercert[PATH_MAX_TEST];
static char		 otherkey[PATH_MAX_TEST];

static SSL_CTX		*server_ctx;
static int		 server_fd = -1;
static struct netio	 io;
static struct client	 client;

static void		 make_cert(const char *, const char *);
static void		 make_certs(void);
static void		 remove_certs(void);
static SSL_CTX		*client_context(int);
static void		 read_plain_line(int, char *, size_t);
static void		 client_talk(struct client *, SSL *);
static void		*client_main(void *);
static void		*drip_main(void *);
static void		 start_client(void *(*)(void *));
static void		 finish(void);
static void		 setup(void);
static void		 teardown(void);
static void		 read_line_is(const char *);
static char		*repeat(char, size_t);
static Suite		*tls_suite(void);

/* make_cert - a self-signed certificate and its key, by the openssl tool */
static void
make_cert(const char *cert, const char *key)
{
	char	cmd[4 * PATH_MAX_TEST];

	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey rsa:2048 "
	    "-nodes -subj /CN=localhost -days 1 -keyout '%s' -out '%s' "
	    ">/dev/null 2>&1", key, cert);
	if (system(cmd) != 0) {
		fprintf(stderr, "test_tls: cannot run: %s\n", cmd);
		exit(EXIT_FAILURE);
	}
}

/* make_certs - two unrelated certificate/key pairs in a fresh folder */
static void
make_certs(void)
{
	strlcpy_s(tmpdir, "/tmp/test_tls.XXXXXX", sizeof(tmpdir));
	if (mkdtemp(tmpdir) == NULL) {
		perror("test_tls: mkdtemp");
		exit(EXIT_FAILURE);
	}
	snprintf(certfile, sizeof(certfile), "%s/cert.pem", tmpdir);
	snprintf(keyfile, sizeof(keyfile), "%s/key.pem", tmpdir);
	snprintf(othercert, sizeof(othercert), "%s/other-cert.pem", tmpdir);
	snprintf(otherkey, sizeof(otherkey), "%s/other-key.pem", tmpdir);
	make_cert(certfile, keyfile);
	make_cert(othercert, otherkey);
}

/* remove_certs - remove the folder make_certs made */
static void
remove_certs(void)
{
	unlink(certfile);
	unlink(keyfile);
	unlink(othercert);
	unlink(otherkey);
	rmdir(tmpdir);
}

/* client_context - a client context offering versions up to max_version */
static SSL_CTX *
client_context(int max_version)
{
	SSL_CTX	*ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL || max_version == 0)
		return ctx;
	/* Let the client really offer old versions: the server must refuse. */
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
	SSL_CTX_set_min_proto_version(ctx, 0);
	SSL_CTX_set_max_proto_version(ctx, max_version);
	return ctx;
}

/* read_plain_line - one line in the clear, without its line end */
static void
read_plain_line(int fd, char *buf, size_t len)
{
	size_t	n = 0;
	char	c;

	while (read(fd, &c, 1) == 1 && c != '\n')
		if (c != '\r' && n + 1 < len)
			buf[n++] = c;
	buf[n] = '\0';
}

/* client_talk - send the records, then collect replies until the end */
static void
client_talk(struct client *c, SSL *ssl)
{
	char	buf[GOT_MAX];
	size_t	i, n;

	for (i = 0; i < RECORDS_MAX && c->records[i] != NULL; i++)
		if (SSL_write_ex(ssl, c->records[i], strlen(c->records[i]),
		    &n) != 1)
			return;
	if (c->hang_up)
		shutdown(c->fd, SHUT_WR);
	while (SSL_read_ex(ssl, buf, sizeof(buf), &n) == 1) {
		if (n > sizeof(c->got) - 1 - c->gotlen)
			n = sizeof(c->got) - 1 - c->gotlen;
		memcpy(c->got + c->gotlen, buf, n);
		c->gotlen += n;
	}
	c->got[c->gotlen] = '\0';
	c->close_notify = SSL_get_error(ssl, 0) == SSL_ERROR_ZERO_RETURN;
}

/* client_main - the client thread: clear text, handshake, talk, close */
static void *
client_main(void *arg)
{
	struct client	*c = arg;
	SSL_CTX		*ctx = client_context(c->max_version);
	SSL		*ssl = SSL_new(ctx);

	if (c->plain != NULL)
		write_all(c->fd, c->plain, strlen(c->plain));
	if (c->wait_reply)
		read_plain_line(c->fd, c->reply, sizeof(c->reply));
	SSL_set_fd(ssl, c->fd);
	if (SSL_connect(ssl) == 1) {
		c->connected = 1;
		client_talk(c, ssl);
	}
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(c->fd);
	c->fd = -1;
	return NULL;
}

/* drip_main - a client that starts a record and then sends it slowly */
static void *
drip_main(void *arg)
{
	static const unsigned char	header[] = {
		0x16, 0x03, 0x01, 0x01, 0x00	/* handshake, 256 bytes */
	};
	struct client			*c = arg;
	struct timespec			 pause = {
		.tv_nsec = DRIP_INTERVAL_MS * 1000000L
	};
	const unsigned char		 zero = 0;
	int				 i;

	if (write_all(c->fd, header, sizeof(header)) < 0)
		return NULL;
	for (i = 0; i < DRIP_BYTES; i++) {
		nanosleep(&pause, NULL);
		if (write(c->fd, &zero, 1) != 1)
			break;
	}
	close(c->fd);
	c->fd = -1;
	return NULL;
}

/* start_client - run the client thread against the server socket */
static void
start_client(void *(*fn)(void *))
{
	ck_assert_int_eq(pthread_create(&client.thread, NULL, fn, &client), 0);
	client.running = 1;
}

/* finish - end TLS, close the server side, wait for the client */
static void
finish(void)
{
	tls_netio_end(&io);
	if (server_fd != -1)
		close(server_fd);
	server_fd = -1;
	if (client.running)
		pthread_join(client.thread, NULL);
	client.running = 0;
	if (client.fd != -1)
		close(client.fd);
	client.fd = -1;
}

/* setup - a server context, a socket pair, netio on the server end */
static void
setup(void)
{
	char	err[256];
	int	fds[2];

	server_ctx = tls_server_context(certfile, keyfile, err, sizeof(err));
	ck_assert_msg(server_ctx != NULL, "%s", err);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	server_fd = fds[0];
	netio_init(&io, server_fd, TIMEOUT_MS);
	memset(&client, 0, sizeof(client));
	client.fd = fds[1];
}

/* teardown - undo setup, whatever state the test left */
static void
teardown(void)
{
	finish();
	SSL_CTX_free(server_ctx);
	server_ctx = NULL;
}

/* read_line_is - the next line the server reads is want */
static void
read_line_is(const char *want)
{
	char	*line;
	size_t	 len;

	ck_assert_int_eq(netio_read_line(&io, &line, &len, LINE_MAX_TEST),
	    NETIO_OK);
	ck_assert_str_eq(line, want);
}

/* repeat - a malloc'd string of n times c */
static char *
repeat(char c, size_t n)
{
	char	*s = xmalloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

START_TEST(test_context_loads_good_cert_and_key)
{
	char	 err[256] = "";
	SSL_CTX	*ctx;

	ctx = tls_server_context(certfile, keyfile, err, sizeof(err));
	ck_assert_msg(ctx != NULL, "%s", err);
	SSL_CTX_free(ctx);
}
END_TEST

START_TEST(test_missing_cert_file_is_named_in_the_error)
{
	char	 err[256] = "";
	char	 missing[PATH_MAX_TEST];

	snprintf(missing, sizeof(missing), "%s/missing-cert.pem", tmpdir);
	ck_assert_ptr_null(tls_server_context(missing, keyfile, err,
	    sizeof(err)));
	ck_assert_msg(strstr(err, missing) != NULL, "%s", err);
	ck_assert_msg(strstr(err, "No such file") != NULL, "%s", err);
}
END_TEST

START_TEST(test_missing_key_file_is_named_in_the_error)
{
	char	 err[256] = "";
	char	 missing[PATH_MAX_TEST];

	snprintf(missing, sizeof(missing), "%s/missing-key.pem", tmpdir);
	ck_assert_ptr_null(tls_server_context(certfile, missing, err,
	    sizeof(err)));
	ck_assert_msg(strstr(err, missing) != NULL, "%s", err);
	ck_assert_msg(strstr(err, "No such file") != NULL, "%s", err);
}
END_TEST

START_TEST(test_cert_file_without_a_certificate_is_refused)
{
	char	err[256] = "";

	ck_assert_ptr_null(tls_server_context(keyfile, keyfile, err,
	    sizeof(err)));
	ck_assert_msg(strstr(err, keyfile) != NULL, "%s", err);
}
END_TEST

START_TEST(test_key_not_matching_the_cert_is_refused)
{
	char	err[256] = "";

	ck_assert_ptr_null(tls_server_context(certfile, otherkey, err,
	    sizeof(err)));
	ck_assert_msg(strstr(err, otherkey) != NULL, "%s", err);
	ck_assert_msg(strstr(err, "mismatch") != NULL, "%s", err);
}
END_TEST

START_TEST(test_line_sent_over_tls_is_read_through_netio)
{
	client.records[0] = "EHLO x\r\n";
	start_client(client_main);
	ck_assert_int_eq(tls_netio_start(&io, server_ctx), 0);
	read_line_is("EHLO x");
}
END_TEST

START_TEST(test_reply_reaches_the_client_over_tls)
{
	client.records[0] = "EHLO x\r\n";
	start_client(client_main);
	ck_assert_int_eq(tls_netio_start(&io, server_ctx), 0);
	read_line_is("EHLO x");
	netio_printf(&io, "250 ok\r\n");
	ck_assert_int_eq(netio_flush(&io), NETIO_OK);
	finish();
	ck_assert_str_eq(client.got, "250 ok\r\n");
}
END_TEST

START_TEST(test_end_sends_close_notify)
{
	client.records[0] = "EHLO x\r\n";
	start_client(client_main);
	ck_assert_int_eq(tls_netio_start(&io, server_ctx), 0);
	read_line_is("EHLO x");
	finish();
	ck_assert_int_eq(client.connected, 1);
	ck_assert_int_eq(client.close_notify, 1);
}
END_TEST

START_TEST(test_client_hanging_up_reads_as_end_of_stream)
{
	char	*line;
	size_t	 len;

	client.records[0] = "EHLO x\r\n";
	client.hang_up = 1;
	start_client(client_main);
	ck_assert_int_eq(tls_netio_start(&io, server_ctx), 0);
	read_line_is("EHLO x");
	ck_assert_int_eq(netio_read_line(&io, &line, &len, LINE_MAX_TEST),
	    NETIO_EOF);
}
END_TEST

START_TEST(test_plaintext_pipelined_after_starttls_is_discarded)
{
	/* An injected command rides in the same packet as STARTTLS. */
	client.plain = "STARTTLS\r\nQUIT\r\n";
	client.wait_reply = 1;
	client.records[0] = "EHLO x\r\n";
	start_client(client_main);
	read_line_is("STARTTLS");
	ck_assert_uint_eq(netio_pending(&io), strlen("QUIT\r\n"));
	netio_printf(&io, "220 ready\r\n");
	ck_assert_int_eq(netio_flush(&io), NETIO_OK);
	ck_assert_int_eq(tls_netio_start(&io, server_ctx), 0);
	read_line_is("EHLO x");
}
END_TEST

START_TEST(test_reply_buffered_before_start_goes_out_in_the_clear)
{
	client.plain = "STARTTLS\r\n";
	client.wait_reply = 1;
	client.records[0] = "EHLO x\r\n";
	start_client(client_main);
	read_line_is("STARTTLS");
	netio_printf(&io, "220 ready\r\n");
	ck_assert_int_eq(tls_netio_start(&io, server_ctx), 0);
	read_line_is("EHLO x");
	finish();
	ck_assert_str_eq(client.reply, "220 ready");
}
END_TEST

START_TEST(test_bytes_decrypted_but_not_yet_read_are_not_lost_waiting)
{
	/*
	 * The second record is larger than the room netio asks for once
	 * the first one's long line is buffered, so its tail stays decrypted
	 * inside OpenSSL while the socket is empty and the client waits:
	 * the last line arrives only if the transport reads before polling.
	 */
	char	*first_tail = repeat('a', NETIO_RBUF / 2);
	char	*second_head = repeat('a', 1000);
	char	*second_line = repeat('b', NETIO_RBUF / 2);
	char	*first, *second, *long_a;

	first = xasprintf("EHLO x\r\n%s", first_tail);
	second = xasprintf("%s\r\n%s\r\nQUIT\r\n", second_head, second_line);
	long_a = xasprintf("%s%s", first_tail, second_head);
	client.records[0] = first;
	client.records[1] = second;
	start_client(client_main);
	ck_assert_int_eq(tls_netio_start(&io, server_ctx), 0);
	io.timeout_ms = LATE_MS;
	read_line_is("EHLO x");
	read_line_is(long_a);
	read_line_is(second_line);
	read_line_is("QUIT");
	finish();
	free(first_tail);
	free(second_head);
	free(second_line);
	free(first);
	free(second);
	free(long_a);
}
END_TEST

START_TEST(test_handshake_times_out_promptly_when_client_is_silent)
{
	int64_t	start = now_ms(), took;

	io.timeout_ms = SHORT_TIMEOUT_MS;
	ck_assert_int_eq(tls_netio_start(&io, server_ctx), -1);
	took = now_ms() - start;
	ck_assert_int_ge(took, SHORT_TIMEOUT_MS - 10);
	ck_assert_int_lt(took, LATE_MS);
	ck_assert_str_eq(tls_netio_error(), "timed out");
}
END_TEST

START_TEST(test_handshake_deadline_is_not_stretched_by_a_dripping_client)
{
	int64_t	start = now_ms(), took;

	io.timeout_ms = SHORT_TIMEOUT_MS;
	start_client(drip_main);
	ck_assert_int_eq(tls_netio_start(&io, server_ctx), -1);
	took = now_ms() - start;
	ck_assert_int_lt(took, LATE_MS);
	ck_assert_str_eq(tls_netio_error(), "timed out");
}
END_TEST

START_TEST(test_tls_1_1_client_is_refused)
{
	client.max_version = TLS1_1_VERSION;
	client.records[0] = "EHLO x\r\n";
	start_client(client_main);
	ck_assert_int_eq(tls_netio_start(&io, server_ctx), -1);
	ck_assert_msg(strstr(tls_netio_error(), "unsupported protocol") !=
	    NULL, "%s", tls_netio_error());
	finish();
	ck_assert_int_eq(client.connected, 0);
}
END_TEST

START_TEST(test_tls_1_2_client_is_accepted)
{
	client.max_version = TLS1_2_VERSION;
	client.records[0] = "EHLO x\r\n";
	start_client(client_main);
	ck_assert_int_eq(tls_netio_start(&io, server_ctx), 0);
	ck_assert_str_eq(tls_netio_version(&io), "TLSv1.2");
	read_line_is("EHLO x");
}
END_TEST

START_TEST(test_version_and_cipher_are_reported_after_handshake)
{
	client.records[0] = "EHLO x\r\n";
	start_client(client_main);
	ck_assert_int_eq(tls_netio_start(&io, server_ctx), 0);
	ck_assert_str_eq(tls_netio_version(&io), "TLSv1.3");
	ck_assert_ptr_nonnull(tls_netio_cipher(&io));
	ck_assert_msg(strncmp(tls_netio_cipher(&io), "TLS_", 4) == 0, "%s",
	    tls_netio_cipher(&io));
}
END_TEST

START_TEST(test_version_and_cipher_are_null_without_tls)
{
	ck_assert_ptr_null(tls_netio_version(&io));
	ck_assert_ptr_null(tls_netio_cipher(&io));
}
END_TEST

START_TEST(test_end_without_tls_leaves_io_alone)
{
	tls_netio_end(&io);
	ck_assert_int_eq(io.error, NETIO_OK);
	ck_assert_int_eq(netio_write(&io, "x", 1), NETIO_OK);
}
END_TEST

START_TEST(test_start_while_tls_is_active_is_refused)
{
	client.records[0] = "EHLO x\r\n";
	start_client(client_main);
	ck_assert_int_eq(tls_netio_start(&io, server_ctx), 0);
	ck_assert_int_eq(tls_netio_start(&io, server_ctx), -1);
	ck_assert_str_eq(tls_netio_version(&io), "TLSv1.3");
}
END_TEST

/* tls_suite - the tests, grouped by what they exercise */
static Suite *
tls_suite(void)
{
	Suite	*s = suite_create("tls");
	TCase	*context = tcase_create("context");
	TCase	*session = tcase_create("session");
	TCase	*guard = tcase_create("guard");

	tcase_add_test(context, test_context_loads_good_cert_and_key);
	tcase_add_test(context, test_missing_cert_file_is_named_in_the_error);
	tcase_add_test(context, test_missing_key_file_is_named_in_the_error);
	tcase_add_test(context,
	    test_cert_file_without_a_certificate_is_refused);
	tcase_add_test(context, test_key_not_matching_the_cert_is_refused);
	suite_add_tcase(s, context);

	tcase_add_checked_fixture(session, setup, teardown);
	tcase_add_test(session, test_line_sent_over_tls_is_read_through_netio);
	tcase_add_test(session, test_reply_reaches_the_client_over_tls);
	tcase_add_test(session, test_end_sends_close_notify);
	tcase_add_test(session,
	    test_client_hanging_up_reads_as_end_of_stream);
	tcase_add_test(session,
	    test_bytes_decrypted_but_not_yet_read_are_not_lost_waiting);
	tcase_add_test(session,
	    test_version_and_cipher_are_reported_after_handshake);
	tcase_add_test(session, test_version_and_cipher_are_null_without_tls);
	tcase_add_test(session, test_end_without_tls_leaves_io_alone);
	suite_add_tcase(s, session);

	tcase_add_checked_fixture(guard, setup, teardown);
	tcase_add_test(guard,
	    test_plaintext_pipelined_after_starttls_is_discarded);
	tcase_add_test(guard,
	    test_reply_buffered_before_start_goes_out_in_the_clear);
	tcase_add_test(guard,
	    test_handshake_times_out_promptly_when_client_is_silent);
	tcase_add_test(guard,
	    test_handshake_deadline_is_not_stretched_by_a_dripping_client);
	tcase_add_test(guard, test_tls_1_1_client_is_refused);
	tcase_add_test(guard, test_tls_1_2_client_is_accepted);
	tcase_add_test(guard, test_start_while_tls_is_active_is_refused);
	suite_add_tcase(s, guard);
	return s;
}

/* main - make test certificates, run the suite, clean up */
int
main(void)
{
	SRunner	*sr;
	int	 failed;

	/* OpenSSL writes with write(2); a closed peer must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	make_certs();
	sr = srunner_create(tls_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	remove_certs();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
