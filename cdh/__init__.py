"""cdh: a Kubernetes core dump handler.

The composer (``cdh.composer``) runs on the node under the kernel for every
crash; the agent (``cdh.agent``) installs it and moves finished zips to S3.
"""

__version__ = "0.1.0"
