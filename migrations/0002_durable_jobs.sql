-- Durable jobs (issue 15), hold extension and top-up refunds (issue 14),
-- retention (issue 18).
--
-- jobs was one row per hold. It becomes the durable job record: a job the
-- gateway accepted exists before any hold (QUEUED), runs under a lease
-- (RUNNING, one per user), and a re-driven job may get a new hold. Rows a
-- plain Reserve writes (no job_id) stay what they were: one per hold, their
-- state mirroring the hold's; `durable` tells the two apart.

-- The old bigint id keeps its values and its identity sequence as `seq`, the
-- arrival order of a user's lane; the new primary key is the UUID callers see.
ALTER TABLE jobs RENAME COLUMN job_id TO seq;
ALTER TABLE jobs DROP CONSTRAINT jobs_pkey;
ALTER TABLE jobs ADD COLUMN job_id uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE jobs ADD PRIMARY KEY (job_id);

-- A durable job has no hold until it is reserved for; hold_id is then its
-- current hold (a re-drive may replace it), still unique.
ALTER TABLE jobs ALTER COLUMN hold_id DROP NOT NULL;

ALTER TABLE jobs
    ADD COLUMN durable           boolean     NOT NULL DEFAULT false,
    -- The caller's opaque record of how to run the job; NULL once finished.
    ADD COLUMN spec              bytea       CHECK (octet_length(spec) <= 16384),
    ADD COLUMN status_message_id bigint      NOT NULL DEFAULT 0,
    -- Claims so far: the fencing token of the current runner.
    ADD COLUMN attempt           integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    ADD COLUMN lease_owner       text        NOT NULL DEFAULT '',
    ADD COLUMN lease_expire_time timestamptz,
    ADD COLUMN cancel_requested  boolean     NOT NULL DEFAULT false,
    ADD COLUMN outcome           text        NOT NULL DEFAULT '' CHECK (char_length(outcome) <= 64),
    ADD COLUMN finish_time       timestamptz;

ALTER TABLE jobs DROP CONSTRAINT jobs_state_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_state_check CHECK (
    CASE WHEN durable THEN state IN ('queued', 'running', 'done', 'failed', 'cancelled')
         ELSE state IN ('pending', 'done', 'cancelled', 'expired') END
);
-- A running job always has a lease; nothing else has one.
ALTER TABLE jobs ADD CONSTRAINT jobs_lease_iff_running
    CHECK ((state = 'running') = (lease_expire_time IS NOT NULL));

-- One job at a time per user, as a database rule: two claimers that both
-- believed the lane free cannot both commit a RUNNING job. Unique btree,
-- partial, so it holds one row per busy user.
CREATE UNIQUE INDEX jobs_one_running_per_user ON jobs (user_id) WHERE state = 'running';

-- Serves ClaimJob/CancelJob/SubmitJob ("user X's waiting or running jobs in
-- arrival order") and ListRunnableJobs. Btree on (user_id, seq), partial:
-- only the live lanes, never the history.
CREATE INDEX jobs_lane_idx ON jobs (user_id, seq) WHERE state IN ('queued', 'running');

-- Serves the retention sweep: "rows created before now() - N days, oldest
-- first", in batches. Btree for the range and the order.
CREATE INDEX jobs_create_time_idx ON jobs (create_time);
-- EraseUser ("every job of user X", history included) has no index of its
-- own: it is a rare admin call, and one more btree would cost every Reserve
-- (a plain Reserve writes a job row) an insert. It scans at most
-- BILLING_JOB_RETENTION_DAYS of jobs.

-- A hold names the job it pays for, so that a job may get a second hold
-- without the first forgetting its job. SET NULL: the retention sweep
-- deletes old job rows, never holds (the ledger refers to them).
ALTER TABLE holds ADD COLUMN job_id uuid REFERENCES jobs (job_id) ON DELETE SET NULL;
UPDATE holds SET job_id = jobs.job_id FROM jobs WHERE jobs.hold_id = holds.hold_id;
-- Serves the foreign key's ON DELETE SET NULL (one lookup per deleted job).
CREATE INDEX holds_job_id_idx ON holds (job_id);

-- Retention: a settled hold's job no longer needs the Telegram file id.
UPDATE jobs SET file_id = '' WHERE state <> 'pending' AND file_id <> '';

-- Top-up refunds: a payment's credits taken back, debiting the user and
-- crediting the external account the top-up came from.
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_kind_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_kind_check
    CHECK (kind IN ('trial', 'top_up', 'capture', 'refund', 'grant', 'hold', 'release',
                    'top_up_refund'));
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_charge_only_top_up;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_charge_only_payments
    CHECK ((kind IN ('top_up', 'top_up_refund')) = (provider_charge_id IS NOT NULL));

-- A charge is refunded at most once, whatever idempotency key the caller
-- used. Unique btree on the pair, like ledger_transactions_charge_key.
CREATE UNIQUE INDEX ledger_transactions_charge_refund_once
    ON ledger_transactions (provider, provider_charge_id) WHERE kind = 'top_up_refund';

-- The statement now shows top-up refunds too; the partial index must carry
-- the same predicate as ListTransactions for the planner to use it.
DROP INDEX ledger_transactions_statement_idx;
CREATE INDEX ledger_transactions_statement_idx
    ON ledger_transactions (user_id, transaction_id)
    WHERE kind IN ('trial', 'top_up', 'capture', 'refund', 'grant', 'top_up_refund');
