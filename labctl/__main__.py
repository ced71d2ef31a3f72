"""`python -m labctl`: the same as the `labctl` command."""

import signal

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})   # labctl.entry lets them in

from .entry import main  # noqa: E402

main()
