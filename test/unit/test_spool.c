/*
 * test_spool - queue IDs, durable commit, claim, defer, fail, rewrite, the
 * envelope lines and the recycling of delivered files, on a real temporary
 * folder.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spool.h"
#include "util.h"

static char		 dir[PATH_MAX];
static struct spool	 sp;
static int32_t		 free_count;	/* the scoreboard's, in the daemon */

static const char	sample[] = "X-Envelope-From: <a@b.example>\r\n"
    "X-Envelope-To: <x@y.example>\r\nX-Envelope-To: <\"q r\"@z.example>\r\n"
    "Received: by us\r\n\r\nbody\r\n";

static void
setup(void)
{
	strcpy(dir, "/tmp/test_spool.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(spool_open(&sp, dir, true), 0);
}

/* setup_recycling - a spool that recycles, as in the daemon */
static void
setup_recycling(void)
{
	setup();
	free_count = 0;
	ck_assert_int_eq(spool_recycle(&sp, &free_count), 0);
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

/* count_free - tmp/free.* files */
static int
count_free(void)
{
	DIR		*d = opendir(sp.tmp);
	struct dirent	*de;
	int		 n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, SPOOL_FREE_PREFIX,
		    strlen(SPOOL_FREE_PREFIX)) == 0)
			n++;
	closedir(d);
	return n;
}

/* free_path - tmp/free.<id> (caller frees) */
static char *
free_path(const char *id)
{
	return xasprintf("%s/" SPOOL_FREE_PREFIX "%s", sp.tmp, id);
}

/* done_one - claim a queued message and report it delivered */
static void
done_one(const char *id)
{
	struct spool_entry	e;

	ck_assert_int_eq(spool_find(&sp, id, &e), 0);
	ck_assert_int_eq(spool_claim(&sp, &e), 0);
	ck_assert_int_eq(spool_done(&sp, &e), 0);
}

/* deliver_one - queue a message and deliver it: its file is freed */
static void
deliver_one(const char *content, char *id)
{
	queue_one(content, id);
	done_one(id);
}

/* deliver_two - queue two messages, then deliver both: two free files */
static void
deliver_two(char *a, char *b)
{
	queue_one(sample, a);
	queue_one(sample, b);
	done_one(a);
	done_one(b);
}

