"""A test hook: a process that stops itself inside a named batch step, for a test to kill it there.

With POPEX_TEST_STOP_AT=<step> (parse, gate, resolve, merge, publish, statistics, receipt) in its
environment, a process that moves a batch out of that step's start state stops itself (SIGSTOP) at
that moment: the step's work is done, its transaction not yet committed. With `receive`, it stops once
a file is registered (its batch, delivery, audit record and any receipt written), before the commit. The test that set the
variable then does what a crash would: `kill -9` (the rerun must finish exactly the missing work), or
terminates the process's database connection and lets it go on (SIGCONT). Unset, it does nothing; no
setting or command sets it: only tests (tests/popex/test_ingest_crash.py).
"""

import logging
import os
import signal

log = logging.getLogger(__name__)
STOP_AT = "POPEX_TEST_STOP_AT"


def stop_point(step: str) -> None:
    """Stop this process here (SIGSTOP) when the test hook names this step; else nothing."""
    if os.environ.get(STOP_AT) == step:
        log.warning("test hook %s=%s: process %s stops inside the step", STOP_AT, step, os.getpid())
        os.kill(os.getpid(), signal.SIGSTOP)
