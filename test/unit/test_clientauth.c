/*
 * test_clientauth - AUTH PLAIN/LOGIN decoding, password checks, who may
 * send as whom, and the delay after failures.
 */
#include <check.h>
#include <crypt.h>
#include <stdlib.h>
#include <string.h>

#include "clientauth.h"
#include "config.h"

/*
 * The model the send-as tests run against, as config_load() would leave it
 * after resolving use= (target: the end of the use= chain).
 */
enum {
	FOO, BAR, BAZ, OTHER, DOMAIN, ALIASDOM, DEFAULT, NOPASS, EMPTYPASS,
	NACCOUNTS
};

static struct account	 accounts[NACCOUNTS];
static struct config	 cfg;

/* account_set - fill one account of the model */
static void
account_set(int i, const char *name, const char *use, int target,
    const char *localpassword)
{
	memset(&accounts[i], 0, sizeof(accounts[i]));
	accounts[i].name = (char *)name;
	accounts[i].use = (char *)use;
	accounts[i].target = &accounts[target];
	accounts[i].localpassword = (char *)localpassword;
}

/* model_setup - foo with two aliases, a domain, a default, and odd ones */
static void
model_setup(void)
{
	account_set(FOO, "foo@example.com", NULL, FOO, "foopass");
	account_set(BAR, "bar@example.com", "foo@example.com", FOO, "barpass");
	account_set(BAZ, "baz@example.com", "bar@example.com", FOO, NULL);
	account_set(OTHER, "other@example.com", NULL, OTHER, "otherpass");
	account_set(DOMAIN, "@example.com", NULL, DOMAIN, "domainpass");
	account_set(ALIASDOM, "@alias.test", "foo@example.com", FOO, NULL);
	account_set(DEFAULT, "default", NULL, DEFAULT, "defaultpass");
	account_set(NOPASS, "nopass@example.com", NULL, NOPASS, NULL);
	account_set(EMPTYPASS, "empty@example.com", NULL, EMPTYPASS, "");
	memset(&cfg, 0, sizeof(cfg));
	cfg.accounts = accounts;
	cfg.naccounts = NACCOUNTS;
}

/* default_uses_foo - route the default section through foo's upstream */
static void
default_uses_foo(void)
{
	account_set(DEFAULT, "default", "foo@example.com", FOO, NULL);
}

/* decoded_is - decode in and expect exactly the len bytes of want */
static void
decoded_is(const char *in, const char *want, size_t len)
{
	char	*out;
	size_t	 outlen;

	ck_assert_int_eq(auth_base64_decode(in, &out, &outlen), 0);
	ck_assert_uint_eq(outlen, len);
	ck_assert_mem_eq(out, want, len);
	ck_assert_int_eq(out[len], '\0');
	auth_wipe_free(out, outlen);
}

/* decode_fails - decoding in is refused and leaves nothing behind */
static void
decode_fails(const char *in)
{
	char	*out = (char *)1;
	size_t	 outlen = 1;

	ck_assert_int_eq(auth_base64_decode(in, &out, &outlen), -1);
	ck_assert_ptr_null(out);
	ck_assert_uint_eq(outlen, 0);
}

/* encoded_is - encode len bytes of in and expect want */
static void
encoded_is(const char *in, size_t len, const char *want)
{
	char	*out = auth_base64_encode(in, len);

	ck_assert_ptr_nonnull(out);
	ck_assert_str_eq(out, want);
	free(out);
}

/* plain_parses - msg of len bytes gives authcid and passwd */
static void
plain_parses(const char *msg, size_t len, const char *authcid,
    const char *passwd)
{
	char	*cid, *pw;

	ck_assert_int_eq(auth_plain_parse(msg, len, &cid, &pw), 0);
	ck_assert_str_eq(cid, authcid);
	ck_assert_str_eq(pw, passwd);
	auth_secret_free(cid);
	auth_secret_free(pw);
}

/* plain_fails - msg of len bytes is refused and leaves nothing behind */
static void
plain_fails(const char *msg, size_t len)
{
	char	*cid = (char *)1, *pw = (char *)1;

	ck_assert_int_eq(auth_plain_parse(msg, len, &cid, &pw), -1);
	ck_assert_ptr_null(cid);
	ck_assert_ptr_null(pw);
}

