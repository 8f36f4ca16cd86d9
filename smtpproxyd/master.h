/*
 * master - the supervising process: owns the listening sockets and the
 * configuration, forks and watches the listener children and the relay
 * worker, and turns signals into actions.
 *
 *   master_listen(cfg, &fds, &nfds)  bind every listen address on port;
 *                        -1 with the reason logged
 *   master_tls_context(cfg, &ctx)   the clients' STARTTLS context (NULL
 *                        without tlscert); -1 with the reason logged
 *   master_run(&cfg, fds, nfds, spool, ctx, priv) supervise until
 *                        SIGTERM/SIGINT; owns ctx from then on; every child
 *                        drops to priv right after fork; a reload replaces
 *                        the config, so cfg is the one in force on return;
 *                        returns the exit status
 *
 * Signals: SIGHUP re-reads the configuration (kept if invalid; children
 * and the relay are replaced, sessions in progress finish on the old one);
 * SIGTERM/SIGINT stop accepting, let sessions finish (bounded), stop the
 * relay, exit 0; SIGUSR1 asks the relay to flush the deferred queue;
 * SIGCHLD restarts a child that died, with a growing delay if it keeps
 * dying; a byte on the wake pipe (from a listener taking the last idle
 * place) grows the pool.  Pool size: processes .. maxprocesses, from the scoreboard.
 */
#ifndef SMTPPROXY_MASTER_H
#define SMTPPROXY_MASTER_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "config.h"
#include "privdrop.h"
#include "spool.h"

#define MASTER_LISTEN_BACKLOG	1024
#define MASTER_STOP_GRACE	30	/* seconds sessions get to finish */
#define MASTER_RESPAWN_MAX	60	/* longest delay before a restart */
#define MASTER_QUICK_DEATH	10	/* a child dying sooner backs off */
#define POOL_SHRINK_IDLE	30	/* seconds idle before a spare child goes */
#define MASTER_TICK_MS		1000	/* housekeeping without any event */

int	master_listen(const struct config *, int **, size_t *);
int	master_tls_context(const struct config *, SSL_CTX **);
int	master_run(struct config **, int *, size_t, struct spool *, SSL_CTX *,
	    const struct priv *);

#endif
