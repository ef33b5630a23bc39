"""jobrelay-fargate: run jobrelay jobs as AWS Fargate tasks on ECS.

Example::

    from jobrelay import JobSpec
    from jobrelay_fargate import FargateExecutor

    with FargateExecutor("jobs", ["subnet-0abc"], ["sg-0def"]) as fargate:
        result = fargate.harvest(fargate.launch(JobSpec("busybox", "echo hi")))
"""

from jobrelay_fargate._executor import FargateExecutor

__all__ = ["FargateExecutor"]
