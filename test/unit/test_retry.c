/*
 * test_retry - back-off growth and the fate of a message after an attempt.
 */
#include <check.h>
#include <stdlib.h>

#include "retry.h"

/* msg_with - a message whose recipients have the given outcomes */
static struct delivery_msg
msg_with(struct delivery_rcpt *r, size_t n)
{
	struct delivery_msg	m = { 0 };

	m.rcpts = r;
	m.nrcpts = n;
	return m;
}

START_TEST(test_delay_starts_at_min_and_doubles)
{
	ck_assert_int_eq(retry_delay(1, 60, 3600), 60);
	ck_assert_int_eq(retry_delay(2, 60, 3600), 120);
	ck_assert_int_eq(retry_delay(3, 60, 3600), 240);
}
END_TEST

START_TEST(test_delay_never_exceeds_max)
{
	ck_assert_int_eq(retry_delay(7, 60, 3600), 3600);
	ck_assert_int_eq(retry_delay(1000, 60, 3600), 3600);
}
END_TEST

START_TEST(test_all_delivered_is_done)
{
	struct delivery_rcpt	r[2] = { { .status = DELIVERY_DELIVERED },
	    { .status = DELIVERY_DELIVERED } };
	struct delivery_msg	m = msg_with(r, 2);

	ck_assert_int_eq(retry_decide(&m, 0, 10, 100), RETRY_DONE);
}
END_TEST

START_TEST(test_a_temporary_failure_defers)
{
	struct delivery_rcpt	r[2] = { { .status = DELIVERY_DELIVERED },
	    { .status = DELIVERY_TEMPFAIL } };
	struct delivery_msg	m = msg_with(r, 2);

	ck_assert_int_eq(retry_decide(&m, 0, 10, 100), RETRY_DEFER);
}
END_TEST

START_TEST(test_temporary_failure_after_lifetime_fails)
{
	struct delivery_rcpt	r[1] = { { .status = DELIVERY_TEMPFAIL } };
	struct delivery_msg	m = msg_with(r, 1);

	ck_assert_int_eq(retry_decide(&m, 0, 100, 100), RETRY_FAIL);
}
END_TEST

START_TEST(test_all_permanent_failures_fail)
{
	struct delivery_rcpt	r[2] = { { .status = DELIVERY_PERMFAIL },
	    { .status = DELIVERY_PERMFAIL } };
	struct delivery_msg	m = msg_with(r, 2);

	ck_assert_int_eq(retry_decide(&m, 0, 10, 100), RETRY_FAIL);
}
END_TEST

START_TEST(test_mixed_delivered_and_permanent_is_done)
{
	struct delivery_rcpt	r[2] = { { .status = DELIVERY_DELIVERED },
	    { .status = DELIVERY_PERMFAIL } };
	struct delivery_msg	m = msg_with(r, 2);

	ck_assert_int_eq(retry_decide(&m, 0, 10, 100), RETRY_DONE);
}
END_TEST

START_TEST(test_untried_recipient_is_still_owed)
{
	struct delivery_rcpt	r[1] = { { .status = DELIVERY_PENDING } };
	struct delivery_msg	m = msg_with(r, 1);

	ck_assert_int_eq(retry_decide(&m, 0, 10, 100), RETRY_DEFER);
}
END_TEST

static Suite *
retry_suite(void)
{
	Suite	*s = suite_create("retry");
	TCase	*tc = tcase_create("retry");

	tcase_add_test(tc, test_delay_starts_at_min_and_doubles);
	tcase_add_test(tc, test_delay_never_exceeds_max);
	tcase_add_test(tc, test_all_delivered_is_done);
	tcase_add_test(tc, test_a_temporary_failure_defers);
	tcase_add_test(tc, test_temporary_failure_after_lifetime_fails);
	tcase_add_test(tc, test_all_permanent_failures_fail);
	tcase_add_test(tc, test_mixed_delivered_and_permanent_is_done);
	tcase_add_test(tc, test_untried_recipient_is_still_owed);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(retry_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