/* hash_of - a fresh crypt(3) hash of passwd with a new salt for prefix */
static char *
hash_of(const char *prefix, const char *passwd)
{
	char	 setting[CRYPT_GENSALT_OUTPUT_SIZE];
	char	*hash;

	ck_assert_ptr_nonnull(crypt_gensalt_rn(prefix, 0, NULL, 0, setting,
	    (int)sizeof(setting)));
	hash = crypt(passwd, setting);
	ck_assert_ptr_nonnull(hash);
	ck_assert_int_ne(hash[0], '*');
	ck_assert_int_eq(strncmp(hash, prefix, strlen(prefix)), 0);
	return strdup(hash);
}

/* Base64 */

START_TEST(test_base64_encodes_rfc4648_vectors)
{
	encoded_is("", 0, "");
	encoded_is("f", 1, "Zg==");
	encoded_is("fo", 2, "Zm8=");
	encoded_is("foo", 3, "Zm9v");
	encoded_is("foobar", 6, "Zm9vYmFy");
}
END_TEST

START_TEST(test_base64_encodes_the_login_challenges)
{
	encoded_is("Username:", 9, "VXNlcm5hbWU6");
	encoded_is("Password:", 9, "UGFzc3dvcmQ6");
}
END_TEST

START_TEST(test_base64_decodes_rfc4648_vectors)
{
	decoded_is("", "", 0);
	decoded_is("Zg==", "f", 1);
	decoded_is("Zm8=", "fo", 2);
	decoded_is("Zm9v", "foo", 3);
	decoded_is("Zm9vYg==", "foob", 4);
	decoded_is("Zm9vYmE=", "fooba", 5);
	decoded_is("Zm9vYmFy", "foobar", 6);
}
END_TEST

START_TEST(test_base64_round_trips_every_byte_value)
{
	char	 bytes[256], *enc, *dec;
	size_t	 len;

	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (char)i;
	for (size_t n = 0; n <= sizeof(bytes); n++) {
		enc = auth_base64_encode(bytes, n);
		ck_assert_ptr_nonnull(enc);
		ck_assert_int_eq(auth_base64_decode(enc, &dec, &len), 0);
		ck_assert_uint_eq(len, n);
		ck_assert_mem_eq(dec, bytes, n);
		free(enc);
		auth_wipe_free(dec, len);
	}
}
END_TEST

START_TEST(test_base64_lone_pad_is_the_empty_response)
{
	decoded_is("=", "", 0);
}
END_TEST

START_TEST(test_base64_refuses_characters_outside_the_alphabet)
{
	decode_fails("Zm9v!A==");
	decode_fails("Zm9-");
	decode_fails("Zm9_");
	decode_fails("Zm9\xc3");
	decode_fails("*");
}
END_TEST

START_TEST(test_base64_refuses_white_space)
{
	decode_fails("Zm9v Zm9v");
	decode_fails(" Zm9v");
	decode_fails("Zm9v\r\n");
	decode_fails("Zm9v\t");
}
END_TEST

START_TEST(test_base64_refuses_a_length_not_a_multiple_of_four)
{
	decode_fails("Zm9");
	decode_fails("Zg=");
	decode_fails("Zm9vY");
}
END_TEST

START_TEST(test_base64_refuses_misplaced_or_excess_padding)
{
	decode_fails("Zg==Zm9v");
	decode_fails("Z===");
	decode_fails("====");
	decode_fails("Zm=v");
	decode_fails("==");
}
END_TEST

START_TEST(test_base64_refuses_nonzero_pad_bits)
{
	decode_fails("Zh==");
	decode_fails("Zm9=");
}
END_TEST

START_TEST(test_base64_accepts_a_line_of_exactly_the_limit)
{
	char	*in = malloc(AUTH_LINE_MAX + 1), *out;
	size_t	 len;

	memset(in, 'A', AUTH_LINE_MAX);
	in[AUTH_LINE_MAX] = '\0';
	ck_assert_int_eq(auth_base64_decode(in, &out, &len), 0);
	ck_assert_uint_eq(len, AUTH_LINE_MAX / 4 * 3);
	auth_wipe_free(out, len);
	free(in);
}
END_TEST

