"""Runs a command under a Docker-style seccomp filter: every syscall is allowed except the
named ones, which fail with the given errno (as Docker's default profile answers EPERM).

usage: seccomp-run.py ERRNO SYSCALL[,SYSCALL...] -- COMMAND [ARG...]
"""

import errno
import os
import sys

import seccomp

err, names, separator, *command = sys.argv[1:]
assert separator == "--" and command, __doc__
flt = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
# Like runc without no-new-privileges: setuid programs keep working.
flt.set_attr(seccomp.Attr.CTL_NNP, 0)
for name in names.split(","):
    flt.add_rule(seccomp.ERRNO(getattr(errno, err)), name)
flt.load()
os.execvp(command[0], command)
