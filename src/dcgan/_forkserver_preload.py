"""Imported by the forkserver that starts folder-decoding workers, and by nothing else
(`folders._pool_context` names it first among the server's preloads).

A Ctrl-C reaches the whole process group. Only dcgan itself should act on it (stop the workers,
remove the partial cache, print one line); a worker still starting up, before its initializer
can ignore SIGINT, would die of it and break the pool. The server imports its preloads before it
records SIGINT's disposition, and every worker it forks restores that record: ignoring SIGINT
here makes each worker deaf to Ctrl-C from its first instruction, with no window in dcgan's own
process where a Ctrl-C could be lost."""

import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)