START_TEST(test_base64_refuses_a_line_beyond_the_limit)
{
	char	*in = malloc(AUTH_LINE_MAX + 5);

	memset(in, 'A', AUTH_LINE_MAX + 4);
	in[AUTH_LINE_MAX + 4] = '\0';
	decode_fails(in);
	free(in);
}
END_TEST

START_TEST(test_base64_will_not_encode_beyond_the_limit)
{
	char	*in = calloc(1, AUTH_LINE_MAX);

	ck_assert_ptr_null(auth_base64_encode(in, AUTH_LINE_MAX / 4 * 3 + 1));
	free(in);
}
END_TEST

/* PLAIN and LOGIN */

START_TEST(test_plain_without_authzid_parses)
{
	plain_parses("\0foo@example.com\0secret", 23, "foo@example.com",
	    "secret");
}
END_TEST

START_TEST(test_plain_with_authzid_equal_to_authcid_parses)
{
	plain_parses("foo@example.com\0foo@example.com\0secret", 38,
	    "foo@example.com", "secret");
}
END_TEST

START_TEST(test_plain_authzid_may_differ_in_domain_case_only)
{
	plain_parses("foo@EXAMPLE.com\0foo@example.com\0secret", 38,
	    "foo@example.com", "secret");
}
END_TEST

START_TEST(test_plain_with_another_authzid_is_refused)
{
	plain_fails("bar@example.com\0foo@example.com\0secret", 38);
	plain_fails("Foo@example.com\0foo@example.com\0secret", 38);
}
END_TEST

START_TEST(test_plain_password_may_hold_any_byte_but_nul)
{
	plain_parses("\0foo@example.com\0 s\x01\xff\"", 22, "foo@example.com",
	    " s\x01\xff\"");
}
END_TEST

START_TEST(test_plain_without_nul_is_refused)
{
	plain_fails("foo@example.com", 15);
	plain_fails("", 0);
}
END_TEST

START_TEST(test_plain_with_one_nul_is_refused)
{
	plain_fails("\0foo@example.com", 16);
	plain_fails("foo@example.com\0secret", 22);
}
END_TEST

START_TEST(test_plain_with_empty_authcid_is_refused)
{
	plain_fails("\0\0secret", 8);
}
END_TEST

START_TEST(test_plain_with_empty_password_is_refused)
{
	plain_fails("\0foo@example.com\0", 17);
}
END_TEST

START_TEST(test_plain_with_a_nul_in_the_password_is_refused)
{
	plain_fails("\0foo@example.com\0sec\0ret", 24);
	plain_fails("\0foo@example.com\0secret\0", 24);
}
END_TEST

START_TEST(test_plain_with_control_bytes_in_authcid_is_refused)
{
	plain_fails("\0foo@example.com\r\nX\0secret", 26);
}
END_TEST

START_TEST(test_plain_response_decodes_and_parses)
{
	char	*cid, *pw;
	char	*line = auth_base64_encode("\0foo@example.com\0secret", 23);

	ck_assert_int_eq(auth_plain_response(line, &cid, &pw), AUTH_OK);
	ck_assert_str_eq(cid, "foo@example.com");
	ck_assert_str_eq(pw, "secret");
	auth_secret_free(cid);
	auth_secret_free(pw);
	free(line);
}
END_TEST

START_TEST(test_plain_response_sorts_its_errors)
{
	char	*cid, *pw;
	char	*line = auth_base64_encode("foo@example.com\0secret", 22);

	ck_assert_int_eq(auth_plain_response("not base64", &cid, &pw),
	    AUTH_ERR_BASE64);
	ck_assert_int_eq(auth_plain_response(line, &cid, &pw),
	    AUTH_ERR_MESSAGE);
	ck_assert_int_eq(auth_plain_response("=", &cid, &pw),
	    AUTH_ERR_MESSAGE);
	ck_assert_ptr_null(cid);
	ck_assert_ptr_null(pw);
	free(line);
}
END_TEST

