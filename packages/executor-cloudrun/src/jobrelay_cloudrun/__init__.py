"""jobrelay-cloudrun: run jobrelay jobs as Google Cloud Run Jobs.

Example::

    from jobrelay import JobSpec
    from jobrelay_cloudrun import CloudRunExecutor

    with CloudRunExecutor("my-project", "europe-west1") as cloudrun:
        result = cloudrun.harvest(cloudrun.launch(JobSpec("busybox", "echo hi")))
"""

from jobrelay_cloudrun._executor import CloudRunExecutor
from jobrelay_cloudrun._names import google_label, google_labels, job_name
from jobrelay_cloudrun._sizing import Size, fit

__all__ = ["CloudRunExecutor", "Size", "fit", "google_label", "google_labels", "job_name"]
