"""Who can get in: the socket files' owner, group and mode, and the user the gateway runs as.

A transport's socket file (`--qemu-stream PATH`, `--vmnet`, `--bess`,
`--qemu-dgram`, `--vfkit`) lets whoever may write it hand the gateway frames,
so it is created owner-only (0600, whatever the umask: see
`gateway.edges.transports.unix_socket.bind_unix`). `--socket-mode 0660
--socket-group kvm` grants a VM helper's group; nothing is ever wider than asked.

`--user NAME` drops root once everything privileged is open (the TAP device,
the socket files, the responder's port): the gateway then runs as NAME with
NAME's group and no supplementary groups, as vpnkit runs unprivileged. The
socket file is handed to NAME too, so that the gateway can still remove it on
exit (in a sticky directory such as /tmp only the owner may).

Nothing here runs a program or evaluates anything: names are looked up with
getpwnam/getgrnam.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
from dataclasses import dataclass

from gateway.core.config import ConfigError
from gateway.core.admission import DEFAULT_MAX_GUESTS

__all__ = ["AccessConfig", "grant_socket_access", "drop_privileges", "DEFAULT_MAX_GUESTS"]

log = logging.getLogger("hostclock")


@dataclass(frozen=True)
class AccessConfig:
    """[access]: the socket files' permissions, the user to run as, how many guests may attach."""

    #: permission bits of a transport's socket file, octal (as chmod takes them)
    socket_mode: str = "0600"
    #: group of the socket file (a name or a number), or None to leave the creator's
    socket_group: str | None = None
    #: drop privileges to this user (a name or a number) after opening the TAP and sockets
    user: str | None = None
    #: connections a listening transport serves at once; further ones are refused (and logged once a minute)
    max_guests: int = DEFAULT_MAX_GUESTS

    def __post_init__(self) -> None:
        mode = self.socket_mode
        if not isinstance(mode, str) or not mode or any(c not in "01234567" for c in mode) or int(mode, 8) > 0o777:
            raise ConfigError(f"socket_mode {mode!r}: give octal permission bits such as 0600 or 0660")
        if self.socket_group is not None:
            _group_id(self.socket_group)
        if self.user is not None:
            _user_entry(self.user)
        if isinstance(self.max_guests, bool) or not isinstance(self.max_guests, int) or not 1 <= self.max_guests <= 65536:
            raise ConfigError(f"max_guests {self.max_guests!r}: give a whole number from 1 to 65536")

    @property
    def mode_bits(self) -> int:
        return int(self.socket_mode, 8)


def _group_id(group: str) -> int:
    try:
        return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"socket_group {group!r}: no such group (see getent group)") from None


def _user_entry(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(f"user {user!r}: no such user (see getent passwd)") from None


def grant_socket_access(path: str | None, access: AccessConfig) -> None:
    """Give the socket file at `path` the configured mode and group (and --user's ownership).

    Raises OSError (as a start-up failure) if it cannot: chown to a group one is not in, say.
    """
    if path is None:
        return
    owner = _user_entry(access.user).pw_uid if access.user is not None else -1
    group = _group_id(access.socket_group) if access.socket_group is not None else -1
    if owner != -1 or group != -1:
        os.chown(path, owner, group)
    os.chmod(path, access.mode_bits)


def drop_privileges(user: str | None) -> None:
    """Become `user` (its primary group, no supplementary groups); nothing if None or already it.

    Raises PermissionError if the process may not (not root). glibc's setuid applies to every
    thread of the process (the responder's too).
    """
    if user is None:
        return
    entry = _user_entry(user)
    if os.getuid() == entry.pw_uid and os.geteuid() == entry.pw_uid:
        return
    try:
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    except PermissionError:
        raise PermissionError(f"cannot switch to user {entry.pw_name}: only root can (run as root or drop --user)") from None
    if os.geteuid() != entry.pw_uid or os.getegid() != entry.pw_gid:
        raise PermissionError(f"switching to user {entry.pw_name} did not take effect")
    log.info("running as user %s (uid %d, gid %d)", entry.pw_name, entry.pw_uid, entry.pw_gid)
