/*
 * privdrop - running as the configured user.  The master resolves user=
 * and group= once, while it may still read /etc/passwd and the root-only
 * configuration; each child drops to them right after fork, before it
 * touches a client or an upstream.
 *
 *   priv_resolve(cfg, priv, err, errlen)  look up user/group; -1 with a
 *                      message if unknown, or if they differ from who we
 *                      are and we are not root (we could never switch)
 *   priv_chown(priv, path)   give a path to the run-as user (no-op when
 *                      not switching)
 *   priv_drop(priv)    setgroups, setgid, setuid, then check that root
 *                      cannot be regained; -1 (errno set) on any failure
 */
#ifndef SMTPPROXY_PRIVDROP_H
#define SMTPPROXY_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

struct priv {
	bool	switching;	/* started as root with user= set */
	uid_t	uid;
	gid_t	gid;
};

int	priv_resolve(const struct config *, struct priv *, char *, size_t);
int	priv_chown(const struct priv *, const char *);
int	priv_drop(const struct priv *);

#endif
