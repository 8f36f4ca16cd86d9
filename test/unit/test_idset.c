/*
 * test_idset - the relay's set of queue IDs.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "idset.h"

START_TEST(test_added_ids_are_members)
{
	struct idset	s;

	idset_init(&s);
	ck_assert(idset_add(&s, "a"));
	ck_assert(idset_has(&s, "a"));
	ck_assert(!idset_has(&s, "b"));
	ck_assert_uint_eq(idset_count(&s), 1);
	idset_free(&s);
}
END_TEST

START_TEST(test_adding_twice_is_refused)
{
	struct idset	s;

	idset_init(&s);
	ck_assert(idset_add(&s, "a"));
	ck_assert(!idset_add(&s, "a"));
	ck_assert_uint_eq(idset_count(&s), 1);
	idset_free(&s);
}
END_TEST

START_TEST(test_removed_ids_are_gone_and_others_stay)
{
	struct idset	s;
	char		id[32];

	idset_init(&s);
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "%d.M1P2Q3.host", i);
		ck_assert(idset_add(&s, id));
	}
	for (int i = 0; i < 1000; i += 2) {
		snprintf(id, sizeof(id), "%d.M1P2Q3.host", i);
		ck_assert(idset_remove(&s, id));
	}
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "%d.M1P2Q3.host", i);
		ck_assert_int_eq(idset_has(&s, id), i % 2 == 1);
	}
	ck_assert_uint_eq(idset_count(&s), 500);
	idset_free(&s);
}
END_TEST

START_TEST(test_churn_does_not_fill_the_table)
{
	struct idset	s;
	char		id[32];

	idset_init(&s);
	for (int i = 0; i < 100000; i++) {
		snprintf(id, sizeof(id), "id%d", i);
		ck_assert(idset_add(&s, id));
		ck_assert(idset_remove(&s, id));
	}
	ck_assert_uint_eq(idset_count(&s), 0);
	ck_assert_uint_le(s.cap, 128);
	ck_assert(!idset_remove(&s, "id5"));
	idset_free(&s);
}
END_TEST

static Suite *
idset_suite(void)
{
	Suite	*s = suite_create("idset");
	TCase	*tc = tcase_create("idset");

	tcase_add_test(tc, test_added_ids_are_members);
	tcase_add_test(tc, test_adding_twice_is_refused);
	tcase_add_test(tc, test_removed_ids_are_gone_and_others_stay);
	tcase_add_test(tc, test_churn_does_not_fill_the_table);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(idset_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