START_TEST(test_login_username_decodes)
{
	char	*user;

	ck_assert_int_eq(auth_login_username("Zm9vQGV4YW1wbGUuY29t", &user),
	    AUTH_OK);
	ck_assert_str_eq(user, "foo@example.com");
	auth_secret_free(user);
}
END_TEST

START_TEST(test_login_username_refuses_empty_nul_and_control_bytes)
{
	char	*user, *nul = auth_base64_encode("foo\0bar", 7);
	char	*crlf = auth_base64_encode("foo\r\n", 5);

	ck_assert_int_eq(auth_login_username("=", &user), AUTH_ERR_MESSAGE);
	ck_assert_int_eq(auth_login_username("", &user), AUTH_ERR_MESSAGE);
	ck_assert_int_eq(auth_login_username(nul, &user), AUTH_ERR_MESSAGE);
	ck_assert_int_eq(auth_login_username(crlf, &user), AUTH_ERR_MESSAGE);
	ck_assert_int_eq(auth_login_username("*", &user), AUTH_ERR_BASE64);
	ck_assert_ptr_null(user);
	free(nul);
	free(crlf);
}
END_TEST

START_TEST(test_login_password_decodes)
{
	char	*pw;

	ck_assert_int_eq(auth_login_password("c2VjcmV0", &pw), AUTH_OK);
	ck_assert_str_eq(pw, "secret");
	auth_secret_free(pw);
}
END_TEST

START_TEST(test_login_password_refuses_empty_and_nul)
{
	char	*pw, *nul = auth_base64_encode("sec\0ret", 7);

	ck_assert_int_eq(auth_login_password("=", &pw), AUTH_ERR_MESSAGE);
	ck_assert_int_eq(auth_login_password(nul, &pw), AUTH_ERR_MESSAGE);
	ck_assert_int_eq(auth_login_password("c2Vj cmV0", &pw),
	    AUTH_ERR_BASE64);
	ck_assert_ptr_null(pw);
	free(nul);
}
END_TEST

/* Passwords */

START_TEST(test_plain_password_matches_itself)
{
	ck_assert(auth_password_matches("secret", "secret"));
}
END_TEST

START_TEST(test_plain_password_wrong_does_not_match)
{
	ck_assert(!auth_password_matches("Secret", "secret"));
	ck_assert(!auth_password_matches("xxxxxx", "secret"));
}
END_TEST

START_TEST(test_plain_password_prefix_or_extension_does_not_match)
{
	ck_assert(!auth_password_matches("secre", "secret"));
	ck_assert(!auth_password_matches("secret2", "secret"));
	ck_assert(!auth_password_matches("", "secret"));
}
END_TEST

START_TEST(test_empty_or_missing_stored_password_never_matches)
{
	ck_assert(!auth_password_matches("", ""));
	ck_assert(!auth_password_matches("x", ""));
	ck_assert(!auth_password_matches("", NULL));
	ck_assert(!auth_password_matches(NULL, "secret"));
}
END_TEST

START_TEST(test_locked_entries_never_match)
{
	ck_assert(!auth_password_matches("*", "*"));
	ck_assert(!auth_password_matches("!", "!"));
	ck_assert(!auth_password_matches("!secret", "!secret"));
}
END_TEST

START_TEST(test_sha512_crypt_hash_matches_its_password)
{
	char	*hash = hash_of("$6$", "secret");

	ck_assert(auth_password_matches("secret", hash));
	free(hash);
}
END_TEST

START_TEST(test_yescrypt_hash_matches_its_password)
{
	char	*hash = hash_of("$y$", "secret");

	ck_assert(auth_password_matches("secret", hash));
	free(hash);
}
END_TEST

START_TEST(test_md5_crypt_hash_matches_its_password)
{
	char	*hash = hash_of("$1$", "secret");

	ck_assert(auth_password_matches("secret", hash));
	free(hash);
}
END_TEST

