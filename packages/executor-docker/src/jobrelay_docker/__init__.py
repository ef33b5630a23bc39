"""Docker executor for jobrelay: run jobs as containers on a local or remote daemon.

Example::

    from jobrelay import JobSpec
    from jobrelay_docker import DockerExecutor

    with DockerExecutor() as docker:
        result = docker.harvest(docker.launch(JobSpec("busybox", "echo hello")))
"""

from jobrelay_docker._config import TLSConfig
from jobrelay_docker._executor import DockerExecutor
from jobrelay_docker._managed import ExecResult

__all__ = ["DockerExecutor", "ExecResult", "TLSConfig"]
