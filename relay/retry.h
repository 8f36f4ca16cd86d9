/*
 * retry - back-off and the fate of a message after an attempt.  Pure
 * functions of their arguments, so the policy is unit-tested without any
 * network.
 *
 *   retry_delay(attempts, min, max)
 *        seconds to wait after the attempts-th failed attempt: min,
 *        doubling each time, never more than max
 *   retry_decide(msg, first_seen, now, lifetime)
 *        RETRY_DONE   every recipient delivered (or permanently failed
 *                     while others were delivered: nothing is owed)
 *        RETRY_DEFER  some recipient is still owed and the message is
 *                     younger than lifetime
 *        RETRY_FAIL   nothing was delivered and every recipient failed
 *                     permanently, or recipients are owed but the lifetime
 *                     is over
 */
#ifndef SMTPPROXY_RETRY_H
#define SMTPPROXY_RETRY_H

#include <time.h>

#include "deliver.h"

enum retry_action {
	RETRY_DONE,
	RETRY_DEFER,
	RETRY_FAIL
};

time_t			retry_delay(int, int, int);
enum retry_action	retry_decide(const struct delivery_msg *, time_t, time_t,
			    int);

#endif