START_TEST(test_hash_with_wrong_password_does_not_match)
{
	char	*h6 = hash_of("$6$", "secret");
	char	*hy = hash_of("$y$", "secret");

	ck_assert(!auth_password_matches("Secret", h6));
	ck_assert(!auth_password_matches("secret ", hy));
	ck_assert(!auth_password_matches("", h6));
	free(h6);
	free(hy);
}
END_TEST

START_TEST(test_hash_itself_is_not_its_password)
{
	char	*hash = hash_of("$6$", "secret");

	ck_assert(!auth_password_matches(hash, hash));
	free(hash);
}
END_TEST

START_TEST(test_malformed_hash_never_matches)
{
	static const char *const bad[] = {
		"$6$", "$6$salt", "$y$", "$y$j9T$", "$", "$$", "$6",
		"$unknown$salt$hash", "$6$salt$!!!!", "$1$salt$tooshort",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(!auth_password_matches(bad[i], bad[i]),
		    "%s matched itself", bad[i]);
		ck_assert(!auth_password_matches("secret", bad[i]));
		ck_assert(!auth_password_matches("", bad[i]));
	}
}
END_TEST

/* Accounts */

START_TEST(test_user_name_is_the_account_address)
{
	ck_assert_ptr_eq(auth_find_account(&cfg, "foo@example.com"),
	    &accounts[FOO]);
}
END_TEST

START_TEST(test_user_name_domain_part_is_case_insensitive)
{
	ck_assert_ptr_eq(auth_find_account(&cfg, "foo@Example.COM"),
	    &accounts[FOO]);
}
END_TEST

START_TEST(test_user_name_local_part_is_case_sensitive)
{
	ck_assert_ptr_null(auth_find_account(&cfg, "Foo@example.com"));
}
END_TEST

START_TEST(test_domain_section_is_a_user_name_of_its_own)
{
	ck_assert_ptr_eq(auth_find_account(&cfg, "@example.com"),
	    &accounts[DOMAIN]);
}
END_TEST

START_TEST(test_address_without_section_is_no_user)
{
	ck_assert_ptr_null(auth_find_account(&cfg, "nobody@example.com"));
	ck_assert_ptr_null(auth_find_account(&cfg, ""));
	ck_assert_ptr_null(auth_find_account(&cfg, NULL));
}
END_TEST

START_TEST(test_account_without_localpassword_cannot_log_in)
{
	ck_assert_ptr_null(auth_find_account(&cfg, "nopass@example.com"));
	ck_assert_ptr_null(auth_find_account(&cfg, "empty@example.com"));
	ck_assert_ptr_null(auth_find_account(&cfg, "baz@example.com"));
}
END_TEST

START_TEST(test_check_with_right_password_gives_the_account)
{
	ck_assert_ptr_eq(auth_check(&cfg, "bar@example.com", "barpass"),
	    &accounts[BAR]);
}
END_TEST

START_TEST(test_check_with_wrong_password_gives_nothing)
{
	ck_assert_ptr_null(auth_check(&cfg, "bar@example.com", "foopass"));
	ck_assert_ptr_null(auth_check(&cfg, "nopass@example.com", ""));
}
END_TEST

START_TEST(test_check_of_unknown_user_gives_nothing)
{
	char	*hash = hash_of("$6$", "otherpass");

	accounts[OTHER].localpassword = hash;
	ck_assert_ptr_null(auth_check(&cfg, "nobody@example.com",
	    "otherpass"));
	free(hash);
}
END_TEST

/* Who may send as whom */

START_TEST(test_client_may_send_as_its_own_address)
{
	ck_assert(auth_may_send_as(&cfg, &accounts[FOO], "foo@example.com"));
}
END_TEST

START_TEST(test_own_address_matches_in_any_domain_case)
{
	ck_assert(auth_may_send_as(&cfg, &accounts[FOO], "foo@EXAMPLE.com"));
}
END_TEST

START_TEST(test_own_address_with_other_local_part_case_is_refused)
{
	ck_assert(!auth_may_send_as(&cfg, &accounts[FOO], "Foo@example.com"));
}
END_TEST

