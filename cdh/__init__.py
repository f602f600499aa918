"""cdh: a Kubernetes core dump handler.

The composer (``cdh.composer``) runs on the node under the kernel for every
crash; the agent (``cdh.agent``) installs it and moves finished zips to S3;
``cdh.tools`` (``ls``, ``get``, ``inspect``) and ``cdh.doctor`` read what they
leave; ``cdh.config`` is every setting; ``cdh.cli`` the one entry point.
What several of them share lives here, one contract per module: ``ondisk``
(the files on a node), ``keys`` (object keys), ``s3``, ``sysctl``,
``jsonline`` (log lines), ``retention``, ``signals``, ``fsutil``, ``routes`` (which namespace's
zips go where) and ``agecrypt`` (encryption to a route's recipients).

Exit codes, one set for every command (README "Exit codes"). They live here, in the module every
entry point has already loaded, so that naming them costs the composer no import.
"""

__version__ = "0.1.0"

EXIT_OK = 0           # success (composer: captured, or skipped by the pod selector or the rate limit)
EXIT_FAILURE = 1      # a command failed (sweep: a zip not uploaded; doctor: a check; get, inspect: a damaged,
                      # crafted or too big dump; install: a directory not root's alone; composer: no core)
EXIT_USAGE = 2        # bad command line (argparse's own code)
EXIT_CONFIG = 3       # a setting is invalid: one line on stderr names it
EXIT_DEADLINE = 32    # composer: CDH_COMPOSER_TIMEOUT hit; the zip is finished and marked truncated
