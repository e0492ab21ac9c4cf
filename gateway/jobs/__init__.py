"""The job flow, in one place.

* :mod:`~gateway.jobs.model`: what a job is (its spec, recorded at acceptance) and how it ended.
* :mod:`~gateway.jobs.queue`: the durable queue billing keeps (submit, claim, lease, finish).
* :mod:`~gateway.jobs.runner`: each user's lane on this replica, one job at a time.
* :mod:`~gateway.jobs.saga`: one job end to end; :mod:`~gateway.jobs.money` its hold,
  :mod:`~gateway.jobs.stream` its Transcribe call, :mod:`~gateway.jobs.editor` its live edits.
* :mod:`~gateway.jobs.reconciler`: what a crash or an outage left behind.

Handlers only parse, :meth:`~gateway.jobs.queue.JobQueue.submit` and kick the runner.
"""
