/*
 * test_config - unit tests of the configuration model and its two syntaxes
 * (common/config.c, config_ini.c, config_cfg.c).  Each test writes its
 * files into a fresh temporary folder and reads warnings back from a log
 * file there.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "config.h"
#include "log.h"

#define ERR_MAX		1024
#define LOG_TEXT_MAX	16384

static char	tmpdir[PATH_MAX];	/* realpath of this test's folder */
static char	logpath[PATH_MAX];

static void	 setup(void);
static void	 teardown(void);
static int	 remove_entry(const char *, const struct stat *, int,
		    struct FTW *);
static void	 file_path(char *, size_t, const char *);
static void	 write_file(const char *, const char *);
static struct config *load_ok(const char *, const char *);
static void	 expect_error(const char *, const char *, int, const char *);
static const char *log_text(void);
static const char *srcdir(void);
static void	 same_str(const char *, const char *, const char *);
static void	 same_list(const char *, char **, size_t, char **, size_t);
static void	 assert_account_equal(const struct account *,
		    const struct account *);
static void	 assert_config_equal(const struct config *,
		    const struct config *);
static Suite	*config_suite(void);

/* an INI file that sets every key to something other than its default */
static const char full_ini[] =
    "; every key set\n"
    "[config]\n"
    "port=2525\n"
    "sleeptime=10\n"
    "debuglevel=1\n"
    "waitafterpop=2\n"
    "deleteonerror=yes\n"
    "msgdir=spool\n"
    "listen=127.0.0.1, ::1\n"
    "hostname=mx.example.com\n"
    "processes=2\n"
    "maxprocesses=8\n"
    "maxconnectionsperchild=50\n"
    "maxmessagesize=10M\n"
    "maxrecipients=20\n"
    "timeout=60\n"
    "user=mail\n"
    "group=mail\n"
    "pidfile=run/smtpproxy.pid\n"
    "allow=127.0.0.0/8 10.0.0.0/8 ::1/128\n"
    "tlscert=certs/cert.pem\n"
    "tlskey=/etc/ssl/key.pem\n"
    "auth=optional\n"
    "retrymin=30\n"
    "retrymax=600\n"
    "queuelifetime=86400\n"
    "relayprocesses=2\n"
    "relaytimeout=120\n"
    "\n"
    "[logging]\n"
    "file=smtpproxy.log\n"
    "size=500k\n"
    "count=3\n"
    "level=DEBUG\n"
    "\n"
    "[foo@example.com]\n"
    "localhostname=client.example.com\n"
    "smtphost=smtp.example.com\n"
    "smtpport=587\n"
    "smtpsecurity=tls\n"
    "smtpusername=foo\n"
    "smtppassword=secret\n"
    "smtpweaktls=on\n"
    "tlsverify=false\n"
    "tlscafile=ca.pem\n"
    "popbeforesmtp=true\n"
    "pophost=pop.example.com\n"
    "popport=110\n"
    "popssl=off\n"
    "popusername=foopop\n"
    "poppassword=popsecret\n"
    "popcheckdelay=120\n"
    "returnpath=bounce@example.com\n"
    "replyto=Foo <foo@example.com>\n"
    "forcefrom=foo@example.com\n"
    "localpassword=$6$salt$hash\n"
    "\n"
    "[@example.org]\n"
    "smtphost=smtp.example.org\n"
    "smtpsecurity=ssl\n"
    "\n"
    "[bar@example.com]\n"
    "use=foo@example.com\n"
    "\n"
    "[default]\n"
    "smtphost=relay.example.net\n";

/* the same settings in libconfig syntax */
static const char full_cfg[] =
    "# every key set\n"
    "config = {\n"
    "  port = 2525;\n"
    "  sleeptime = 10;\n"
    "  debuglevel = 1;\n"
    "  waitafterpop = 2;\n"
    "  deleteonerror = true;\n"
    "  msgdir = \"spool\";\n"
    "  listen = [ \"127.0.0.1\", \"::1\" ];\n"
    "  hostname = \"mx.example.com\";\n"
    "  processes = 2;\n"
    "  maxprocesses = 8;\n"
    "  maxconnectionsperchild = 50;\n"
    "  maxmessagesize = 10485760;\n"
    "  maxrecipients = 20;\n"
    "  timeout = 60;\n"
    "  user = \"mail\";\n"
    "  group = \"mail\";\n"
    "  pidfile = \"run/smtpproxy.pid\";\n"
    "  allow = [ \"127.0.0.0/8\", \"10.0.0.0/8\", \"::1/128\" ];\n"
    "  tlscert = \"certs/cert.pem\";\n"
    "  tlskey = \"/etc/ssl/key.pem\";\n"
    "  auth = \"optional\";\n"
    "  retrymin = 30;\n"
    "  retrymax = 600;\n"
    "  queuelifetime = 86400;\n"
    "  relayprocesses = 2;\n"
    "  relaytimeout = 120;\n"
    "};\n"
    "logging = {\n"
    "  file = \"smtpproxy.log\";\n"
    "  size = \"500k\";\n"
    "  count = 3;\n"
    "  level = \"DEBUG\";\n"
    "};\n"
    "accounts = (\n"
    "  {\n"
    "    address = \"foo@example.com\";\n"
    "    localhostname = \"client.example.com\";\n"
    "    smtphost = \"smtp.example.com\";\n"
    "    smtpport = 587;\n"
    "    smtpsecurity = \"tls\";\n"
    "    smtpusername = \"foo\";\n"
    "    smtppassword = \"secret\";\n"
    "    smtpweaktls = true;\n"
    "    tlsverify = false;\n"
    "    tlscafile = \"ca.pem\";\n"
    "    popbeforesmtp = true;\n"
    "    pophost = \"pop.example.com\";\n"
    "    popport = 110;\n"
    "    popssl = false;\n"
    "    popusername = \"foopop\";\n"
    "    poppassword = \"popsecret\";\n"
    "    popcheckdelay = 120;\n"
    "    returnpath = \"bounce@example.com\";\n"
    "    replyto = \"Foo <foo@example.com>\";\n"
    "    forcefrom = \"foo@example.com\";\n"
    "    localpassword = \"$6$salt$hash\";\n"
    "  },\n"
    "  { address = \"@example.org\"; smtphost = \"smtp.example.org\";\n"
    "    smtpsecurity = \"ssl\"; },\n"
    "  { address = \"bar@example.com\"; use = \"foo@example.com\"; },\n"
    "  { address = \"default\"; smtphost = \"relay.example.net\"; }\n"
    ");\n";

/* accounts for the lookup tests */
static const char lookup_ini[] =
    "[Foo@example.com]\n"
    "smtphost=exact.example.com\n"
    "[@example.com]\n"
    "smtphost=domain.example.com\n"
    "[default]\n"
    "smtphost=default.example.com\n";

/* setup - a fresh folder, warnings logged to a file in it */
static void
setup(void)
{
	char	templ[] = "/tmp/test_config.XXXXXX";

	ck_assert_ptr_nonnull(mkdtemp(templ));
	ck_assert_ptr_nonnull(realpath(templ, tmpdir));
	file_path(logpath, sizeof(logpath), "warnings.log");
	ck_assert_int_eq(log_open(NULL, LOG_TO_FILE, logpath), 0);
}

