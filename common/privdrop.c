/*
 * privdrop - running as the configured user (see privdrop.h).
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "privdrop.h"

/* priv_resolve - user= and group= to numbers, and whether to switch */
int
priv_resolve(const struct config *cfg, struct priv *priv, char *err,
    size_t errlen)
{
	struct passwd	*pw;
	struct group	*gr;

	memset(priv, 0, sizeof(*priv));
	priv->uid = geteuid();
	priv->gid = getegid();
	if (cfg->user == NULL && cfg->group == NULL)
		return 0;
	if (cfg->user != NULL) {
		if ((pw = getpwnam(cfg->user)) == NULL) {
			snprintf(err, errlen, "user '%s' does not exist",
			    cfg->user);
			return -1;
		}
		priv->uid = pw->pw_uid;
		priv->gid = pw->pw_gid;
	}
	if (cfg->group != NULL) {
		if ((gr = getgrnam(cfg->group)) == NULL) {
			snprintf(err, errlen, "group '%s' does not exist",
			    cfg->group);
			return -1;
		}
		priv->gid = gr->gr_gid;
	}
	if (priv->uid == geteuid() && priv->gid == getegid())
		return 0;
	if (geteuid() != 0) {
		snprintf(err, errlen, "user=/group= need the daemon to be "
		    "started as root (it runs as uid %ld)", (long)geteuid());
		return -1;
	}
	priv->switching = true;
	return 0;
}

/* priv_chown - hand a path to the run-as user */
int
priv_chown(const struct priv *priv, const char *path)
{
	if (!priv->switching)
		return 0;
	return chown(path, priv->uid, priv->gid);
}

/* priv_drop - become the run-as user for good */
int
priv_drop(const struct priv *priv)
{
	if (!priv->switching)
		return 0;
	if (setgroups(1, &priv->gid) < 0 || setgid(priv->gid) < 0 ||
	    setuid(priv->uid) < 0)
		return -1;
	/* If root can be regained, the drop did not happen: refuse to go on. */
	if (priv->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		errno = EPERM;
		return -1;
	}
	return 0;
}
