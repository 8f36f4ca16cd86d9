/*
 * courier - the delivery child of the relay: it takes batches of one
 * account's messages from the relay over a socket, sends them over one
 * upstream session that it keeps between batches, and settles each message
 * in the spool (unlink, defer with back-off, or fail) as soon as its
 * outcome is known.  Also the in-memory form of a claimed message, which
 * the relay uses to queue it by account.
 *
 *   relay_item_load(cfg, sp, it, keep_open)
 *        read the envelope of it->entry and find its account (use=
 *        followed; NULL when none matches): 0, or -1 with errno.  With
 *        keep_open the file stays open in it->fd for sending.
 *   relay_item_free(it)     close and release what load and sending made
 *   courier_send(sock, items, n)
 *        relay side: hand a courier that reported itself idle the next
 *        batch (at most RELAY_BATCH_MAX messages of its account), without
 *        blocking: 0, or -1 with errno (the courier is then to be closed).
 *   courier_main(cfg, sp, acct, sock)
 *        the child's life, never returns.  For each batch: POP-before-SMTP
 *        if the account wants it, then every message over the session,
 *        each logged and settled at once, so that neither a stop nor a
 *        crash later in the batch can lose it or send it twice.  Then it
 *        writes one byte COURIER_IDLE to the socket (everything it was
 *        given is settled) and waits for the next batch, keeping its
 *        upstream connection.  It exits instead when the socket reaches
 *        end of file (the relay closed it: idle too long, or stopping),
 *        on SIGTERM (after the message in hand), when its connection
 *        failed (connect, TLS, AUTH: the next batch gets a new child and a
 *        new try), or once its session is COURIER_REUSE_TIME seconds old.
 *        It dies with the relay (PDEATHSIG), so a new relay never races an
 *        orphan over the same messages.
 */
#ifndef SMTPPROXY_COURIER_H
#define SMTPPROXY_COURIER_H

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"
#include "deliver.h"
#include "spool.h"

#define COURIER_IDLE		'd'	/* the batch is settled; send more */
#define COURIER_REUSE_TIME	300	/* seconds a session may be reused */

/* One claimed message on its way upstream. */
struct relay_item {
	struct spool_entry	 entry;
	struct envelope		 env;
	int			 fd;		/* open only in the courier */
	off_t			 size;
	const struct account	*account;	/* use= already followed */
	char			*headers;	/* rewritten header block, or NULL */
	struct delivery_msg	 msg;
};

int	relay_item_load(const struct config *, struct spool *,
	    struct relay_item *, bool);
void	relay_item_free(struct relay_item *);
int	courier_send(int, struct relay_item *const *, size_t);
void	courier_main(const struct config *, struct spool *,
	    const struct account *, int) __attribute__((noreturn));

#endif
