/*
 * retry - back-off and the fate of a message after an attempt (see retry.h).
 */
#include "retry.h"

/* retry_delay - min doubling per attempt, capped at max */
time_t
retry_delay(int attempts, int min, int max)
{
	time_t	delay = min > 0 ? min : 1;

	for (int i = 1; i < attempts && delay < max; i++)
		delay *= 2;
	return delay > max ? max : delay;
}

/* retry_decide - done, try again later, or give up */
enum retry_action
retry_decide(const struct delivery_msg *msg, time_t first_seen, time_t now,
    int lifetime)
{
	size_t	owed = 0, failed = 0;

	for (size_t i = 0; i < msg->nrcpts; i++) {
		switch (msg->rcpts[i].status) {
		case DELIVERY_DELIVERED:
			break;
		case DELIVERY_PERMFAIL:
			failed++;
			break;
		default:
			owed++;
			break;
		}
	}
	if (owed > 0)
		return now - first_seen >= lifetime ? RETRY_FAIL : RETRY_DEFER;
	if (failed == msg->nrcpts)
		return RETRY_FAIL;
	return RETRY_DONE;
}
