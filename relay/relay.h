/*
 * relay - the relay worker: a process of its own, forked by the master.
 *
 *   relay_main(cfg, spool)
 *        loop until SIGTERM: wake on the trigger FIFO, when the earliest
 *        deferred message falls due, or every sleeptime seconds; claim the
 *        due messages, look up each sender's account at send time, deliver
 *        them in batches per account (one upstream session each), then
 *        unlink, defer with back-off, or fail each message.  SIGUSR1 makes
 *        every deferred message due at once (flush).  Once an hour it
 *        removes tmp/ files left by crashed listeners.  Returns the exit
 *        status for the process.
 */
#ifndef SMTPPROXY_RELAY_H
#define SMTPPROXY_RELAY_H

#include "config.h"
#include "spool.h"

#define RELAY_BATCH_MAX		100	/* messages per upstream session */
#define RELAY_SCAN_MAX		1000	/* messages taken per pass */
#define RELAY_CLEAN_INTERVAL	3600	/* seconds between tmp/ clean-ups */

int	relay_main(const struct config *, struct spool *);

#endif
