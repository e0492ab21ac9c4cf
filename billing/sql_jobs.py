"""The SQL of durable jobs (SubmitJob ... ListRunnableJobs, retention, erasure).

Constants with $n parameters, like billing/sql.py. A user's lane is their
QUEUED and RUNNING jobs in ``seq`` order (arrival); the partial unique index
jobs_one_running_per_user makes "one RUNNING job per user" a database rule,
so two claimers that raced past every check still cannot both commit.
"""

# Every column of a durable job, as billing/postgres/rows.py reads it.
_JOB = """jobs.job_id, jobs.user_id, jobs.chat_id, jobs.message_id, jobs.state,
       coalesce(jobs.spec, ''::bytea) AS spec, jobs.status_message_id, jobs.attempt,
       jobs.lease_expire_time, jobs.cancel_requested, jobs.hold_id, jobs.create_time,
       jobs.trace_id, jobs.outcome, jobs.seq"""

# $1 job.
SQL_GET_JOB = f"SELECT {_JOB} FROM jobs WHERE job_id = $1 AND durable"  # noqa: S608

# Jobs waiting in a user's lane. $1 user.
SQL_COUNT_QUEUED = "SELECT count(*) FROM jobs WHERE user_id = $1 AND state = 'queued'"

# $1 user, $2 chat, $3 message, $4 spec, $5 trace id.
SQL_INSERT_JOB = f"""
INSERT INTO jobs
    (job_id, user_id, chat_id, message_id, duration_seconds, state, spec, trace_id, durable)
VALUES (gen_random_uuid(), $1, $2, $3, 0, 'queued', $4, $5, true)
RETURNING {_JOB}
"""  # noqa: S608 - constant SQL fragments only

# Jobs of the user ahead of one in the lane. $1 user, $2 its seq.
SQL_AHEAD = """
SELECT count(*) FROM jobs WHERE user_id = $1 AND state IN ('queued', 'running') AND seq < $2
"""

# Claims the user's next job: a RUNNING job whose lease lapsed first, else
# the oldest QUEUED one while no job of the user runs under a live lease.
# $1 user, $2 owner, $3 lease seconds. No row: nothing to claim (or another
# claimer took the lock first and changed the row: the locked row is
# re-checked, and a claim that still slips through fails on the unique
# index, which the store reads as "nothing to claim").
SQL_CLAIM_JOB = f"""
WITH c AS (
    SELECT job_id FROM jobs
    WHERE user_id = $1
      AND (state = 'queued' OR (state = 'running' AND lease_expire_time <= now()))
      AND NOT EXISTS (
          SELECT 1 FROM jobs r
          WHERE r.user_id = $1 AND r.state = 'running' AND r.lease_expire_time > now()
      )
    ORDER BY state = 'running' DESC, seq
    LIMIT 1
    FOR UPDATE
)
UPDATE jobs
SET state = 'running', attempt = jobs.attempt + 1, lease_owner = $2,
    lease_expire_time = now() + make_interval(secs => $3), update_time = now()
FROM c WHERE jobs.job_id = c.job_id
RETURNING {_JOB}
"""  # noqa: S608 - constant SQL fragments only

# Fenced by the attempt: only the runner that holds the latest claim. $1
# job, $2 attempt, $3 lease seconds.
SQL_RENEW_JOB = f"""
UPDATE jobs SET lease_expire_time = now() + make_interval(secs => $3), update_time = now()
WHERE job_id = $1 AND attempt = $2 AND state = 'running' AND durable
RETURNING {_JOB}
"""  # noqa: S608 - constant SQL fragments only

# Ends the running job; it no longer needs its file id or spec (retention).
# $1 job, $2 attempt, $3 state, $4 outcome.
SQL_FINISH_JOB = f"""
UPDATE jobs
SET state = $3, outcome = $4, lease_expire_time = NULL, lease_owner = '', file_id = '',
    spec = NULL, finish_time = now(), update_time = now()
WHERE job_id = $1 AND attempt = $2 AND state = 'running' AND durable
RETURNING {_JOB}
"""  # noqa: S608 - constant SQL fragments only

# The first status message wins. $1 job, $2 message id.
SQL_ATTACH_MESSAGE = f"""
UPDATE jobs SET status_message_id = $2, update_time = now()
WHERE job_id = $1 AND durable AND status_message_id = 0
RETURNING {_JOB}
"""  # noqa: S608 - constant SQL fragments only

# Asks the user's running job to stop. $1 user.
SQL_REQUEST_CANCEL = f"""
UPDATE jobs SET cancel_requested = true, update_time = now()
WHERE user_id = $1 AND state = 'running'
RETURNING {_JOB}
"""  # noqa: S608 - constant SQL fragments only

# Cancels the user's newest waiting job at once. $1 user. No row when none
# waits (or a claimer took it meanwhile: the caller looks again).
SQL_CANCEL_QUEUED = f"""
UPDATE jobs
SET state = 'cancelled', outcome = 'cancelled', file_id = '', spec = NULL,
    finish_time = now(), update_time = now()
WHERE job_id = (
    SELECT job_id FROM jobs WHERE user_id = $1 AND state = 'queued'
    ORDER BY seq DESC LIMIT 1
    FOR UPDATE
) AND state = 'queued'
RETURNING {_JOB}
"""  # noqa: S608 - constant SQL fragments only

# Users whose lane can move, by their oldest movable job: (seq, user_id)
# after the cursor ($1 seq, $2 user; NULL: from the start), $3 rows.
SQL_RUNNABLE_USERS = """
SELECT min(j.seq) AS first, j.user_id
FROM jobs j
WHERE (j.state = 'queued' AND NOT EXISTS (
          SELECT 1 FROM jobs r
          WHERE r.user_id = j.user_id AND r.state = 'running' AND r.lease_expire_time > now()
      ))
   OR (j.state = 'running' AND j.lease_expire_time <= now())
GROUP BY j.user_id
HAVING $1::bigint IS NULL OR (min(j.seq), j.user_id) > ($1::bigint, $2::bigint)
ORDER BY first, j.user_id
LIMIT $3
"""

# Retention: job rows created more than $1 days ago, finished, $2 at a time.
# The ledger and the holds stay (holds.job_id becomes NULL).
SQL_DELETE_OLD_JOBS = """
WITH doomed AS (
    SELECT job_id FROM jobs
    WHERE create_time < now() - make_interval(days => $1)
      AND state NOT IN ('queued', 'running', 'pending')
    ORDER BY create_time
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
DELETE FROM jobs USING doomed WHERE jobs.job_id = doomed.job_id
"""