/* teardown - back to stderr, the folder removed */
static void
teardown(void)
{
	log_open(NULL, LOG_TO_STDERR, NULL);
	nftw(tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* remove_entry - nftw callback removing one file or folder */
static int
remove_entry(const char *path, const struct stat *st, int type,
    struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

/* file_path - name inside the test folder */
static void
file_path(char *buf, size_t size, const char *name)
{
	ck_assert_int_lt(snprintf(buf, size, "%s/%s", tmpdir, name),
	    (int)size);
}

/* write_file - create name in the test folder with text */
static void
write_file(const char *name, const char *text)
{
	char	 path[PATH_MAX];
	FILE	*fp;

	file_path(path, sizeof(path), name);
	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	ck_assert_int_eq(fputs(text, fp) >= 0, 1);
	ck_assert_int_eq(fclose(fp), 0);
}

/* load_ok - write and load a file that must be accepted */
static struct config *
load_ok(const char *name, const char *text)
{
	char		 path[PATH_MAX], err[ERR_MAX] = "";
	struct config	*cfg = NULL;
	int		 rc;

	write_file(name, text);
	file_path(path, sizeof(path), name);
	rc = config_load(path, &cfg, err, sizeof(err));
	ck_assert_msg(rc == 0, "config_load failed: %s", err);
	ck_assert_ptr_nonnull(cfg);
	return cfg;
}

/* expect_error - write and load a file that fails with exactly this error */
static void
expect_error(const char *name, const char *text, int line, const char *msg)
{
	char		 path[PATH_MAX], err[ERR_MAX] = "";
	char		 want[PATH_MAX + ERR_MAX];
	struct config	*cfg = NULL;
	int		 rc;

	write_file(name, text);
	file_path(path, sizeof(path), name);
	rc = config_load(path, &cfg, err, sizeof(err));
	ck_assert_int_eq(rc, -1);
	ck_assert_ptr_null(cfg);
	snprintf(want, sizeof(want), "%s:%d: %s", path, line, msg);
	ck_assert_str_eq(err, want);
}

/* log_text - what was logged so far */
static const char *
log_text(void)
{
	static char	 buf[LOG_TEXT_MAX];
	FILE		*fp;
	size_t		 n;

	ck_assert_ptr_nonnull(fp = fopen(logpath, "r"));
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

/* srcdir - the top of the source tree, for the example files */
static const char *
srcdir(void)
{
	static char	 top[PATH_MAX];
	char		*cut;

	if (getenv("SRCDIR") != NULL)
		return getenv("SRCDIR");
	if (access("etc/smtpproxy.ini", R_OK) == 0)
		return ".";
	/* The binary lives in <top>/build/<variant>/test/. */
	if (realpath("/proc/self/exe", top) != NULL &&
	    (cut = strstr(top, "/build/")) != NULL) {
		*cut = '\0';
		return top;
	}
	return ".";
}

/* same_str - two optional strings are equal */
static void
same_str(const char *what, const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		ck_assert_msg(a == b, "%s: '%s' vs '%s'", what,
		    a ? a : "(null)", b ? b : "(null)");
	else
		ck_assert_msg(strcmp(a, b) == 0, "%s: '%s' vs '%s'", what, a,
		    b);
}

/* same_list - two string lists are equal */
static void
same_list(const char *what, char **a, size_t na, char **b, size_t nb)
{
	ck_assert_msg(na == nb, "%s: %zu vs %zu items", what, na, nb);
	for (size_t i = 0; i < na; i++)
		same_str(what, a[i], b[i]);
}

#define SAME_INT(a, b, f) \
	ck_assert_msg((a)->f == (b)->f, #f ": %ld vs %ld", (long)(a)->f, \
	    (long)(b)->f)
#define SAME_STR(a, b, f)	same_str(#f, (a)->f, (b)->f)

/* assert_account_equal - every field but the line (syntax-dependent) */
static void
assert_account_equal(const struct account *a, const struct account *b)
{
	SAME_STR(a, b, name);
	SAME_STR(a, b, use);
	same_str("target", a->target->name, b->target->name);
	SAME_STR(a, b, localhostname);
	SAME_STR(a, b, smtphost);
	SAME_INT(a, b, smtpport);
	SAME_INT(a, b, smtpsecurity);
	SAME_STR(a, b, smtpusername);
	SAME_STR(a, b, smtppassword);
	SAME_INT(a, b, smtpweaktls);
	SAME_INT(a, b, tlsverify);
	SAME_STR(a, b, tlscafile);
	SAME_INT(a, b, popbeforesmtp);
	SAME_STR(a, b, pophost);
	SAME_INT(a, b, popport);
	SAME_INT(a, b, popssl);
	SAME_STR(a, b, popusername);
	SAME_STR(a, b, poppassword);
	SAME_INT(a, b, popcheckdelay);
	SAME_STR(a, b, returnpath);
	SAME_STR(a, b, replyto);
	SAME_STR(a, b, forcefrom);
	SAME_STR(a, b, localpassword);
	SAME_INT(a, b, smtpauth);
	SAME_INT(a, b, oauthprovider);
	SAME_INT(a, b, oauthflow);
	SAME_STR(a, b, oauthtenant);
	SAME_STR(a, b, oauthclientid);
	SAME_STR(a, b, oauthclientsecret);
	SAME_STR(a, b, oauthclientsecretfile);
	SAME_STR(a, b, oauthtokenurl);
	SAME_STR(a, b, oauthauthurl);
	SAME_STR(a, b, oauthdeviceurl);
	SAME_STR(a, b, oauthscope);
	SAME_STR(a, b, oauthtokenfile);
	SAME_STR(a, b, oauthtokencommand);
}

/* assert_config_equal - every field but the file's own name */
static void
assert_config_equal(const struct config *a, const struct config *b)
{
	SAME_STR(a, b, dir);
	SAME_INT(a, b, port);
	SAME_INT(a, b, sleeptime);
	SAME_INT(a, b, debuglevel);
	SAME_INT(a, b, waitafterpop);
	SAME_INT(a, b, deleteonerror);
	SAME_STR(a, b, msgdir);
	same_list("listen", a->listen, a->nlisten, b->listen, b->nlisten);
	SAME_STR(a, b, hostname);
	SAME_INT(a, b, processes);
	SAME_INT(a, b, maxprocesses);
	SAME_INT(a, b, maxconnectionsperchild);
	SAME_INT(a, b, maxmessagesize);
	SAME_INT(a, b, maxrecipients);
	SAME_INT(a, b, timeout);
	SAME_STR(a, b, user);
	SAME_STR(a, b, group);
	SAME_STR(a, b, pidfile);
	same_list("allow", a->allow, a->nallow, b->allow, b->nallow);
	SAME_STR(a, b, tlscert);
	SAME_STR(a, b, tlskey);
	SAME_INT(a, b, auth);
	SAME_INT(a, b, retrymin);
	SAME_INT(a, b, retrymax);
	SAME_INT(a, b, queuelifetime);
	SAME_INT(a, b, relayprocesses);
	SAME_INT(a, b, relaytimeout);
	SAME_STR(a, b, logfile);
	SAME_INT(a, b, logsize);
	SAME_INT(a, b, logcount);
	SAME_INT(a, b, loglevel);
	SAME_INT(a, b, naccounts);
	for (size_t i = 0; i < a->naccounts; i++)
		assert_account_equal(&a->accounts[i], &b->accounts[i]);
}

START_TEST(test_empty_file_gives_every_default)
{
	struct config	*cfg = load_ok("t.ini", "");
	char		 msgdir[PATH_MAX];

	file_path(msgdir, sizeof(msgdir), "msgs");
	ck_assert_int_eq(cfg->port, 25);
	ck_assert_int_eq(cfg->sleeptime, 30);
	ck_assert_int_eq(cfg->debuglevel, 0);
	ck_assert_int_eq(cfg->waitafterpop, 5);
	ck_assert(!cfg->deleteonerror);
	ck_assert_str_eq(cfg->msgdir, msgdir);
	ck_assert_uint_eq(cfg->nlisten, 1);
	ck_assert_str_eq(cfg->listen[0], "127.0.0.1");
	ck_assert_ptr_nonnull(cfg->hostname);
	ck_assert(cfg->hostname[0] != '\0');
	ck_assert_int_eq(cfg->processes, 4);
	ck_assert_int_eq(cfg->maxprocesses, 16);
	ck_assert_int_eq(cfg->maxconnectionsperchild, 1000);
	ck_assert_int_eq(cfg->maxmessagesize, 26214400);
	ck_assert_int_eq(cfg->maxrecipients, 100);
	ck_assert_int_eq(cfg->timeout, 300);
	ck_assert_ptr_null(cfg->user);
	ck_assert_ptr_null(cfg->group);
	ck_assert_ptr_null(cfg->pidfile);
	ck_assert_uint_eq(cfg->nallow, 2);
	ck_assert_str_eq(cfg->allow[0], "127.0.0.0/8");
	ck_assert_str_eq(cfg->allow[1], "::1/128");
	ck_assert_ptr_null(cfg->tlscert);
	ck_assert_ptr_null(cfg->tlskey);
	ck_assert_int_eq(cfg->auth, CLIENT_AUTH_OFF);
	ck_assert_int_eq(cfg->retrymin, 60);
	ck_assert_int_eq(cfg->retrymax, 3600);
	ck_assert_int_eq(cfg->queuelifetime, 432000);
	ck_assert_int_eq(cfg->relayprocesses, 4);
	ck_assert_int_eq(cfg->relaytimeout, 300);
	ck_assert_ptr_null(cfg->logfile);
	ck_assert_int_eq(cfg->logsize, 1000000);
	ck_assert_int_eq(cfg->logcount, 10);
	ck_assert_int_eq(cfg->loglevel, LOG_LEVEL_INFO);
	ck_assert_uint_eq(cfg->naccounts, 0);
	ck_assert_str_eq(cfg->dir, tmpdir);
	config_free(cfg);
}
END_TEST

START_TEST(test_empty_libconfig_file_gives_the_same_defaults)
{
	struct config	*ini = load_ok("t.ini", "");
	struct config	*cfg = load_ok("t.conf", "");

	assert_config_equal(ini, cfg);
	config_free(ini);
	config_free(cfg);
}
END_TEST

START_TEST(test_account_gets_every_default)
{
	struct config		*cfg = load_ok("t.ini",
	    "[foo@example.com]\nsmtphost=smtp.example.com\n");
	const struct account	*a = &cfg->accounts[0];

	ck_assert_uint_eq(cfg->naccounts, 1);
	ck_assert_str_eq(a->name, "foo@example.com");
	ck_assert_int_eq(a->line, 1);
	ck_assert_ptr_null(a->use);
	ck_assert_ptr_eq(a->target, a);
	ck_assert_ptr_null(a->localhostname);
	ck_assert_str_eq(a->smtphost, "smtp.example.com");
	ck_assert_int_eq(a->smtpport, 0);
	ck_assert_int_eq(a->smtpsecurity, SECURITY_NONE);
	ck_assert_ptr_null(a->smtpusername);
	ck_assert_ptr_null(a->smtppassword);
	ck_assert(!a->smtpweaktls);
	ck_assert(a->tlsverify);
	ck_assert_ptr_null(a->tlscafile);
	ck_assert(!a->popbeforesmtp);
	ck_assert_ptr_null(a->pophost);
	ck_assert_int_eq(a->popport, 995);
	ck_assert(a->popssl);
	ck_assert_ptr_null(a->popusername);
	ck_assert_ptr_null(a->poppassword);
	ck_assert_int_eq(a->popcheckdelay, 60);
	ck_assert_ptr_null(a->returnpath);
	ck_assert_ptr_null(a->replyto);
	ck_assert_ptr_null(a->forcefrom);
	ck_assert_ptr_null(a->localpassword);
	config_free(cfg);
}
END_TEST

START_TEST(test_both_syntaxes_give_the_same_model)
{
	struct config	*ini = load_ok("t.ini", full_ini);
	struct config	*cfg = load_ok("t.conf", full_cfg);

	assert_config_equal(ini, cfg);
	/* and the values are the ones written, not defaults */
	ck_assert_int_eq(cfg->port, 2525);
	ck_assert_int_eq(cfg->maxmessagesize, 10L * 1024 * 1024);
	ck_assert_int_eq(cfg->logsize, 500L * 1024);
	ck_assert_uint_eq(cfg->nlisten, 2);
	ck_assert_str_eq(cfg->listen[1], "::1");
	ck_assert_uint_eq(cfg->nallow, 3);
	ck_assert_int_eq(cfg->auth, CLIENT_AUTH_OPTIONAL);
	ck_assert_int_eq(cfg->loglevel, LOG_LEVEL_DEBUG);
	ck_assert_uint_eq(cfg->naccounts, 4);
	ck_assert_int_eq(cfg->accounts[0].smtpsecurity, SECURITY_TLS);
	ck_assert(!cfg->accounts[0].popssl);
	ck_assert_str_eq(cfg->accounts[0].localpassword, "$6$salt$hash");
	ck_assert_ptr_eq(cfg->accounts[2].target, &cfg->accounts[0]);
	config_free(ini);
	config_free(cfg);
}
END_TEST

START_TEST(test_example_files_load_and_agree)
{
	char		 ini_path[PATH_MAX], cfg_path[PATH_MAX], err[ERR_MAX];
	struct config	*ini = NULL, *cfg = NULL;

	snprintf(ini_path, sizeof(ini_path), "%s/etc/smtpproxy.ini",
	    srcdir());
	snprintf(cfg_path, sizeof(cfg_path), "%s/etc/smtpproxy.conf",
	    srcdir());
	ck_assert_msg(config_load(ini_path, &ini, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_msg(config_load(cfg_path, &cfg, err, sizeof(err)) == 0,
	    "%s", err);
	assert_config_equal(ini, cfg);
	ck_assert_ptr_nonnull(account_find(ini, ACCOUNT_DEFAULT_NAME));
	config_free(ini);
	config_free(cfg);
}
END_TEST

START_TEST(test_use_chain_is_followed_to_its_end)
{
	struct config	*cfg = load_ok("t.ini",
	    "[a@example.com]\nuse=b@example.com\n"
	    "[b@example.com]\nuse=c@example.com\n"
	    "[c@example.com]\nsmtphost=smtp.example.com\n");

	ck_assert_ptr_eq(cfg->accounts[0].target, &cfg->accounts[2]);
	ck_assert_ptr_eq(cfg->accounts[1].target, &cfg->accounts[2]);
	ck_assert_ptr_eq(account_lookup(cfg, "a@example.com"),
	    &cfg->accounts[2]);
	ck_assert_ptr_eq(account_find(cfg, "a@example.com"),
	    &cfg->accounts[0]);
	config_free(cfg);
}
END_TEST

START_TEST(test_use_loop_is_refused_with_its_line)
{
	expect_error("t.ini",
	    "[a@example.com]\n"
	    "use=b@example.com\n"
	    "[b@example.com]\n"
	    "use=a@example.com\n", 2,
	    "use= loop: [a@example.com] -> [b@example.com] -> [a@example.com]");
}
END_TEST

START_TEST(test_use_of_itself_is_a_loop)
{
	expect_error("t.conf",
	    "accounts = (\n"
	    "  { address = \"a@example.com\";\n"
	    "    use = \"a@example.com\"; }\n"
	    ");\n", 3,
	    "use= loop: [a@example.com] -> [a@example.com]");
}
END_TEST

START_TEST(test_use_of_a_missing_account_names_its_line)
{
	expect_error("t.ini",
	    "[a@example.com]\n"
	    "\n"
	    "use=nobody@example.com\n", 3,
	    "use=nobody@example.com in [a@example.com]: there is no account "
	    "of that name");
}
END_TEST

START_TEST(test_lookup_takes_the_exact_address_first)
{
	struct config	*cfg = load_ok("t.ini", lookup_ini);

	ck_assert_str_eq(account_lookup(cfg, "Foo@example.com")->smtphost,
	    "exact.example.com");
	config_free(cfg);
}
END_TEST

START_TEST(test_lookup_takes_the_domain_next)
{
	struct config	*cfg = load_ok("t.ini", lookup_ini);

	ck_assert_str_eq(account_lookup(cfg, "bar@example.com")->smtphost,
	    "domain.example.com");
	config_free(cfg);
}
END_TEST

START_TEST(test_lookup_takes_default_last)
{
	struct config	*cfg = load_ok("t.ini", lookup_ini);

	ck_assert_str_eq(account_lookup(cfg, "bar@example.net")->smtphost,
	    "default.example.com");
	ck_assert_str_eq(account_lookup(cfg, "")->smtphost,
	    "default.example.com");
	config_free(cfg);
}
END_TEST

START_TEST(test_lookup_domain_is_case_insensitive)
{
	struct config	*cfg = load_ok("t.ini", lookup_ini);

	ck_assert_str_eq(account_lookup(cfg, "Foo@EXAMPLE.Com")->smtphost,
	    "exact.example.com");
	ck_assert_str_eq(account_lookup(cfg, "bar@Example.COM")->smtphost,
	    "domain.example.com");
	config_free(cfg);
}
END_TEST

START_TEST(test_lookup_local_part_is_case_sensitive)
{
	struct config	*cfg = load_ok("t.ini", lookup_ini);

	ck_assert_str_eq(account_lookup(cfg, "foo@example.com")->smtphost,
	    "domain.example.com");
	config_free(cfg);
}
END_TEST

START_TEST(test_lookup_without_default_finds_nothing)
{
	struct config	*cfg = load_ok("t.ini",
	    "[foo@example.com]\nsmtphost=smtp.example.com\n");

	ck_assert_ptr_null(account_lookup(cfg, "bar@example.com"));
	config_free(cfg);
}
END_TEST

START_TEST(test_no_accounts_at_all_is_allowed)
{
	struct config	*cfg = load_ok("t.ini", "[config]\nport=2525\n");

	ck_assert_uint_eq(cfg->naccounts, 0);
	ck_assert_ptr_null(account_lookup(cfg, "foo@example.com"));
	config_free(cfg);
}
END_TEST

START_TEST(test_missing_smtphost_names_the_section_line)
{
	expect_error("t.ini",
	    "[config]\n"
	    "port=25\n"
	    "[foo@example.com]\n"
	    "smtpport=587\n", 3,
	    "account [foo@example.com] has no smtphost");
}
END_TEST

START_TEST(test_empty_section_still_needs_smtphost)
{
	expect_error("t.ini",
	    "[foo@example.com]\n"
	    "smtphost=smtp.example.com\n"
	    "[bar@example.com]\n", 3,
	    "account [bar@example.com] has no smtphost");
}
END_TEST

START_TEST(test_unknown_enum_value_names_its_line)
{
	expect_error("t.ini",
	    "[foo@example.com]\n"
	    "smtphost=smtp.example.com\n"
	    "smtpsecurity=TLS\n", 3,
	    "'TLS' is not a valid value for key 'smtpsecurity' "
	    "(use none, tls or ssl)");
}
END_TEST

START_TEST(test_bad_boolean_names_its_line)
{
	expect_error("t.ini",
	    "[foo@example.com]\n"
	    "smtphost=smtp.example.com\n"
	    "popssl=maybe\n", 3,
	    "'maybe' is not a boolean for key 'popssl' (use true or false)");
}
END_TEST

START_TEST(test_number_with_trailing_letters_names_its_line)
{
	expect_error("t.ini", "[config]\nport=25x\n", 2,
	    "'25x' is not a number for key 'port'");
}
END_TEST

START_TEST(test_number_out_of_range_names_its_line)
{
	expect_error("t.ini", "[config]\n\nport=70000\n", 3,
	    "70000 is out of range for key 'port' (1..65535)");
}
END_TEST

START_TEST(test_libconfig_bad_value_names_its_line)
{
	expect_error("t.conf",
	    "config = {\n"
	    "  port = 25;\n"
	    "  deleteonerror = \"maybe\";\n"
	    "};\n", 3,
	    "'maybe' is not a boolean for key 'deleteonerror' "
	    "(use true or false)");
}
END_TEST

START_TEST(test_configparser_boolean_words_are_accepted)
{
	struct config	*cfg = load_ok("t.ini",
	    "[a@x.org]\nsmtphost=h\ntlsverify=NO\nsmtpweaktls=Yes\n"
	    "[b@x.org]\nsmtphost=h\ntlsverify=off\nsmtpweaktls=ON\n"
	    "[c@x.org]\nsmtphost=h\ntlsverify=0\nsmtpweaktls=1\n"
	    "[d@x.org]\nsmtphost=h\ntlsverify=False\nsmtpweaktls=TRUE\n");

	for (size_t i = 0; i < cfg->naccounts; i++) {
		ck_assert(!cfg->accounts[i].tlsverify);
		ck_assert(cfg->accounts[i].smtpweaktls);
	}
	config_free(cfg);
}
END_TEST

START_TEST(test_level_names_are_uppercase_only)
{
	expect_error("t.ini", "[logging]\nlevel=info\n", 2,
	    "'info' is not a valid value for key 'level' "
	    "(use DEBUG, INFO, WARNING, ERROR or NONE)");
}
END_TEST

START_TEST(test_level_none_keeps_only_critical_lines)
{
	struct config	*cfg = load_ok("t.ini", "[logging]\nlevel=NONE\n");

	ck_assert_int_eq(cfg->loglevel, LOG_LEVEL_NONE);
	config_free(cfg);
}
END_TEST

START_TEST(test_unknown_key_is_a_warning_not_an_error)
{
	char		 want[PATH_MAX + 128];
	struct config	*cfg = load_ok("t.ini",
	    "[config]\nport=2525\nfoo=bar\n");

	snprintf(want, sizeof(want), "%s/t.ini:3: unknown key 'foo' in "
	    "[config], ignored", tmpdir);
	ck_assert_int_eq(cfg->port, 2525);
	ck_assert_ptr_nonnull(strstr(log_text(), want));
	config_free(cfg);
}
END_TEST

START_TEST(test_global_key_in_an_account_is_an_unknown_key)
{
	char		 want[PATH_MAX + 128];
	struct config	*cfg = load_ok("t.ini",
	    "[foo@example.com]\nsmtphost=h\nport=2525\n");

	snprintf(want, sizeof(want), "%s/t.ini:3: unknown key 'port' in "
	    "[foo@example.com], ignored", tmpdir);
	ck_assert_int_eq(cfg->port, 25);
	ck_assert_ptr_nonnull(strstr(log_text(), want));
	config_free(cfg);
}
END_TEST

START_TEST(test_retired_smtptls_is_a_warning)
{
	char		 want[PATH_MAX + 128];
	struct config	*cfg = load_ok("t.ini",
	    "[foo@example.com]\nsmtphost=h\nsmtptls=true\n");

	snprintf(want, sizeof(want), "%s/t.ini:3: retired key 'smtptls' in "
	    "[foo@example.com], ignored", tmpdir);
	ck_assert_ptr_nonnull(strstr(log_text(), want));
	config_free(cfg);
}
END_TEST

START_TEST(test_key_given_twice_last_one_wins_with_a_warning)
{
	char		 want[PATH_MAX + 128];
	struct config	*cfg = load_ok("t.ini",
	    "[config]\nport=2525\nport=2526\n");

	snprintf(want, sizeof(want), "%s/t.ini:3: key 'port' given again in "
	    "[config] (first at line 2), the last one wins", tmpdir);
	ck_assert_int_eq(cfg->port, 2526);
	ck_assert_ptr_nonnull(strstr(log_text(), want));
	config_free(cfg);
}
END_TEST

START_TEST(test_section_given_twice_is_merged)
{
	struct config	*cfg = load_ok("t.ini",
	    "[foo@example.com]\nsmtphost=h\n"
	    "[config]\nport=2525\n"
	    "[foo@example.com]\nsmtpport=587\n");

	ck_assert_uint_eq(cfg->naccounts, 1);
	ck_assert_str_eq(cfg->accounts[0].smtphost, "h");
	ck_assert_int_eq(cfg->accounts[0].smtpport, 587);
	ck_assert_ptr_nonnull(strstr(log_text(), "given again"));
	config_free(cfg);
}
END_TEST

START_TEST(test_keys_are_case_insensitive)
{
	struct config	*cfg = load_ok("t.ini",
	    "[config]\nPort=2525\nMaxMessageSize=1000\n");

	ck_assert_int_eq(cfg->port, 2525);
	ck_assert_int_eq(cfg->maxmessagesize, 1000);
	config_free(cfg);
}
END_TEST

START_TEST(test_colon_assignment_is_accepted)
{
	struct config	*cfg = load_ok("t.ini", "[config]\nport: 2525\n");

	ck_assert_int_eq(cfg->port, 2525);
	config_free(cfg);
}
END_TEST

START_TEST(test_semicolon_inside_a_value_is_not_a_comment)
{
	struct config	*cfg = load_ok("t.ini",
	    "; a comment\n# another\n"
	    "[foo@example.com]\nsmtphost=h\n"
	    "smtpusername=foo ;bar\nsmtppassword=pa;ss #x\n");

	ck_assert_str_eq(cfg->accounts[0].smtpusername, "foo ;bar");
	ck_assert_str_eq(cfg->accounts[0].smtppassword, "pa;ss #x");
	config_free(cfg);
}
END_TEST

START_TEST(test_key_outside_any_section_is_an_error)
{
	expect_error("t.ini", "\nport=25\n[config]\n", 2,
	    "key 'port' outside of any section");
}
END_TEST

START_TEST(test_ini_syntax_error_names_its_line)
{
	expect_error("t.ini", "[config]\nport=25\nthis is not ini\n", 3,
	    "syntax error");
}
END_TEST

START_TEST(test_unclosed_section_name_is_a_syntax_error)
{
	expect_error("t.ini", "[config]\n[foo@example.com\n", 2,
	    "syntax error (no ']' closes the section name)");
}
END_TEST

START_TEST(test_libconfig_syntax_error_names_its_line)
{
	expect_error("t.conf", "config = {\n  port = ;\n};\n", 2,
	    "syntax error");
}
END_TEST

START_TEST(test_missing_file_cannot_be_opened)
{
	char		 path[PATH_MAX], want[PATH_MAX + 64], err[ERR_MAX];
	struct config	*cfg = NULL;

	file_path(path, sizeof(path), "missing.ini");
	ck_assert_int_eq(config_load(path, &cfg, err, sizeof(err)), -1);
	ck_assert_ptr_null(cfg);
	snprintf(want, sizeof(want), "%s: cannot open: %s", path,
	    strerror(ENOENT));
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_angle_brackets_are_stripped_from_section_names)
{
	struct config	*cfg = load_ok("t.ini",
	    "[foo@example.com]\nsmtphost=h\n"
	    "[bar@example.com>]\nuse=foo@example.com\n"
	    "[<baz@example.com>]\nuse=foo@example.com\n");

	ck_assert_ptr_nonnull(account_find(cfg, "bar@example.com"));
	ck_assert_ptr_nonnull(account_find(cfg, "baz@example.com"));
	ck_assert_ptr_nonnull(strstr(log_text(), "t.ini:3: angle brackets "
	    "removed from section name 'bar@example.com>'"));
	config_free(cfg);
}
END_TEST

START_TEST(test_long_section_name_is_kept_whole)
{
	static const char	name[] = "a.very.long.local.part.that.goes.on"
	    "@a.very.long.domain.name.example.com";
	char			text[512];
	struct config		*cfg;

	snprintf(text, sizeof(text), "[%s]\nsmtphost=h\n", name);
	cfg = load_ok("t.ini", text);
	ck_assert_str_eq(cfg->accounts[0].name, name);
	config_free(cfg);
}
END_TEST

START_TEST(test_line_of_the_limit_is_accepted)
{
	size_t		 vlen = CONFIG_LINE_MAX - strlen("replyto=");
	char		*text = malloc(CONFIG_LINE_MAX + 64);
	struct config	*cfg;

	strcpy(text, "[foo@example.com]\nsmtphost=h\nreplyto=");
	memset(text + strlen(text), 'x', vlen);
	strcpy(text + strlen("[foo@example.com]\nsmtphost=h\nreplyto=") +
	    vlen, "\r\n");
	cfg = load_ok("t.ini", text);
	ck_assert_uint_eq(strlen(cfg->accounts[0].replyto), vlen);
	config_free(cfg);
	free(text);
}
END_TEST

START_TEST(test_overlong_line_is_an_error_with_its_line)
{
	char	*text = malloc(CONFIG_LINE_MAX + 64);
	char	 msg[64];
	size_t	 len;

	strcpy(text, "[foo@example.com]\nsmtphost=h\nreplyto=");
	len = strlen(text);
	memset(text + len, 'x', CONFIG_LINE_MAX);
	strcpy(text + len + CONFIG_LINE_MAX, "\n");
	snprintf(msg, sizeof(msg), "line longer than %d bytes",
	    CONFIG_LINE_MAX);
	expect_error("t.ini", text, 3, msg);
	free(text);
}
END_TEST

START_TEST(test_relative_msgdir_is_resolved_against_the_config_folder)
{
	char		 cwd[PATH_MAX], want[PATH_MAX + 16];
	struct config	*cfg;
	char		 err[ERR_MAX];

	write_file("t.ini", "[config]\nmsgdir=spool\n");
	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
	ck_assert_int_eq(chdir(tmpdir), 0);
	ck_assert_int_eq(config_load("t.ini", &cfg, err, sizeof(err)), 0);
	ck_assert_int_eq(chdir("/"), 0);
	snprintf(want, sizeof(want), "%s/spool", tmpdir);
	ck_assert_str_eq(cfg->msgdir, want);
	ck_assert_str_eq(cfg->dir, tmpdir);
	config_free(cfg);
	ck_assert_int_eq(chdir(cwd), 0);
}
END_TEST

START_TEST(test_relative_paths_are_resolved_against_the_config_folder)
{
	struct config	*cfg = load_ok("t.ini", full_ini);
	char		 want[PATH_MAX + 32];

	snprintf(want, sizeof(want), "%s/smtpproxy.log", tmpdir);
	ck_assert_str_eq(cfg->logfile, want);
	snprintf(want, sizeof(want), "%s/certs/cert.pem", tmpdir);
	ck_assert_str_eq(cfg->tlscert, want);
	ck_assert_str_eq(cfg->tlskey, "/etc/ssl/key.pem");
	snprintf(want, sizeof(want), "%s/run/smtpproxy.pid", tmpdir);
	ck_assert_str_eq(cfg->pidfile, want);
	snprintf(want, sizeof(want), "%s/ca.pem", tmpdir);
	ck_assert_str_eq(cfg->accounts[0].tlscafile, want);
	config_free(cfg);
}
END_TEST

START_TEST(test_empty_value_restores_the_default)
{
	struct config	*cfg = load_ok("t.ini", "[config]\nmsgdir=\nlisten=\n");
	char		 want[PATH_MAX];

	file_path(want, sizeof(want), "msgs");
	ck_assert_str_eq(cfg->msgdir, want);
	ck_assert_uint_eq(cfg->nlisten, 1);
	ck_assert_str_eq(cfg->listen[0], "127.0.0.1");
	config_free(cfg);
}
END_TEST

START_TEST(test_account_port_follows_the_security_mode)
{
	struct config	*cfg = load_ok("t.ini",
	    "[a@x.org]\nsmtphost=h\n"
	    "[b@x.org]\nsmtphost=h\nsmtpsecurity=tls\n"
	    "[c@x.org]\nsmtphost=h\nsmtpsecurity=ssl\n"
	    "[d@x.org]\nsmtphost=h\nsmtpsecurity=ssl\nsmtpport=2465\n");

	ck_assert_int_eq(account_port(&cfg->accounts[0]), 25);
	ck_assert_int_eq(account_port(&cfg->accounts[1]), 25);
	ck_assert_int_eq(account_port(&cfg->accounts[2]), 465);
	ck_assert_int_eq(account_port(&cfg->accounts[3]), 2465);
	config_free(cfg);
}
END_TEST

START_TEST(test_popbeforesmtp_without_pophost_is_an_error)
{
	expect_error("t.ini",
	    "[foo@example.com]\n"
	    "smtphost=h\n"
	    "popbeforesmtp=true\n"
	    "popusername=u\n"
	    "poppassword=p\n", 3,
	    "popbeforesmtp is on in [foo@example.com] but pophost is not set");
}
END_TEST

START_TEST(test_username_without_password_is_an_error)
{
	expect_error("t.ini",
	    "[foo@example.com]\n"
	    "smtphost=h\n"
	    "smtpusername=foo\n", 3,
	    "smtpusername is set in [foo@example.com] but smtppassword is not");
}
END_TEST

START_TEST(test_password_never_appears_in_messages)
{
	char		 path[PATH_MAX], err[ERR_MAX];
	struct config	*cfg = NULL;

	cfg = load_ok("t.ini", "[foo@example.com]\nsmtphost=h\n"
	    "smtpusername=u\nsmtppassword=hunter2\nsmtppassword=hunter3\n");
	config_free(cfg);
	cfg = NULL;
	write_file("u.ini", "[foo@example.com]\nsmtphost=h\n"
	    "smtpusername=u\nsmtppassword=hunter\x01" "4\n");
	file_path(path, sizeof(path), "u.ini");
	ck_assert_int_eq(config_load(path, &cfg, err, sizeof(err)), -1);
	ck_assert_ptr_null(strstr(err, "hunter"));
	ck_assert_ptr_null(strstr(log_text(), "hunter"));
	ck_assert_ptr_nonnull(strstr(err, "control character"));
}
END_TEST

START_TEST(test_returnpath_must_be_a_mailbox)
{
	expect_error("t.ini",
	    "[foo@example.com]\n"
	    "smtphost=h\n"
	    "returnpath=<bounce@example.com>\n", 3,
	    "'<bounce@example.com>' is not a mail address for key 'returnpath' "
	    "(use local@domain)");
}
END_TEST

START_TEST(test_maxprocesses_follows_a_large_processes)
{
	struct config	*cfg = load_ok("t.ini", "[config]\nprocesses=32\n");

	ck_assert_int_eq(cfg->maxprocesses, 32);
	config_free(cfg);
}
END_TEST

START_TEST(test_maxprocesses_below_processes_is_an_error)
{
	expect_error("t.ini", "[config]\nmaxprocesses=2\nprocesses=3\n", 2,
	    "maxprocesses (2) is less than processes (3)");
}
END_TEST

START_TEST(test_retrymax_below_retrymin_is_an_error)
{
	expect_error("t.ini", "[config]\nretrymin=600\nretrymax=60\n", 3,
	    "retrymax (60) is less than retrymin (600)");
}
END_TEST

START_TEST(test_tlscert_without_tlskey_is_an_error)
{
	expect_error("t.ini", "[config]\ntlscert=cert.pem\n", 2,
	    "tlscert is set but tlskey is not: give both or neither");
}
END_TEST

START_TEST(test_allow_network_prefix_is_checked)
{
	expect_error("t.ini", "[config]\nallow=10.0.0.0/33\n", 2,
	    "'10.0.0.0/33' is not a network (address or address/prefix) "
	    "for key 'allow'");
}
END_TEST

START_TEST(test_listen_takes_ip_addresses_only)
{
	expect_error("t.ini", "[config]\nlisten=127.0.0.1,localhost\n", 2,
	    "'localhost' is not an IP address for key 'listen'");
}
END_TEST

START_TEST(test_size_takes_k_and_m_suffixes)
{
	struct config	*cfg = load_ok("t.ini",
	    "[config]\nmaxmessagesize=2M\n[logging]\nsize=64k\n");

	ck_assert_int_eq(cfg->maxmessagesize, 2L * 1024 * 1024);
	ck_assert_int_eq(cfg->logsize, 64L * 1024);
	config_free(cfg);
}
END_TEST

START_TEST(test_libconfig_account_without_address_is_an_error)
{
	expect_error("t.conf",
	    "accounts = (\n"
	    "  { smtphost = \"h\"; }\n"
	    ");\n", 2,
	    "account without an address (address = \"foo@example.com\";)");
}
END_TEST

START_TEST(test_libconfig_unknown_key_is_a_warning)
{
	char		 want[PATH_MAX + 128];
	struct config	*cfg = load_ok("t.conf",
	    "config = {\n  port = 2525;\n  colour = \"blue\";\n};\n");

	snprintf(want, sizeof(want), "%s/t.conf:3: unknown key 'colour' in "
	    "[config], ignored", tmpdir);
	ck_assert_int_eq(cfg->port, 2525);
	ck_assert_ptr_nonnull(strstr(log_text(), want));
	config_free(cfg);
}
END_TEST

START_TEST(test_python_smtpproxy_file_loads_unchanged)
{
	struct config	*cfg = load_ok("smtpproxy.ini",
	    "[config]\nport=25\nsleeptime=30\nwaitafterpop=5\ndebuglevel=0\n"
	    "deleteonerror=true\n\n"
	    "[logging]\nfile=smtpproxy.log\nsize=1000000\ncount=10\n"
	    "level=INFO\n\n"
	    "[me@home.example]\nlocalhostname=home.example\n"
	    "smtphost=smtp.isp.example\nsmtpport=25\nsmtptls=true\n"
	    "smtpusername=me\nsmtppassword=pw\npopbeforesmtp=true\n"
	    "pophost=pop.isp.example\npopport=995\npopssl=true\n"
	    "popusername=me\npoppassword=pw\npopcheckdelay=60\n\n"
	    "[you@home.example>]\nuse=me@home.example\n");

	ck_assert(cfg->deleteonerror);
	ck_assert_uint_eq(cfg->naccounts, 2);
	ck_assert_ptr_eq(account_lookup(cfg, "you@home.example"),
	    &cfg->accounts[0]);
	ck_assert_ptr_nonnull(strstr(log_text(), "retired key 'smtptls'"));
	config_free(cfg);
}
END_TEST

/* OAuth 2.0 upstream login (smtpauth=xoauth2) */

/* an xoauth2 account with every oauth key, in both syntaxes */
static const char oauth_ini[] =
    "[app@example.com]\n"
    "smtphost=smtp.office365.com\n"
    "smtpport=587\n"
    "smtpsecurity=tls\n"
    "smtpusername=app@example.com\n"
    "smtpauth=xoauth2\n"
    "oauthprovider=microsoft\n"
    "oauthflow=authcode\n"
    "oauthtenant=contoso.onmicrosoft.com\n"
    "oauthclientid=0b6d3b1c-5f6e-4c3a-9d52-1c2e3f4a5b6c\n"
    "oauthclientsecretfile=secret.txt\n"
    "oauthtokenurl=https://login.example.com/token\n"
    "oauthauthurl=https://login.example.com/authorize?p=1\n"
    "oauthdeviceurl=http://127.0.0.1:8080/device\n"
    "oauthscope=https://outlook.office.com/SMTP.Send offline_access\n"
    "oauthtokenfile=tokens/app.json\n";

static const char oauth_cfg[] =
    "accounts = ( {\n"
    "  address = \"app@example.com\";\n"
    "  smtphost = \"smtp.office365.com\";\n"
    "  smtpport = 587;\n"
    "  smtpsecurity = \"tls\";\n"
    "  smtpusername = \"app@example.com\";\n"
    "  smtpauth = \"xoauth2\";\n"
    "  oauthprovider = \"microsoft\";\n"
    "  oauthflow = \"authcode\";\n"
    "  oauthtenant = \"contoso.onmicrosoft.com\";\n"
    "  oauthclientid = \"0b6d3b1c-5f6e-4c3a-9d52-1c2e3f4a5b6c\";\n"
    "  oauthclientsecretfile = \"secret.txt\";\n"
    "  oauthtokenurl = \"https://login.example.com/token\";\n"
    "  oauthauthurl = \"https://login.example.com/authorize?p=1\";\n"
    "  oauthdeviceurl = \"http://127.0.0.1:8080/device\";\n"
    "  oauthscope = \"https://outlook.office.com/SMTP.Send offline_access\";\n"
    "  oauthtokenfile = \"tokens/app.json\";\n"
    "} );\n";

/* the start of a valid xoauth2 account, for the error tests */
#define XO_HEAD \
    "[a@x]\n" \
    "smtphost=h\n" \
    "smtpsecurity=tls\n" \
    "smtpusername=a@x\n" \
    "smtpauth=xoauth2\n"

START_TEST(test_account_defaults_to_password_login)
{
	struct config	*cfg = load_ok("t.ini", "[a@x]\nsmtphost=h\n");

	ck_assert_int_eq(cfg->accounts[0].smtpauth, SMTPAUTH_AUTO);
	ck_assert_int_eq(cfg->accounts[0].oauthprovider, OAUTH_PROVIDER_CUSTOM);
	ck_assert_int_eq(cfg->accounts[0].oauthflow, OAUTH_FLOW_DEVICE);
	ck_assert_ptr_null(cfg->accounts[0].oauthtokenfile);
	config_free(cfg);
}
END_TEST

START_TEST(test_xoauth2_account_is_the_same_in_both_syntaxes)
{
	struct config		*ini = load_ok("t.ini", oauth_ini);
	struct config		*cfg = load_ok("t.conf", oauth_cfg);
	const struct account	*a = &ini->accounts[0];
	char			 path[PATH_MAX];

	ck_assert_int_eq(a->smtpauth, SMTPAUTH_XOAUTH2);
	ck_assert_int_eq(a->oauthprovider, OAUTH_PROVIDER_MICROSOFT);
	ck_assert_int_eq(a->oauthflow, OAUTH_FLOW_AUTHCODE);
	ck_assert_str_eq(a->oauthscope,
	    "https://outlook.office.com/SMTP.Send offline_access");
	file_path(path, sizeof(path), "secret.txt");
	ck_assert_str_eq(a->oauthclientsecretfile, path);
	file_path(path, sizeof(path), "tokens/app.json");
	ck_assert_str_eq(a->oauthtokenfile, path);
	assert_account_equal(a, &cfg->accounts[0]);
	config_free(ini);
	config_free(cfg);
}
END_TEST

START_TEST(test_smtpauth_takes_auto_or_xoauth2_only)
{
	expect_error("t.ini", "[a@x]\nsmtphost=h\nsmtpauth=XOAUTH2\n", 3,
	    "'XOAUTH2' is not a valid value for key 'smtpauth' (use auto or "
	    "xoauth2)");
}
END_TEST

START_TEST(test_oauth_key_without_xoauth2_is_an_error)
{
	expect_error("t.ini",
	    "[a@x]\nsmtphost=h\nsmtpusername=u\nsmtppassword=p\n"
	    "oauthclientid=c\n", 5,
	    "oauthclientid is set in [a@x] but smtpauth is not xoauth2: it "
	    "is not used");
}
END_TEST

START_TEST(test_xoauth2_needs_smtpusername)
{
	expect_error("t.ini",
	    "[a@x]\nsmtphost=h\nsmtpsecurity=ssl\nsmtpauth=xoauth2\n"
	    "oauthclientid=c\n", 4,
	    "smtpauth=xoauth2 in [a@x] needs smtpusername (the mailbox the "
	    "token is for)");
}
END_TEST

START_TEST(test_xoauth2_refuses_a_password)
{
	expect_error("t.ini", XO_HEAD "smtppassword=secret\n", 6,
	    "smtppassword is not used with smtpauth=xoauth2 in [a@x]: remove "
	    "it");
}
END_TEST

START_TEST(test_xoauth2_needs_tls)
{
	expect_error("t.ini",
	    "[a@x]\nsmtphost=h\nsmtpusername=a@x\nsmtpauth=xoauth2\n", 4,
	    "smtpauth=xoauth2 in [a@x] needs smtpsecurity tls or ssl: a token "
	    "is never sent in the clear");
}
END_TEST

START_TEST(test_xoauth2_needs_a_client_id_or_a_command)
{
	struct config	*cfg;

	expect_error("t.ini", XO_HEAD "oauthprovider=microsoft\n", 5,
	    "smtpauth=xoauth2 in [a@x] needs oauthclientid (or "
	    "oauthtokencommand)");
	cfg = load_ok("u.ini", XO_HEAD "oauthtokencommand=/usr/bin/gettoken\n");
	ck_assert_str_eq(cfg->accounts[0].oauthtokencommand,
	    "/usr/bin/gettoken");
	config_free(cfg);
}
END_TEST

START_TEST(test_token_command_excludes_the_other_oauth_keys)
{
	expect_error("t.ini", XO_HEAD "oauthtokencommand=gettoken\n"
	    "oauthclientid=c\n", 7,
	    "oauthclientid is set in [a@x] but oauthtokencommand is set: it "
	    "is not used");
}
END_TEST

START_TEST(test_custom_provider_needs_its_endpoints)
{
	expect_error("t.ini", XO_HEAD "oauthclientid=c\n", 5,
	    "smtpauth=xoauth2 in [a@x] needs oauthprovider (microsoft or "
	    "google) or, for a custom provider, oauthtokenurl");
	expect_error("u.ini", XO_HEAD "oauthclientid=c\n"
	    "oauthtokenurl=https://t/token\n", 5,
	    "oauthflow=device in [a@x] needs oauthdeviceurl with a custom "
	    "provider");
	expect_error("v.ini", XO_HEAD "oauthclientid=c\n"
	    "oauthtokenurl=https://t/token\noauthflow=authcode\n", 8,
	    "oauthflow=authcode in [a@x] needs oauthauthurl with a custom "
	    "provider");
}
END_TEST

START_TEST(test_plain_http_endpoint_is_refused_unless_loopback)
{
	struct config	*cfg;

	expect_error("t.ini", XO_HEAD "oauthtokenurl=http://login.example.com"
	    "/token\n", 6, "'http://login.example.com/token' for key "
	    "'oauthtokenurl': plain http:// is allowed only to this machine "
	    "(127.0.0.1, ::1, localhost): use https://");
	expect_error("u.ini", XO_HEAD "oauthauthurl=http://127.0.0.1.evil."
	    "example/a\n", 6, "'http://127.0.0.1.evil.example/a' for key "
	    "'oauthauthurl': plain http:// is allowed only to this machine "
	    "(127.0.0.1, ::1, localhost): use https://");
	expect_error("v.ini", XO_HEAD "oauthdeviceurl=ftp://x/d\n", 6,
	    "'ftp://x/d' for key 'oauthdeviceurl': not an https:// URL");
	expect_error("w.ini", XO_HEAD "oauthtokenurl=https://u@x/t\n", 6,
	    "'https://u@x/t' for key 'oauthtokenurl': a user name in the URL "
	    "is not allowed");
	cfg = load_ok("x.ini", XO_HEAD "oauthclientid=c\n"
	    "oauthtokenurl=http://127.0.0.1:8080/token\n"
	    "oauthdeviceurl=http://[::1]:8080/device\n"
	    "oauthauthurl=http://localhost/authorize\n");
	ck_assert_str_eq(cfg->accounts[0].oauthtokenurl,
	    "http://127.0.0.1:8080/token");
	config_free(cfg);
}
END_TEST

START_TEST(test_client_secret_given_twice_is_an_error)
{
	expect_error("t.ini", XO_HEAD "oauthprovider=google\n"
	    "oauthclientid=c\noauthclientsecret=s\n"
	    "oauthclientsecretfile=/etc/s\n", 9,
	    "oauthclientsecret and oauthclientsecretfile are both set in "
	    "[a@x]: keep one");
}
END_TEST

START_TEST(test_google_needs_a_client_secret_and_a_user)
{
	expect_error("t.ini", XO_HEAD "oauthprovider=google\n"
	    "oauthclientid=c\n", 6,
	    "oauthprovider=google in [a@x] needs oauthclientsecret or "
	    "oauthclientsecretfile (Google gives one with every client ID)");
	expect_error("u.ini", XO_HEAD "oauthprovider=google\n"
	    "oauthclientid=c\noauthclientsecret=s\n"
	    "oauthflow=clientcredentials\n", 9,
	    "oauthflow=clientcredentials in [a@x]: Google offers no app-only "
	    "access to Gmail over SMTP; use device or authcode");
}
END_TEST

START_TEST(test_client_credentials_need_a_secret_and_a_tenant)
{
	struct config	*cfg;

	expect_error("t.ini", XO_HEAD "oauthprovider=microsoft\n"
	    "oauthclientid=c\noauthflow=clientcredentials\n"
	    "oauthtenant=contoso.com\n", 8,
	    "oauthflow=clientcredentials in [a@x] needs oauthclientsecret or "
	    "oauthclientsecretfile");
	expect_error("u.ini", XO_HEAD "oauthprovider=microsoft\n"
	    "oauthclientid=c\noauthflow=clientcredentials\n"
	    "oauthclientsecret=s\n", 8,
	    "oauthflow=clientcredentials in [a@x] needs oauthtenant: the "
	    "tenant ID or domain of the organisation (not common, "
	    "organizations or consumers)");
	cfg = load_ok("v.ini", XO_HEAD "oauthprovider=microsoft\n"
	    "oauthclientid=c\noauthflow=clientcredentials\n"
	    "oauthclientsecret=s\n"
	    "oauthtenant=9188040d-6c67-4c5b-b112-36a304b66dad\n");
	ck_assert_int_eq(cfg->accounts[0].oauthflow,
	    OAUTH_FLOW_CLIENTCREDENTIALS);
	config_free(cfg);
}
END_TEST

START_TEST(test_tenant_is_for_microsoft_and_a_plain_name)
{
	expect_error("t.ini", XO_HEAD "oauthprovider=google\n"
	    "oauthclientid=c\noauthclientsecret=s\noauthtenant=x\n", 9,
	    "oauthtenant in [a@x] is for oauthprovider=microsoft only");
	expect_error("u.ini", XO_HEAD "oauthprovider=microsoft\n"
	    "oauthclientid=c\noauthtenant=x/../y\n", 8,
	    "'x/../y' is not a tenant for key 'oauthtenant' (a tenant ID or a "
	    "domain such as contoso.onmicrosoft.com)");
}
END_TEST

START_TEST(test_client_secret_never_appears_in_messages)
{
	char		 path[PATH_MAX], err[ERR_MAX] = "";
	struct config	*cfg = NULL;

	write_file("t.ini", XO_HEAD "oauthclientsecret=\001Sup3rS3cret\n");
	file_path(path, sizeof(path), "t.ini");
	ck_assert_int_eq(config_load(path, &cfg, err, sizeof(err)), -1);
	ck_assert_ptr_null(strstr(err, "Sup3rS3cret"));
	ck_assert_ptr_nonnull(strstr(err, "oauthclientsecret"));
}
END_TEST

/* config_suite - every test above */
static Suite *
config_suite(void)
{
	Suite	*s = suite_create("config");
	TCase	*tc = tcase_create("config");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_empty_file_gives_every_default);
	tcase_add_test(tc, test_empty_libconfig_file_gives_the_same_defaults);
	tcase_add_test(tc, test_account_gets_every_default);
	tcase_add_test(tc, test_both_syntaxes_give_the_same_model);
	tcase_add_test(tc, test_example_files_load_and_agree);
	tcase_add_test(tc, test_use_chain_is_followed_to_its_end);
	tcase_add_test(tc, test_use_loop_is_refused_with_its_line);
	tcase_add_test(tc, test_use_of_itself_is_a_loop);
	tcase_add_test(tc, test_use_of_a_missing_account_names_its_line);
	tcase_add_test(tc, test_lookup_takes_the_exact_address_first);
	tcase_add_test(tc, test_lookup_takes_the_domain_next);
	tcase_add_test(tc, test_lookup_takes_default_last);
	tcase_add_test(tc, test_lookup_domain_is_case_insensitive);
	tcase_add_test(tc, test_lookup_local_part_is_case_sensitive);
	tcase_add_test(tc, test_lookup_without_default_finds_nothing);
	tcase_add_test(tc, test_no_accounts_at_all_is_allowed);
	tcase_add_test(tc, test_missing_smtphost_names_the_section_line);
	tcase_add_test(tc, test_empty_section_still_needs_smtphost);
	tcase_add_test(tc, test_unknown_enum_value_names_its_line);
	tcase_add_test(tc, test_bad_boolean_names_its_line);
	tcase_add_test(tc, test_number_with_trailing_letters_names_its_line);
	tcase_add_test(tc, test_number_out_of_range_names_its_line);
	tcase_add_test(tc, test_libconfig_bad_value_names_its_line);
	tcase_add_test(tc, test_configparser_boolean_words_are_accepted);
	tcase_add_test(tc, test_level_names_are_uppercase_only);
	tcase_add_test(tc, test_level_none_keeps_only_critical_lines);
	tcase_add_test(tc, test_unknown_key_is_a_warning_not_an_error);
	tcase_add_test(tc, test_global_key_in_an_account_is_an_unknown_key);
	tcase_add_test(tc, test_retired_smtptls_is_a_warning);
	tcase_add_test(tc, test_key_given_twice_last_one_wins_with_a_warning);
	tcase_add_test(tc, test_section_given_twice_is_merged);
	tcase_add_test(tc, test_keys_are_case_insensitive);
	tcase_add_test(tc, test_colon_assignment_is_accepted);
	tcase_add_test(tc, test_semicolon_inside_a_value_is_not_a_comment);
	tcase_add_test(tc, test_key_outside_any_section_is_an_error);
	tcase_add_test(tc, test_ini_syntax_error_names_its_line);
	tcase_add_test(tc, test_unclosed_section_name_is_a_syntax_error);
	tcase_add_test(tc, test_libconfig_syntax_error_names_its_line);
	tcase_add_test(tc, test_missing_file_cannot_be_opened);
	tcase_add_test(tc, test_angle_brackets_are_stripped_from_section_names);
	tcase_add_test(tc, test_long_section_name_is_kept_whole);
	tcase_add_test(tc, test_line_of_the_limit_is_accepted);
	tcase_add_test(tc, test_overlong_line_is_an_error_with_its_line);
	tcase_add_test(tc,
	    test_relative_msgdir_is_resolved_against_the_config_folder);
	tcase_add_test(tc,
	    test_relative_paths_are_resolved_against_the_config_folder);
	tcase_add_test(tc, test_empty_value_restores_the_default);
	tcase_add_test(tc, test_account_port_follows_the_security_mode);
	tcase_add_test(tc, test_popbeforesmtp_without_pophost_is_an_error);
	tcase_add_test(tc, test_username_without_password_is_an_error);
	tcase_add_test(tc, test_password_never_appears_in_messages);
	tcase_add_test(tc, test_returnpath_must_be_a_mailbox);
	tcase_add_test(tc, test_maxprocesses_follows_a_large_processes);
	tcase_add_test(tc, test_maxprocesses_below_processes_is_an_error);
	tcase_add_test(tc, test_retrymax_below_retrymin_is_an_error);
	tcase_add_test(tc, test_tlscert_without_tlskey_is_an_error);
	tcase_add_test(tc, test_allow_network_prefix_is_checked);
	tcase_add_test(tc, test_listen_takes_ip_addresses_only);
	tcase_add_test(tc, test_size_takes_k_and_m_suffixes);
	tcase_add_test(tc, test_libconfig_account_without_address_is_an_error);
	tcase_add_test(tc, test_libconfig_unknown_key_is_a_warning);
	tcase_add_test(tc, test_python_smtpproxy_file_loads_unchanged);
	tcase_add_test(tc, test_account_defaults_to_password_login);
	tcase_add_test(tc, test_xoauth2_account_is_the_same_in_both_syntaxes);
	tcase_add_test(tc, test_smtpauth_takes_auto_or_xoauth2_only);
	tcase_add_test(tc, test_oauth_key_without_xoauth2_is_an_error);
	tcase_add_test(tc, test_xoauth2_needs_smtpusername);
	tcase_add_test(tc, test_xoauth2_refuses_a_password);
	tcase_add_test(tc, test_xoauth2_needs_tls);
	tcase_add_test(tc, test_xoauth2_needs_a_client_id_or_a_command);
	tcase_add_test(tc, test_token_command_excludes_the_other_oauth_keys);
	tcase_add_test(tc, test_custom_provider_needs_its_endpoints);
	tcase_add_test(tc, test_plain_http_endpoint_is_refused_unless_loopback);
	tcase_add_test(tc, test_client_secret_given_twice_is_an_error);
	tcase_add_test(tc, test_google_needs_a_client_secret_and_a_user);
	tcase_add_test(tc, test_client_credentials_need_a_secret_and_a_tenant);
	tcase_add_test(tc, test_tenant_is_for_microsoft_and_a_plain_name);
	tcase_add_test(tc, test_client_secret_never_appears_in_messages);
	suite_add_tcase(s, tc);
	return s;
}

/* main - run the suite, print Check's summary, fail if any test did */
int
main(void)
{
	SRunner	*sr = srunner_create(config_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