START_TEST(test_client_may_send_as_an_alias_using_it)
{
	ck_assert(auth_may_send_as(&cfg, &accounts[FOO], "bar@example.com"));
}
END_TEST

START_TEST(test_client_may_send_as_an_alias_of_an_alias)
{
	ck_assert(auth_may_send_as(&cfg, &accounts[FOO], "baz@example.com"));
	ck_assert(auth_may_send_as(&cfg, &accounts[BAR], "baz@example.com"));
}
END_TEST

START_TEST(test_client_may_send_as_a_domain_aliased_to_it)
{
	ck_assert(auth_may_send_as(&cfg, &accounts[FOO], "anyone@alias.test"));
}
END_TEST

START_TEST(test_alias_may_not_send_as_the_account_it_uses)
{
	ck_assert(!auth_may_send_as(&cfg, &accounts[BAR], "foo@example.com"));
}
END_TEST

START_TEST(test_client_may_not_send_as_another_account)
{
	ck_assert(!auth_may_send_as(&cfg, &accounts[FOO],
	    "other@example.com"));
	ck_assert(!auth_may_send_as(&cfg, &accounts[OTHER],
	    "foo@example.com"));
}
END_TEST

START_TEST(test_client_may_not_send_as_its_domain_section)
{
	ck_assert(!auth_may_send_as(&cfg, &accounts[FOO],
	    "nobody@example.com"));
}
END_TEST

START_TEST(test_client_may_not_send_as_a_sender_of_default)
{
	ck_assert(!auth_may_send_as(&cfg, &accounts[FOO],
	    "stranger@elsewhere.test"));
}
END_TEST

START_TEST(test_default_routed_through_client_grants_no_strangers)
{
	default_uses_foo();
	ck_assert_ptr_eq(account_lookup(&cfg, "stranger@elsewhere.test"),
	    &accounts[FOO]);
	ck_assert(!auth_may_send_as(&cfg, &accounts[FOO],
	    "stranger@elsewhere.test"));
}
END_TEST

START_TEST(test_domain_login_may_send_as_its_addresses_without_section)
{
	ck_assert(auth_may_send_as(&cfg, &accounts[DOMAIN],
	    "nobody@example.com"));
	ck_assert(auth_may_send_as(&cfg, &accounts[DOMAIN],
	    "nobody@Example.Com"));
}
END_TEST

START_TEST(test_domain_login_may_not_send_as_addresses_with_section)
{
	ck_assert(!auth_may_send_as(&cfg, &accounts[DOMAIN],
	    "foo@example.com"));
	ck_assert(!auth_may_send_as(&cfg, &accounts[DOMAIN],
	    "nopass@example.com"));
}
END_TEST

START_TEST(test_domain_login_may_not_send_as_other_domains)
{
	ck_assert(!auth_may_send_as(&cfg, &accounts[DOMAIN],
	    "nobody@sub.example.com"));
	ck_assert(!auth_may_send_as(&cfg, &accounts[DOMAIN],
	    "nobody@alias.test"));
}
END_TEST

START_TEST(test_default_login_may_send_as_strangers_only)
{
	ck_assert(auth_may_send_as(&cfg, &accounts[DEFAULT],
	    "stranger@elsewhere.test"));
	ck_assert(!auth_may_send_as(&cfg, &accounts[DEFAULT],
	    "foo@example.com"));
	ck_assert(!auth_may_send_as(&cfg, &accounts[DEFAULT],
	    "nobody@example.com"));
}
END_TEST

START_TEST(test_null_sender_belongs_to_the_default_login)
{
	ck_assert(!auth_may_send_as(&cfg, &accounts[FOO], ""));
	ck_assert(auth_may_send_as(&cfg, &accounts[DEFAULT], ""));
}
END_TEST

START_TEST(test_sender_without_any_account_is_refused)
{
	cfg.naccounts = DEFAULT;	/* no default section, nor after it */
	ck_assert(!auth_may_send_as(&cfg, &accounts[FOO],
	    "stranger@elsewhere.test"));
	ck_assert(!auth_may_send_as(&cfg, &accounts[FOO], ""));
}
END_TEST