/* queued_content - the bytes of a queued message */
static char *
queued_content(const char *id, size_t *len)
{
	struct spool_entry	 e;
	struct stat		 st;
	char			*path, *buf;
	int			 fd;

	ck_assert_int_eq(spool_find(&sp, id, &e), 0);
	path = spool_path(&sp, &e);
	fd = open(path, O_RDONLY);
	free(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = xmalloc((size_t)st.st_size + 1);
	ck_assert_int_eq(read(fd, buf, (size_t)st.st_size), st.st_size);
	buf[st.st_size] = '\0';
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/* long_message - an envelope and a body of n bytes (caller frees) */
static char *
long_message(size_t n)
{
	char	*body = xmalloc(n + 1), *msg;

	memset(body, 'x', n);
	body[n] = '\0';
	msg = xasprintf("X-Envelope-From: <a@b.example>\r\n"
	    "X-Envelope-To: <x@y.example>\r\n\r\n%s", body);
	free(body);
	return msg;
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

/* read_envelope_of - write content to a scratch file and parse it */
static int
read_envelope_of(const char *content, struct envelope *env)
{
	char	path[PATH_MAX];
	int	fd, rc;

	snprintf(path, sizeof(path), "%s/scratch", sp.dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_all(fd, content, strlen(content)),
	    (ssize_t)strlen(content));
	rc = spool_envelope_read(fd, env);
	close(fd);
	unlink(path);
	return rc;
}

START_TEST(test_an_envelope_longer_than_one_read_is_parsed_whole)
{
	struct envelope	 env;
	char		*content = xstrdup("X-Envelope-From: <a@b.example>\r\n"), *next;

	for (int i = 0; i < 300; i++) {
		next = xasprintf("%sX-Envelope-To: <recipient-%03d@z.example>\r\n",
		    content, i);
		free(content);
		content = next;
	}
	next = xasprintf("%sReceived: from x\r\n\r\nbody\r\n", content);
	free(content);
	content = next;
	ck_assert_int_eq(read_envelope_of(content, &env), 0);
	ck_assert_uint_eq(env.nrcpts, 300);
	ck_assert_str_eq(env.rcpts[0], "recipient-000@z.example");
	ck_assert_str_eq(env.rcpts[299], "recipient-299@z.example");
	ck_assert_int_eq(env.body_offset, strstr(content, "Received") - content);
	spool_envelope_free(&env);
	free(content);
}
END_TEST

START_TEST(test_an_envelope_that_ends_the_file_without_a_newline_counts)
{
	struct envelope	env;
	const char	*content = "X-Envelope-From: <>\nX-Envelope-To: <c@d>";

	ck_assert_int_eq(read_envelope_of(content, &env), 0);
	ck_assert_str_eq(env.sender, "");
	ck_assert_str_eq(env.rcpts[0], "c@d");
	ck_assert_int_eq(env.body_offset, (off_t)strlen(content));
	spool_envelope_free(&env);
	ck_assert_int_eq(read_envelope_of("X-Envelope-From: <a@b>\n\n", &env),
	    -1);
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

START_TEST(test_delivered_file_is_kept_as_a_free_file_in_tmp)
{
	char		 id[SPOOL_ID_MAX];
	char		*path;
	struct stat	 st;

	deliver_one(sample, id);
	ck_assert_int_eq(count_files(sp.cur), 0);
	path = free_path(id);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(free_count, 1);
	free(path);
}
END_TEST

START_TEST(test_create_reuses_a_free_file)
{
	char			 id[SPOOL_ID_MAX];
	char			*path;
	struct stat		 freed, taken;
	struct spool_msg	 msg;

	deliver_one(sample, id);
	path = free_path(id);
	ck_assert_int_eq(stat(path, &freed), 0);
	ck_assert_int_eq(spool_create(&sp, &msg), 0);
	ck_assert(msg.recycled);
	ck_assert_int_eq(fstat(msg.fd, &taken), 0);
	ck_assert_uint_eq(taken.st_ino, freed.st_ino);
	ck_assert_str_ne(msg.id, id);
	ck_assert_int_eq(access(path, F_OK), -1);
	ck_assert_int_eq(free_count, 0);
	spool_abort(&sp, &msg);
	free(path);
}
END_TEST

START_TEST(test_shorter_message_in_a_longer_free_file_keeps_only_its_bytes)
{
	char	 old[SPOOL_ID_MAX], id[SPOOL_ID_MAX];
	char	*big = long_message(10000), *got;
	size_t	 len;

	deliver_one(big, old);
	queue_one(sample, id);
	ck_assert_int_eq(count_free(), 0);
	got = queued_content(id, &len);
	ck_assert_uint_eq(len, strlen(sample));
	ck_assert_str_eq(got, sample);
	free(got);
	free(big);
}
END_TEST

START_TEST(test_rewrite_into_a_longer_free_file_keeps_only_the_copy)
{
	char			 old[SPOOL_ID_MAX], id[SPOOL_ID_MAX], *big, *got;
	struct spool_entry	 e;
	struct envelope		 env;
	bool			 keep[2] = { true, false };
	size_t			 len;
	char			*path;
	int			 fd;

	queue_one(sample, id);
	big = long_message(10000);
	deliver_one(big, old);
	ck_assert_int_eq(spool_find(&sp, id, &e), 0);
	ck_assert_int_eq(spool_claim(&sp, &e), 0);
	path = spool_path(&sp, &e);
	fd = open(path, O_RDONLY);
	ck_assert_int_eq(spool_envelope_read(fd, &env), 0);
	close(fd);
	ck_assert_int_eq(spool_rewrite_rcpts(&sp, &e, &env, keep), 0);
	ck_assert_int_eq(count_free(), 0);
	got = queued_content(id, &len);
	ck_assert_str_eq(got, "X-Envelope-From: <a@b.example>\r\n"
	    "X-Envelope-To: <x@y.example>\r\nReceived: by us\r\n\r\n"
	    "body\r\n");
	ck_assert_uint_eq(len, strlen(got));
	spool_envelope_free(&env);
	free(got);
	free(big);
	free(path);
}
END_TEST

START_TEST(test_file_over_the_recycle_size_is_unlinked)
{
	char	 id[SPOOL_ID_MAX];
	char	*big = long_message(SPOOL_RECYCLE_SIZE);

	deliver_one(big, id);
	ck_assert_int_eq(count_files(sp.tmp), 0);
	ck_assert_int_eq(count_files(sp.cur), 0);
	ck_assert_int_eq(free_count, 0);
	free(big);
}
END_TEST

START_TEST(test_file_of_exactly_the_recycle_size_is_kept)
{
	char	 id[SPOOL_ID_MAX];
	char	*big = long_message(SPOOL_RECYCLE_SIZE);

	big[SPOOL_RECYCLE_SIZE] = '\0';	/* the whole file that long */
	deliver_one(big, id);
	ck_assert_int_eq(count_free(), 1);
	free(big);
}
END_TEST

START_TEST(test_file_with_a_second_name_is_unlinked_not_reused)
{
	char			 id[SPOOL_ID_MAX];
	struct spool_entry	 e;
	char			*path, *other;
	struct stat		 st;

	queue_one(sample, id);
	ck_assert_int_eq(spool_find(&sp, id, &e), 0);
	ck_assert_int_eq(spool_claim(&sp, &e), 0);
	path = spool_path(&sp, &e);
	other = xasprintf("%s/1.M1P1Q1.same", sp.cur);
	ck_assert_int_eq(link(path, other), 0);
	ck_assert_int_eq(spool_done(&sp, &e), 0);
	ck_assert_int_eq(count_free(), 0);
	ck_assert_int_eq(free_count, 0);
	ck_assert_int_eq(stat(other, &st), 0);
	ck_assert_int_eq(st.st_nlink, 1);
	free(path);
	free(other);
}
END_TEST

START_TEST(test_full_pool_unlinks_the_delivered_file)
{
	char	id[SPOOL_ID_MAX];

	free_count = SPOOL_RECYCLE_MAX;
	deliver_one(sample, id);
	ck_assert_int_eq(count_files(sp.tmp), 0);
	ck_assert_int_eq(count_files(sp.cur), 0);
	ck_assert_int_eq(free_count, SPOOL_RECYCLE_MAX);
}
END_TEST

START_TEST(test_pool_below_its_limit_takes_one_more)
{
	char	id[SPOOL_ID_MAX];

	free_count = SPOOL_RECYCLE_MAX - 1;
	deliver_one(sample, id);
	ck_assert_int_eq(count_free(), 1);
	ck_assert_int_eq(free_count, SPOOL_RECYCLE_MAX);
}
END_TEST

START_TEST(test_without_a_counter_nothing_is_recycled)
{
	char			 id[SPOOL_ID_MAX];
	char			*path;
	struct spool_msg	 msg;
	int			 fd;

	deliver_one(sample, id);
	ck_assert_int_eq(count_files(sp.tmp), 0);
	path = free_path("1.M1P1Q1.left");	/* a running daemon's */
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(spool_create(&sp, &msg), 0);
	ck_assert(!msg.recycled);
	ck_assert_int_eq(access(path, F_OK), 0);
	spool_abort(&sp, &msg);
	free(path);
}
END_TEST

/* steal_free - another process takes whichever of a and b is still free */
static void
steal_free(const char *a, const char *b)
{
	char	*path = free_path(a), *gone;

	if (access(path, F_OK) < 0) {
		free(path);
		path = free_path(b);
	}
	gone = xasprintf("%s/elsewhere", dir);
	ck_assert_int_eq(rename(path, gone), 0);
	free(path);
	free(gone);
}

START_TEST(test_free_file_taken_by_another_process_falls_back_to_a_new_one)
{
	char			a[SPOOL_ID_MAX], b[SPOOL_ID_MAX];
	struct spool_msg	msg;

	deliver_two(a, b);
	ck_assert_int_eq(free_count, 2);
	ck_assert_int_eq(spool_create(&sp, &msg), 0);	/* caches both */
	ck_assert(msg.recycled);
	spool_abort(&sp, &msg);
	steal_free(a, b);
	ck_assert_int_eq(free_count, 1);
	ck_assert_int_eq(spool_create(&sp, &msg), 0);
	ck_assert(!msg.recycled);
	ck_assert_int_eq(write_all(msg.fd, sample, strlen(sample)),
	    (ssize_t)strlen(sample));
	ck_assert_int_eq(spool_commit(&sp, &msg), 0);
	ck_assert_int_eq(count_files(sp.tmp), 0);
	ck_assert_int_eq(count_files(sp.new), 1);
}
END_TEST

START_TEST(test_stale_name_is_skipped_and_tmp_walked_again)
{
	char			 a[SPOOL_ID_MAX], b[SPOOL_ID_MAX], c[SPOOL_ID_MAX];
	char			*path;
	struct spool_msg	 msg;

	deliver_two(a, b);
	ck_assert_int_eq(spool_create(&sp, &msg), 0);	/* caches both */
	ck_assert(msg.recycled);
	spool_abort(&sp, &msg);
	steal_free(a, b);
	deliver_one(sample, c);		/* a fresh file, freed */
	path = free_path(c);
	ck_assert_int_eq(access(path, F_OK), 0);
	ck_assert_int_eq(spool_create(&sp, &msg), 0);
	ck_assert(msg.recycled);
	ck_assert_int_eq(access(path, F_OK), -1);
	spool_abort(&sp, &msg);
	free(path);
}
END_TEST

START_TEST(test_count_never_goes_below_zero)
{
	char			id[SPOOL_ID_MAX];
	struct spool_msg	msg;

	deliver_one(sample, id);
	free_count = 1;
	ck_assert_int_eq(spool_create(&sp, &msg), 0);
	ck_assert(msg.recycled);
	spool_abort(&sp, &msg);
	ck_assert_int_eq(free_count, 0);
	free_count = -3;	/* gone wrong: no taking, no harm */
	ck_assert_int_eq(spool_create(&sp, &msg), 0);
	ck_assert(!msg.recycled);
	spool_abort(&sp, &msg);
	ck_assert_int_eq(free_count, -3);
}
END_TEST

START_TEST(test_recycle_counts_the_free_files_already_there)
{
	char	a[SPOOL_ID_MAX], b[SPOOL_ID_MAX];
	int32_t	again = 99;

	deliver_two(a, b);
	ck_assert_int_eq(spool_recycle(&sp, &again), 0);
	ck_assert_int_eq(again, 2);
	ck_assert_ptr_eq(sp.free_count, &again);
}
END_TEST

START_TEST(test_clean_tmp_removes_idle_free_files_and_counts_the_rest)
{
	char			a[SPOOL_ID_MAX], b[SPOOL_ID_MAX];
	struct spool_msg	msg;

	deliver_two(a, b);
	ck_assert_int_eq(spool_create(&sp, &msg), 0);	/* in progress */
	ck_assert_int_eq(spool_clean_tmp(&sp, time(NULL)), 0);
	ck_assert_int_eq(free_count, 1);
	ck_assert_int_eq(spool_clean_tmp(&sp, time(NULL) + 37 * 3600), 2);
	ck_assert_int_eq(count_files(sp.tmp), 0);
	ck_assert_int_eq(free_count, 0);
	close(msg.fd);
}
END_TEST

START_TEST(test_clean_tmp_mends_a_wrong_count)
{
	char	id[SPOOL_ID_MAX];

	deliver_one(sample, id);
	free_count = 57;
	ck_assert_int_eq(spool_clean_tmp(&sp, time(NULL)), 0);
	ck_assert_int_eq(free_count, 1);
}
END_TEST

START_TEST(test_taken_free_file_is_not_stale_however_old_its_message)
{
	char			 id[SPOOL_ID_MAX];
	char			*path;
	struct spool_msg	 msg;
	struct timeval		 old[2] = { { time(NULL) - 40 * 3600, 0 },
	    { time(NULL) - 40 * 3600, 0 } };

	deliver_one(sample, id);
	path = free_path(id);
	ck_assert_int_eq(utimes(path, old), 0);
	ck_assert_int_eq(spool_create(&sp, &msg), 0);
	ck_assert(msg.recycled);
	ck_assert_int_eq(spool_clean_tmp(&sp, time(NULL)), 0);
	ck_assert_int_eq(count_files(sp.tmp), 1);
	spool_abort(&sp, &msg);
	free(path);
}
END_TEST

/* churn - one process queueing and delivering n messages */
static void
churn(int n)
{
	char	id[SPOOL_ID_MAX];

	for (int i = 0; i < n; i++)
		deliver_one(i % 3 ? sample : "X-Envelope-From: <a@b>\r\n"
		    "X-Envelope-To: <c@d>\r\n\r\nshort\r\n", id);
}

START_TEST(test_processes_at_once_keep_the_count_and_the_limit)
{
	int32_t	*shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t	 pids[4];
	int	 status;

	ck_assert_ptr_ne(shared, MAP_FAILED);
	ck_assert_int_eq(spool_recycle(&sp, shared), 0);
	deliver_one(sample, (char[SPOOL_ID_MAX]){ 0 });
	for (size_t i = 0; i < ARRAY_LEN(pids); i++) {
		if ((pids[i] = fork()) == 0) {
			churn(300);
			_exit(0);
		}
		ck_assert_int_gt(pids[i], 0);
	}
	for (size_t i = 0; i < ARRAY_LEN(pids); i++) {
		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	ck_assert_int_eq(*shared, count_free());
	ck_assert_int_le(*shared, SPOOL_RECYCLE_MAX);
	ck_assert_int_eq(count_files(sp.tmp), count_free());
	ck_assert_int_eq(count_files(sp.new) + count_files(sp.cur), 0);
	sp.free_count = NULL;
	munmap(shared, sizeof(*shared));
}
END_TEST

START_TEST(test_many_deliveries_fill_the_pool_to_its_limit_and_no_further)
{
	char	id[SPOOL_ID_MAX];

	for (int i = 0; i < SPOOL_RECYCLE_MAX + 10; i++)
		queue_one(sample, id);
	for (int i = 0; i < SPOOL_RECYCLE_MAX + 10; i++) {
		struct spool_entry	e;
		time_t			next;

		ck_assert_int_eq(spool_scan(&sp, time(NULL), first_entry, &e,
		    &next), 0);
		ck_assert_int_eq(spool_claim(&sp, &e), 0);
		ck_assert_int_eq(spool_done(&sp, &e), 0);
	}
	ck_assert_int_eq(count_free(), SPOOL_RECYCLE_MAX);
	ck_assert_int_eq(free_count, SPOOL_RECYCLE_MAX);
}
END_TEST

START_TEST(test_shared_sync_covers_every_commit_of_processes_at_once)
{
	uint64_t	*seq = mmap(NULL, 2 * sizeof(*seq), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t		 pids[4];
	int		 status;
	char		 id[SPOOL_ID_MAX];

	ck_assert_ptr_ne(seq, MAP_FAILED);
	spool_share_sync(&sp, seq);
	queue_one(sample, id);
	ck_assert_uint_eq(seq[SPOOL_SYNC_REQUESTED], 1);
	ck_assert_uint_eq(seq[SPOOL_SYNC_DONE], 1);
	spool_share_sync(&sp, seq);	/* the children open new/ on their own */
	for (size_t i = 0; i < ARRAY_LEN(pids); i++) {
		if ((pids[i] = fork()) == 0) {
			for (int k = 0; k < 50; k++)
				queue_one(sample, id);
			_exit(0);
		}
		ck_assert_int_gt(pids[i], 0);
	}
	for (size_t i = 0; i < ARRAY_LEN(pids); i++) {
		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	/* every rename numbered, and an fsync that began after the last one */
	ck_assert_uint_eq(seq[SPOOL_SYNC_REQUESTED], 200);
	ck_assert_uint_eq(seq[SPOOL_SYNC_DONE], 200);
	ck_assert_int_eq(count_files(sp.new), 201);
	sp.sync_seq = NULL;
	munmap(seq, 2 * sizeof(*seq));
}
END_TEST

START_TEST(test_a_commit_already_covered_by_a_shared_sync_needs_none)
{
	uint64_t	seq[2];
	char		id[SPOOL_ID_MAX];

	spool_share_sync(&sp, seq);
	/* as if another process had synced beyond the next rename */
	seq[SPOOL_SYNC_DONE] = 10;
	queue_one(sample, id);
	ck_assert_uint_eq(seq[SPOOL_SYNC_REQUESTED], 1);
	ck_assert_uint_eq(seq[SPOOL_SYNC_DONE], 10);	/* never moves back */
	ck_assert_int_eq(count_files(sp.new), 1);
	sp.sync_seq = NULL;
}
END_TEST

/* recycle_case - the recycling of delivered files, with a shared count */
static TCase *
recycle_case(void)
{
	TCase	*tc = tcase_create("recycle");

	tcase_add_checked_fixture(tc, setup_recycling, teardown);
	tcase_add_test(tc, test_delivered_file_is_kept_as_a_free_file_in_tmp);
	tcase_add_test(tc, test_create_reuses_a_free_file);
	tcase_add_test(tc,
	    test_shorter_message_in_a_longer_free_file_keeps_only_its_bytes);
	tcase_add_test(tc, test_rewrite_into_a_longer_free_file_keeps_only_the_copy);
	tcase_add_test(tc, test_file_over_the_recycle_size_is_unlinked);
	tcase_add_test(tc, test_file_of_exactly_the_recycle_size_is_kept);
	tcase_add_test(tc, test_file_with_a_second_name_is_unlinked_not_reused);
	tcase_add_test(tc, test_full_pool_unlinks_the_delivered_file);
	tcase_add_test(tc, test_pool_below_its_limit_takes_one_more);
	tcase_add_test(tc,
	    test_free_file_taken_by_another_process_falls_back_to_a_new_one);
	tcase_add_test(tc, test_stale_name_is_skipped_and_tmp_walked_again);
	tcase_add_test(tc, test_count_never_goes_below_zero);
	tcase_add_test(tc, test_recycle_counts_the_free_files_already_there);
	tcase_add_test(tc,
	    test_clean_tmp_removes_idle_free_files_and_counts_the_rest);
	tcase_add_test(tc, test_clean_tmp_mends_a_wrong_count);
	tcase_add_test(tc,
	    test_taken_free_file_is_not_stale_however_old_its_message);
	tcase_add_test(tc, test_processes_at_once_keep_the_count_and_the_limit);
	tcase_add_test(tc, test_many_deliveries_fill_the_pool_to_its_limit_and_no_further);
	return tc;
}

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
	tcase_add_test(tc, test_an_envelope_longer_than_one_read_is_parsed_whole);
	tcase_add_test(tc, test_an_envelope_that_ends_the_file_without_a_newline_counts);
	tcase_add_test(tc, test_rewrite_keeps_only_owed_recipients_and_the_body);
	tcase_add_test(tc, test_old_tmp_files_are_cleaned_after_36_hours);
	tcase_add_test(tc, test_find_locates_a_message_in_each_folder);
	tcase_add_test(tc, test_shared_sync_covers_every_commit_of_processes_at_once);
	tcase_add_test(tc, test_a_commit_already_covered_by_a_shared_sync_needs_none);
	tcase_add_test(tc, test_make_due_brings_a_deferred_message_forward);
	tcase_add_test(tc, test_make_due_puts_a_failed_message_back_in_the_queue);
	tcase_add_test(tc, test_delete_of_a_failed_message_removes_its_reason_too);
	tcase_add_test(tc, test_without_a_counter_nothing_is_recycled);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, recycle_case());
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
