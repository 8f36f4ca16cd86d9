/*
 * relay - the relay worker: a process of its own, forked by the master.
 *
 *   relay_main(cfg, spool)
 *        loop until SIGTERM: wake on the trigger FIFO, when the earliest
 *        deferred message falls due, or every sleeptime seconds; claim the
 *        due messages, look up each sender's account at send time, and
 *        queue them in memory per account.  Each account with mail waiting
 *        gets a courier, a delivery child (courier.h; at most
 *        relayprocesses at once) that sends a batch over one upstream
 *        session and then unlinks, defers with back-off, or fails each
 *        message; an account with a backlog gets up to
 *        RELAY_ACCOUNT_SESSIONS sessions in parallel.  A courier that has
 *        settled its batch stays, with its upstream connection, for
 *        RELAY_LINGER_MS, and the account's next mail goes over that
 *        connection (as Postfix's connection cache does); an account that
 *        has no courier while every place is taken makes another account's
 *        idle courier leave.  Messages held (waiting or in flight) are
 *        remembered by ID, so scans do no further work for them; a
 *        courier dies with the relay, so a restarted relay never races an
 *        orphan.  SIGUSR1 makes
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
#define RELAY_WAITING_MAX	10000	/* loaded and waiting, over all accounts */
#define RELAY_ACCOUNT_SESSIONS	4	/* parallel upstream sessions per account */
#define RELAY_PARALLEL_MIN	10	/* waiting messages worth one more session */
#define RELAY_CLEAN_INTERVAL	3600	/* seconds between tmp/ clean-ups */
#define RELAY_LINGER_MS		5000	/* an idle courier keeps its connection */

int	relay_main(const struct config *, struct spool *);

#endif