START_TEST(test_missing_arguments_are_refused)
{
	ck_assert(!auth_may_send_as(&cfg, NULL, "foo@example.com"));
	ck_assert(!auth_may_send_as(&cfg, &accounts[FOO], NULL));
	ck_assert(!auth_may_send_as(NULL, &accounts[FOO], "foo@example.com"));
}
END_TEST

/* Delay after failures */

START_TEST(test_first_failure_is_not_delayed)
{
	ck_assert_uint_eq(auth_failure_delay_ms(1), 0);
	ck_assert_uint_eq(auth_failure_delay_ms(0), 0);
	ck_assert_uint_eq(auth_failure_delay_ms(-5), 0);
}
END_TEST

START_TEST(test_failure_delay_starts_at_half_a_second_and_doubles)
{
	ck_assert_uint_eq(auth_failure_delay_ms(2), 500);
	ck_assert_uint_eq(auth_failure_delay_ms(3), 1000);
	ck_assert_uint_eq(auth_failure_delay_ms(4), 2000);
	ck_assert_uint_eq(auth_failure_delay_ms(5), 4000);
}
END_TEST

START_TEST(test_failure_delay_stops_at_eight_seconds)
{
	ck_assert_uint_eq(auth_failure_delay_ms(6), 8000);
	ck_assert_uint_eq(auth_failure_delay_ms(7), 8000);
	ck_assert_uint_eq(auth_failure_delay_ms(1 << 30), 8000);
}
END_TEST

