/*
 * test_spool - queue IDs, durable commit, claim, defer, fail, rewrite and
 * the envelope lines, on a real temporary folder.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"
#include "util.h"

static char		 dir[PATH_MAX];
static struct spool	 sp;

static void
setup(void)
{
	strcpy(dir, "/tmp/test_spool.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(spool_open(&sp, dir, true), 0);
}

static void
teardown(void)
{
	char	*cmd = xasprintf("rm -rf '%s'", dir);

	spool_close(&sp);
	(void)!system(cmd);
	free(cmd);
}

/* count_files - regular files in a spool folder */
static int
count_files(const char *folder)
{
	DIR		*d = opendir(folder);
	struct dirent	*de;
	int		 n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* queue_one - commit a message with the given envelope text */
static void
queue_one(const char *content, char *id)
{
	struct spool_msg	msg;

	ck_assert_int_eq(spool_create(&sp, &msg), 0);
	ck_assert_int_eq(write_all(msg.fd, content, strlen(content)),
	    (ssize_t)strlen(content));
	ck_assert_int_eq(spool_commit(&sp, &msg), 0);
	strcpy(id, msg.id);
}

static int
first_entry(const struct spool_entry *e, void *arg)
{
	*(struct spool_entry *)arg = *e;
	return 1;
}

static int
count_entry(const struct spool_entry *e, void *arg)
{
	(void)e;
	(*(int *)arg)++;
	return 0;
}

static const char	sample[] = "X-Envelope-From: <a@b.example>\r\n"
    "X-Envelope-To: <x@y.example>\r\nX-Envelope-To: <\"q r\"@z.example>\r\n"
    "Received: by us\r\n\r\nbody\r\n";

START_TEST(test_spool_folders_are_created_private)
{
	struct stat	st;

	ck_assert_int_eq(stat(sp.new, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(stat(sp.trigger, &st), 0);
	ck_assert(S_ISFIFO(st.st_mode));
}
END_TEST

START_TEST(test_queue_id_follows_maildir_naming)
{
	char			 id[SPOOL_ID_MAX];
	struct spool_entry	 e;

	queue_one(sample, id);
	ck_assert_ptr_nonnull(strstr(id, ".M"));
	ck_assert_ptr_nonnull(strstr(id, "P"));
	ck_assert_ptr_nonnull(strstr(id, "Q"));
	ck_assert_int_eq(spool_parse_name(id, SPOOL_NEW, &e), 0);
	ck_assert_str_eq(e.id, id);
	ck_assert(e.first_seen > 0);
}
END_TEST

START_TEST(test_commit_moves_the_file_from_tmp_to_new)
{
	char	id[SPOOL_ID_MAX];

	queue_one(sample, id);
	ck_assert_int_eq(count_files(sp.tmp), 0);
	ck_assert_int_eq(count_files(sp.new), 1);
}
END_TEST

START_TEST(test_two_messages_get_different_ids)
{
	char	a[SPOOL_ID_MAX], b[SPOOL_ID_MAX];

	queue_one(sample, a);
	queue_one(sample, b);
	ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(test_abort_leaves_nothing_behind)
{
	struct spool_msg	msg;

	ck_assert_int_eq(spool_create(&sp, &msg), 0);
	spool_abort(&sp, &msg);
	ck_assert_int_eq(count_files(sp.tmp), 0);
	ck_assert_int_eq(count_files(sp.new), 0);
}
END_TEST

START_TEST(test_failed_commit_leaves_nothing_in_new)
{
	struct spool_msg	msg;

	ck_assert_int_eq(spool_create(&sp, &msg), 0);
	close(msg.fd);		/* fsync on a closed descriptor fails */
	ck_assert_int_eq(spool_commit(&sp, &msg), -1);
	ck_assert_int_eq(count_files(sp.tmp), 0);
	ck_assert_int_eq(count_files(sp.new), 0);
}
END_TEST

START_TEST(test_claim_moves_to_cur_and_records_state_in_the_name)
{
	char			id[SPOOL_ID_MAX];
	struct spool_entry	e, again;
	time_t			next;

	queue_one(sample, id);
	ck_assert_int_eq(spool_scan(&sp, time(NULL), first_entry, &e, &next), 0);
	ck_assert_int_eq(e.state, SPOOL_NEW);
	ck_assert_int_eq(spool_claim(&sp, &e), 0);
	ck_assert_int_eq(e.state, SPOOL_CUR);
	ck_assert_int_eq(count_files(sp.cur), 1);
	ck_assert_int_eq(spool_parse_name(e.name, SPOOL_CUR, &again), 0);
	ck_assert_str_eq(again.id, id);
	ck_assert_int_eq(again.attempts, 0);
}
END_TEST

START_TEST(test_second_claim_of_the_same_file_fails)
{
	char			id[SPOOL_ID_MAX];
	struct spool_entry	e, copy;
	time_t			next;

	queue_one(sample, id);
	spool_scan(&sp, time(NULL), first_entry, &e, &next);
	copy = e;
	ck_assert_int_eq(spool_claim(&sp, &e), 0);
	ck_assert_int_eq(spool_claim(&sp, &copy), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(test_deferred_message_is_not_due_before_its_time)
{
	char			id[SPOOL_ID_MAX];
	struct spool_entry	e;
	time_t			now = time(NULL), next;
	int			n = 0;

	queue_one(sample, id);
	spool_scan(&sp, now, first_entry, &e, &next);
	spool_claim(&sp, &e);
	ck_assert_int_eq(spool_defer(&sp, &e, 3, now + 100), 0);
	spool_scan(&sp, now, count_entry, &n, &next);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(next, now + 100);
	spool_scan(&sp, now + 100, count_entry, &n, &next);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(e.attempts, 3);
}
END_TEST

START_TEST(test_fail_moves_to_failed_with_reason_beside)
{
	char			 id[SPOOL_ID_MAX], buf[64] = "";
	struct spool_entry	 e;
	time_t			 next;
	char			*path;
	FILE			*fp;

	queue_one(sample, id);
	spool_scan(&sp, time(NULL), first_entry, &e, &next);
	spool_claim(&sp, &e);
	ck_assert_int_eq(spool_fail(&sp, &e, "550 no such user"), 0);
	ck_assert_int_eq(count_files(sp.cur), 0);
	ck_assert_int_eq(count_files(sp.failed), 2);
	path = xasprintf("%s/%s.reason", sp.failed, id);
	fp = fopen(path, "r");
	ck_assert_ptr_nonnull(fp);
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), fp));
	ck_assert_str_eq(buf, "550 no such user\n");
	fclose(fp);
	free(path);
}
END_TEST

START_TEST(test_envelope_lines_are_parsed_and_body_offset_found)
{
	char			 id[SPOOL_ID_MAX];
	struct spool_entry	 e;
	struct envelope		 env;
	time_t			 next;
	char			*path;
	int			 fd;

	queue_one(sample, id);
	spool_scan(&sp, time(NULL), first_entry, &e, &next);
	path = spool_path(&sp, &e);
	fd = open(path, O_RDONLY);
	ck_assert_int_eq(spool_envelope_read(fd, &env), 0);
	ck_assert_str_eq(env.sender, "a@b.example");
	ck_assert_uint_eq(env.nrcpts, 2);
	ck_assert_str_eq(env.rcpts[1], "\"q r\"@z.example");
	ck_assert_int_eq(env.body_offset, strstr(sample, "Received") - sample);
	spool_envelope_free(&env);
	close(fd);
	free(path);
}
END_TEST

START_TEST(test_file_without_envelope_is_refused)
{
	char			 id[SPOOL_ID_MAX];
	struct spool_entry	 e;
	struct envelope		 env;
	time_t			 next;
	char			*path;
	int			 fd;

	queue_one("Subject: no envelope\r\n\r\n", id);
	spool_scan(&sp, time(NULL), first_entry, &e, &next);
	path = spool_path(&sp, &e);
	fd = open(path, O_RDONLY);
	ck_assert_int_eq(spool_envelope_read(fd, &env), -1);
	close(fd);
	free(path);
}
END_TEST

START_TEST(test_rewrite_keeps_only_owed_recipients_and_the_body)
{
	char			 id[SPOOL_ID_MAX], buf[512];
	struct spool_entry	 e;
	struct envelope		 env, after;
	bool			 keep[2] = { false, true };
	time_t			 next;
	char			*path;
	int			 fd;
	ssize_t			 n;

	queue_one(sample, id);
	spool_scan(&sp, time(NULL), first_entry, &e, &next);
	spool_claim(&sp, &e);
	path = spool_path(&sp, &e);
	fd = open(path, O_RDONLY);
	spool_envelope_read(fd, &env);
	close(fd);
	ck_assert_int_eq(spool_rewrite_rcpts(&sp, &e, &env, keep), 0);
	fd = open(path, O_RDONLY);
	ck_assert_int_eq(spool_envelope_read(fd, &after), 0);
	ck_assert_uint_eq(after.nrcpts, 1);
	ck_assert_str_eq(after.rcpts[0], "\"q r\"@z.example");
	n = pread(fd, buf, sizeof(buf) - 1, after.body_offset);
	buf[n] = '\0';
	ck_assert_str_eq(buf, "Received: by us\r\n\r\nbody\r\n");
	ck_assert_int_eq(count_files(sp.tmp), 0);
	spool_envelope_free(&env);
	spool_envelope_free(&after);
	close(fd);
	free(path);
}
END_TEST

START_TEST(test_old_tmp_files_are_cleaned_after_36_hours)
{
	struct spool_msg	msg;

	ck_assert_int_eq(spool_create(&sp, &msg), 0);
	close(msg.fd);
	ck_assert_int_eq(spool_clean_tmp(&sp, time(NULL)), 0);
	ck_assert_int_eq(spool_clean_tmp(&sp, time(NULL) + 37 * 3600), 1);
	ck_assert_int_eq(count_files(sp.tmp), 0);
}
END_TEST

START_TEST(test_find_locates_a_message_in_each_folder)
{
	char			id[SPOOL_ID_MAX];
	struct spool_entry	e, found;
	time_t			next;

	queue_one(sample, id);
	ck_assert_int_eq(spool_find(&sp, id, &found), 0);
	ck_assert_int_eq(found.state, SPOOL_NEW);
	spool_scan(&sp, time(NULL), first_entry, &e, &next);
	spool_claim(&sp, &e);
	ck_assert_int_eq(spool_find(&sp, id, &found), 0);
	ck_assert_int_eq(found.state, SPOOL_CUR);
	spool_fail(&sp, &e, "gone");
	ck_assert_int_eq(spool_find(&sp, id, &found), 0);
	ck_assert_int_eq(found.state, SPOOL_FAILED);
	ck_assert_int_eq(spool_find(&sp, "1.M1P1Q1.nohost", &found), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(test_make_due_brings_a_deferred_message_forward)
{
	char			id[SPOOL_ID_MAX];
	struct spool_entry	e;
	time_t			now = time(NULL), next;
	int			n = 0;

	queue_one(sample, id);
	spool_scan(&sp, now, first_entry, &e, &next);
	spool_claim(&sp, &e);
	spool_defer(&sp, &e, 2, now + 1000);
	ck_assert_int_eq(spool_make_due(&sp, &e), 0);
	spool_scan(&sp, now, count_entry, &n, &next);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(e.attempts, 2);
}
END_TEST

START_TEST(test_make_due_puts_a_failed_message_back_in_the_queue)
{
	char			 id[SPOOL_ID_MAX];
	struct spool_entry	 e;
	time_t			 next;
	char			*why;

	queue_one(sample, id);
	spool_scan(&sp, time(NULL), first_entry, &e, &next);
	spool_claim(&sp, &e);
	spool_fail(&sp, &e, "550 no");
	spool_find(&sp, id, &e);
	ck_assert_int_eq(spool_make_due(&sp, &e), 0);
	ck_assert_int_eq(e.state, SPOOL_CUR);
	ck_assert_int_eq(count_files(sp.failed), 0);
	ck_assert_int_eq(count_files(sp.cur), 1);
	why = xasprintf("%s/%s.reason", sp.failed, id);
	ck_assert_int_eq(access(why, F_OK), -1);
	free(why);
}
END_TEST

START_TEST(test_delete_of_a_failed_message_removes_its_reason_too)
{
	char			id[SPOOL_ID_MAX];
	struct spool_entry	e;
	time_t			next;

	queue_one(sample, id);
	spool_scan(&sp, time(NULL), first_entry, &e, &next);
	spool_claim(&sp, &e);
	spool_fail(&sp, &e, "550 no");
	spool_find(&sp, id, &e);
	ck_assert_int_eq(spool_delete(&sp, &e), 0);
	ck_assert_int_eq(count_files(sp.failed), 0);
}
END_TEST

static Suite *
spool_suite(void)
{
	Suite	*s = suite_create("spool");
	TCase	*tc = tcase_create("spool");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_spool_folders_are_created_private);
	tcase_add_test(tc, test_queue_id_follows_maildir_naming);
	tcase_add_test(tc, test_commit_moves_the_file_from_tmp_to_new);
	tcase_add_test(tc, test_two_messages_get_different_ids);
	tcase_add_test(tc, test_abort_leaves_nothing_behind);
	tcase_add_test(tc, test_failed_commit_leaves_nothing_in_new);
	tcase_add_test(tc, test_claim_moves_to_cur_and_records_state_in_the_name);
	tcase_add_test(tc, test_second_claim_of_the_same_file_fails);
	tcase_add_test(tc, test_deferred_message_is_not_due_before_its_time);
	tcase_add_test(tc, test_fail_moves_to_failed_with_reason_beside);
	tcase_add_test(tc, test_envelope_lines_are_parsed_and_body_offset_found);
	tcase_add_test(tc, test_file_without_envelope_is_refused);
	tcase_add_test(tc, test_rewrite_keeps_only_owed_recipients_and_the_body);
	tcase_add_test(tc, test_old_tmp_files_are_cleaned_after_36_hours);
	tcase_add_test(tc, test_find_locates_a_message_in_each_folder);
	tcase_add_test(tc, test_make_due_brings_a_deferred_message_forward);
	tcase_add_test(tc, test_make_due_puts_a_failed_message_back_in_the_queue);
	tcase_add_test(tc, test_delete_of_a_failed_message_removes_its_reason_too);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(spool_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
