/*
 * test_log - the file target: one line per write, rotation by size, and
 * following a rotation made by another process.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define LIMIT	400

static char	dir[64];
static char	path[128];

static void
setup(void)
{
	strcpy(dir, "/tmp/test_log.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/test.log", dir);
	ck_assert_int_eq(log_open("test", LOG_TO_FILE, path), 0);
	log_set_level(LOG_LEVEL_INFO);
}

static void
teardown(void)
{
	char	cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* file_size - bytes in dir/name, -1 when missing */
static long
file_size(const char *name)
{
	char		p[160];
	struct stat	st;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

/* file_has - does dir/name contain text */
static int
file_has(const char *name, const char *text)
{
	char	 p[160], buf[8192];
	FILE	*f;
	size_t	 n;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if ((f = fopen(p, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, text) != NULL;
}

START_TEST(test_lines_go_to_the_file_one_per_line)
{
	log_info("hello %d", 1);
	log_debug("not shown");
	ck_assert(file_has("test.log", "test["));
	ck_assert(file_has("test.log", "INFO: hello 1\n"));
	ck_assert(!file_has("test.log", "not shown"));
}
END_TEST

START_TEST(test_a_full_file_is_rotated_and_old_files_kept_up_to_count)
{
	log_set_rotation(LIMIT, 2);
	for (int i = 0; i < 40; i++)
		log_info("line %02d with some words to fill the file", i);
	ck_assert(file_has("test.log", "line 39"));
	ck_assert_int_gt(file_size("test.log.1"), 0);
	ck_assert_int_gt(file_size("test.log.2"), 0);
	ck_assert_int_eq(file_size("test.log.3"), -1);
	/* a file is at most one line over the limit */
	ck_assert_int_lt(file_size("test.log.1"), LIMIT + 100);
	ck_assert_int_lt(file_size("test.log.2"), LIMIT + 100);
}
END_TEST

START_TEST(test_a_rotation_by_another_process_is_followed_before_writing)
{
	char	from[160], to[160];
	FILE	*f;

	log_set_rotation(LIMIT, 3);
	for (int i = 0; i < 100 && file_size("test.log") < LIMIT; i++)
		log_info("filling the file up to its size");
	ck_assert_int_ge(file_size("test.log"), LIMIT);	/* full, not rotated yet */
	/* another writer rotates: the file this process holds is now .1 */
	snprintf(from, sizeof(from), "%s/test.log", dir);
	snprintf(to, sizeof(to), "%s/test.log.1", dir);
	ck_assert_int_eq(rename(from, to), 0);
	ck_assert_ptr_nonnull(f = fopen(from, "w"));
	fclose(f);
	log_info("after the other rotation");
	ck_assert(file_has("test.log", "after the other rotation"));
	ck_assert(!file_has("test.log.1", "after the other rotation"));
	ck_assert_int_eq(file_size("test.log.2"), -1);	/* not rotated again */
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("log");
	TCase	*tc = tcase_create("file");
	SRunner	*sr;
	int	 failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_lines_go_to_the_file_one_per_line);
	tcase_add_test(tc, test_a_full_file_is_rotated_and_old_files_kept_up_to_count);
	tcase_add_test(tc, test_a_rotation_by_another_process_is_followed_before_writing);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