/* clientauth_suite - every behaviour above, grouped by function */
static Suite *
clientauth_suite(void)
{
	Suite	*s = suite_create("clientauth");
	TCase	*b64 = tcase_create("base64");
	TCase	*mech = tcase_create("plain and login");
	TCase	*pw = tcase_create("passwords");
	TCase	*acct = tcase_create("accounts");
	TCase	*send = tcase_create("send as");
	TCase	*delay = tcase_create("delay");

	tcase_add_test(b64, test_base64_encodes_rfc4648_vectors);
	tcase_add_test(b64, test_base64_encodes_the_login_challenges);
	tcase_add_test(b64, test_base64_decodes_rfc4648_vectors);
	tcase_add_test(b64, test_base64_round_trips_every_byte_value);
	tcase_add_test(b64, test_base64_lone_pad_is_the_empty_response);
	tcase_add_test(b64,
	    test_base64_refuses_characters_outside_the_alphabet);
	tcase_add_test(b64, test_base64_refuses_white_space);
	tcase_add_test(b64,
	    test_base64_refuses_a_length_not_a_multiple_of_four);
	tcase_add_test(b64, test_base64_refuses_misplaced_or_excess_padding);
	tcase_add_test(b64, test_base64_refuses_nonzero_pad_bits);
	tcase_add_test(b64, test_base64_accepts_a_line_of_exactly_the_limit);
	tcase_add_test(b64, test_base64_refuses_a_line_beyond_the_limit);
	tcase_add_test(b64, test_base64_will_not_encode_beyond_the_limit);
	suite_add_tcase(s, b64);

	tcase_add_test(mech, test_plain_without_authzid_parses);
	tcase_add_test(mech, test_plain_with_authzid_equal_to_authcid_parses);
	tcase_add_test(mech, test_plain_authzid_may_differ_in_domain_case_only);
	tcase_add_test(mech, test_plain_with_another_authzid_is_refused);
	tcase_add_test(mech, test_plain_password_may_hold_any_byte_but_nul);
	tcase_add_test(mech, test_plain_without_nul_is_refused);
	tcase_add_test(mech, test_plain_with_one_nul_is_refused);
	tcase_add_test(mech, test_plain_with_empty_authcid_is_refused);
	tcase_add_test(mech, test_plain_with_empty_password_is_refused);
	tcase_add_test(mech, test_plain_with_a_nul_in_the_password_is_refused);
	tcase_add_test(mech,
	    test_plain_with_control_bytes_in_authcid_is_refused);
	tcase_add_test(mech, test_plain_response_decodes_and_parses);
	tcase_add_test(mech, test_plain_response_sorts_its_errors);
	tcase_add_test(mech, test_login_username_decodes);
	tcase_add_test(mech,
	    test_login_username_refuses_empty_nul_and_control_bytes);
	tcase_add_test(mech, test_login_password_decodes);
	tcase_add_test(mech, test_login_password_refuses_empty_and_nul);
	suite_add_tcase(s, mech);

	tcase_set_timeout(pw, 60);
	tcase_add_test(pw, test_plain_password_matches_itself);
	tcase_add_test(pw, test_plain_password_wrong_does_not_match);
	tcase_add_test(pw,
	    test_plain_password_prefix_or_extension_does_not_match);
	tcase_add_test(pw, test_empty_or_missing_stored_password_never_matches);
	tcase_add_test(pw, test_locked_entries_never_match);
	tcase_add_test(pw, test_sha512_crypt_hash_matches_its_password);
	tcase_add_test(pw, test_yescrypt_hash_matches_its_password);
	tcase_add_test(pw, test_md5_crypt_hash_matches_its_password);
	tcase_add_test(pw, test_hash_with_wrong_password_does_not_match);
	tcase_add_test(pw, test_hash_itself_is_not_its_password);
	tcase_add_test(pw, test_malformed_hash_never_matches);
	suite_add_tcase(s, pw);

	tcase_set_timeout(acct, 60);
	tcase_add_checked_fixture(acct, model_setup, NULL);
	tcase_add_test(acct, test_user_name_is_the_account_address);
	tcase_add_test(acct, test_user_name_domain_part_is_case_insensitive);
	tcase_add_test(acct, test_user_name_local_part_is_case_sensitive);
	tcase_add_test(acct, test_domain_section_is_a_user_name_of_its_own);
	tcase_add_test(acct, test_address_without_section_is_no_user);
	tcase_add_test(acct, test_account_without_localpassword_cannot_log_in);
	tcase_add_test(acct, test_check_with_right_password_gives_the_account);
	tcase_add_test(acct, test_check_with_wrong_password_gives_nothing);
	tcase_add_test(acct, test_check_of_unknown_user_gives_nothing);
	suite_add_tcase(s, acct);

	tcase_add_checked_fixture(send, model_setup, NULL);
	tcase_add_test(send, test_client_may_send_as_its_own_address);
	tcase_add_test(send, test_own_address_matches_in_any_domain_case);
	tcase_add_test(send,
	    test_own_address_with_other_local_part_case_is_refused);
	tcase_add_test(send, test_client_may_send_as_an_alias_using_it);
	tcase_add_test(send, test_client_may_send_as_an_alias_of_an_alias);
	tcase_add_test(send, test_client_may_send_as_a_domain_aliased_to_it);
	tcase_add_test(send, test_alias_may_not_send_as_the_account_it_uses);
	tcase_add_test(send, test_client_may_not_send_as_another_account);
	tcase_add_test(send, test_client_may_not_send_as_its_domain_section);
	tcase_add_test(send, test_client_may_not_send_as_a_sender_of_default);
	tcase_add_test(send,
	    test_default_routed_through_client_grants_no_strangers);
	tcase_add_test(send,
	    test_domain_login_may_send_as_its_addresses_without_section);
	tcase_add_test(send,
	    test_domain_login_may_not_send_as_addresses_with_section);
	tcase_add_test(send, test_domain_login_may_not_send_as_other_domains);
	tcase_add_test(send, test_default_login_may_send_as_strangers_only);
	tcase_add_test(send, test_null_sender_belongs_to_the_default_login);
	tcase_add_test(send, test_sender_without_any_account_is_refused);
	tcase_add_test(send, test_missing_arguments_are_refused);
	suite_add_tcase(s, send);

	tcase_add_test(delay, test_first_failure_is_not_delayed);
	tcase_add_test(delay,
	    test_failure_delay_starts_at_half_a_second_and_doubles);
	tcase_add_test(delay, test_failure_delay_stops_at_eight_seconds);
	suite_add_tcase(s, delay);
	return s;
}

/* main - run the suite; the exit status says whether all tests passed */
int
main(void)
{
	SRunner	*sr = srunner_create(clientauth_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
