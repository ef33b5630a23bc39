"""jobrelay on Scaleway Serverless Jobs: ``ScalewayExecutor``.

Example::

    from jobrelay import JobSpec
    from jobrelay_scaleway import ScalewayExecutor

    with ScalewayExecutor(logs_token="...") as scaleway:
        execution = scaleway.launch(JobSpec("busybox", "echo hi"))
        print(scaleway.harvest(execution).logs.stdout)
"""

from jobrelay_scaleway._executor import ScalewayExecutor

__all__ = ["ScalewayExecutor"]
