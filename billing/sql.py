"""The SQL billing runs, in one place.

Module constants, so the repository and bench/billing/run.py (which replays
them in pgbench) send exactly the same statements. Every value is a
parameter; the only things formatted into the text are the constant system
account ids below.
"""

# System accounts, created with these ids by migrations/0001_billing_core.sql.
REVENUE_ACCOUNT = 1
EXTERNAL_ACCOUNT = 2
PROMO_ACCOUNT = 3
ESCROW_ACCOUNT = 4


_CLAIM = """
WITH k AS (
    INSERT INTO idempotency_keys AS k (method, key, request_hash) VALUES ($1, $2, $3)
    ON CONFLICT (method, key) DO UPDATE SET method = k.method
    RETURNING k.request_hash, k.response
)"""
# k.response is NULL for a fresh claim (this transaction owns the key); a
# committed key always has its response, written before that commit. The
# no-op DO UPDATE makes the statement return the existing row too.

# The rows a decision reads, for a claim (locked, in a transaction) and for
# the read before a guarded write (not locked). {source} yields k.
_ACCOUNT_ROWS = """
SELECT k.request_hash, k.response, now() AS now, gen_random_uuid() AS new_id,
       a.role, a.account_id, a.balance, a.held{actor}
FROM {source}
LEFT JOIN LATERAL (
    SELECT u.role, acc.account_id, acc.balance, acc.held
    FROM accounts acc JOIN users u ON u.user_id = acc.user_id
    WHERE acc.user_id = {user}{lock_account}
) a ON true
"""
# The job fields of a hold (h) and its job (j, LEFT JOINed: the retention
# sweep deletes old job rows, never holds). job_id only for a durable job.
_HOLD_JOB = """\
           coalesce(j.chat_id, 0) AS chat_id, coalesce(j.message_id, 0) AS message_id,
           coalesce(j.file_id, '') AS file_id,
           coalesce(j.duration_seconds, 0) AS duration_seconds,
           coalesce(j.trace_id, '') AS trace_id, CASE WHEN j.durable THEN j.job_id END AS job_id"""
# A hold with its job, then its owner's account: claimed, the hold is locked
# first (the nested loop runs the second LATERAL only once the first
# produced its locked row), the order every writer takes them in.
_HOLD_ROWS = f"""
SELECT k.request_hash, k.response, now() AS now,
       h.hold_id, h.user_id, h.amount_credits, h.captured_credits, h.refunded_credits,
       h.state, h.expire_time, h.chat_id, h.message_id, h.file_id, h.duration_seconds,
       h.trace_id, h.job_id, a.account_id, a.balance, a.held
FROM {{source}}
LEFT JOIN LATERAL (
    SELECT h.hold_id, h.user_id, h.amount_credits, h.captured_credits, h.refunded_credits,
           h.state, h.expire_time,
{_HOLD_JOB}
    FROM holds h LEFT JOIN jobs j ON j.job_id = h.job_id
    WHERE h.hold_id = {{hold}}{{lock_hold}}
) h ON true
LEFT JOIN LATERAL (
    SELECT account_id, balance, held FROM accounts WHERE user_id = h.user_id{{lock_account}}
) a ON true
"""  # noqa: S608 - constant SQL fragments only
# A read finds the key, if any, without claiming it.
_KEY_IF_ANY = """(VALUES (1)) AS one (x)
LEFT JOIN idempotency_keys k ON k.method = $1 AND k.key = $2"""

# Claim + lock a user's account (credits). $4 user, $5 actor (0: none).
SQL_CLAIM_ACCOUNT = _CLAIM + _ACCOUNT_ROWS.format(
    source="k",
    user="$4 AND k.response IS NULL",
    lock_account="\n    FOR UPDATE OF acc",
    actor=",\n       (SELECT role FROM users WHERE user_id = $5::bigint) AS actor_role",
)
# A hold with its job, now (GetHold). $1 hold.
SQL_GET_HOLD = _HOLD_ROWS.format(
    source="(VALUES (NULL::bytea, NULL::bytea)) AS k (request_hash, response)",
    hold="$1",
    lock_hold="",
    lock_account="",
)
# Claim + lock a hold, then its owner's account (Refund). $4 hold.
SQL_CLAIM_HOLD = _CLAIM + _HOLD_ROWS.format(
    source="k",
    hold="$4 AND k.response IS NULL",
    lock_hold="\n    FOR UPDATE OF h",
    lock_account="\n    FOR UPDATE",
)

SQL_SAVE_RESPONSE = "UPDATE idempotency_keys SET response = $3 WHERE method = $1 AND key = $2"

# --- holds: read, then one guarded write ----------------------------------------
# Reserve, Capture and Release run two autocommit statements and hold no lock
# between them: a read of the key and of the rows the decision needs, then
# one write whose gate (a locking SELECT in a MATERIALIZED CTE that every
# other part reads from) re-checks, on the latest row versions, that those
# rows still hold what was read. Nothing is written when the gate is empty,
# and the key is inserted with its response, so a duplicate that raced past
# the read fails on the key's primary key; either way the caller reads again.

# The key, the user's role and account. $1 method, $2 key, $3 user. new_id
# is the id a Reserve gives its hold.
SQL_READ_ACCOUNT = _ACCOUNT_ROWS.format(source=_KEY_IF_ANY, user="$3", actor="", lock_account="")
# The key, a hold with its job, and the owner's account. $1 method, $2 key, $3 hold.
SQL_READ_HOLD = _HOLD_ROWS.format(source=_KEY_IF_ANY, hold="$3", lock_hold="", lock_account="")

# The key, the user's role and account, and the durable job a Reserve pays
# for (job_state NULL: no such job of this user). $4 job.
SQL_READ_ACCOUNT_JOB = f"""
SELECT r.*, j.state AS job_state, j.chat_id AS job_chat_id, j.message_id AS job_message_id,
       j.trace_id AS job_trace_id
FROM ({SQL_READ_ACCOUNT}) r
LEFT JOIN jobs j ON j.job_id = $4 AND j.user_id = $3
"""  # noqa: S608 - a constant statement of this module

# Moves $amount from the user's account to escrow: the ledger half of a hold
# (Reserve, ExtendHold). Needs CTEs h (hold_id, user_id) and a (balance,
# held after); no transaction when the amount is 0.
_TO_ESCROW = f"""t AS (
    INSERT INTO ledger_transactions
        (kind, user_id, amount_credits, debit_account_id, credit_account_id, balance_after,
         hold_id, description)
    SELECT 'hold', h.user_id, {{amount}}, {{account}}, {ESCROW_ACCOUNT}, a.balance + a.held,
           h.hold_id, {{note}}
    FROM h, a WHERE {{amount}} > 0
    RETURNING transaction_id, debit_account_id, credit_account_id, amount_credits
), e AS (
    INSERT INTO ledger_entries (transaction_id, account_id, amount_credits)
    SELECT transaction_id, debit_account_id, -amount_credits FROM t
    UNION ALL
    SELECT transaction_id, credit_account_id, amount_credits FROM t
)"""  # noqa: S608 - only this module's constant account ids are formatted in

# $1 method, $2 key, $3 request hash, $4 response, $5 hold, $6 user, $7 amount,
# $8 expire time, $9 account, then SQL_RESERVE: $10.. $14 job fields, $15
# balance and $16 held as read; SQL_RESERVE_FOR_JOB: $10 file id, $11
# duration, $12 balance and $13 held as read, $14 the durable job (whose own
# chat, message and trace ids stay). Returns the user's spendable balance
# after; no row if the account (or the job) changed since the read. A plain
# Reserve writes a job row of its own, one per hold; a Reserve for a durable
# job makes the new hold the job's current one.
_RESERVE = """
WITH g AS MATERIALIZED (
{gate}
), s AS (
    INSERT INTO idempotency_keys (method, key, request_hash, response)
    SELECT $1, $2, $3, $4 FROM g
), h AS (
    INSERT INTO holds (hold_id, user_id, amount_credits, expire_time, job_id)
    SELECT $5, $6, $7, $8, g.job_id FROM g
    RETURNING hold_id, user_id
), j AS (
{job}
), a AS (
    UPDATE accounts SET balance = accounts.balance - $7, held = accounts.held + $7
    FROM g WHERE accounts.account_id = g.account_id
    RETURNING accounts.balance, accounts.held
), {escrow}
SELECT a.balance FROM a
"""
_ESCROW_RESERVE = _TO_ESCROW.format(amount="$7", account="$9", note="'hold'")
SQL_RESERVE = _RESERVE.format(
    gate="""    SELECT account_id, gen_random_uuid() AS job_id FROM accounts
    WHERE account_id = $9 AND balance = $15 AND held = $16
    FOR UPDATE""",
    job="""    INSERT INTO jobs
        (job_id, hold_id, user_id, chat_id, message_id, file_id, duration_seconds, trace_id)
    SELECT g.job_id, $5, $6, $10, $11, $12, $13, $14 FROM g""",
    escrow=_ESCROW_RESERVE,
)
SQL_RESERVE_FOR_JOB = _RESERVE.format(
    gate="""    SELECT acc.account_id, j.job_id FROM accounts acc
    JOIN jobs j ON j.job_id = $14 AND j.user_id = acc.user_id
               AND j.state IN ('queued', 'running')
    WHERE acc.account_id = $9 AND acc.balance = $12 AND acc.held = $13
    FOR UPDATE OF acc FOR NO KEY UPDATE OF j""",
    job="""    UPDATE jobs
    SET hold_id = $5, file_id = $10, duration_seconds = $11, update_time = now()
    FROM g WHERE jobs.job_id = g.job_id""",
    escrow=_ESCROW_RESERVE,
)

# Grows a pending hold and/or moves its expiry. $1 method, $2 key, $3 request
# hash, $4 response, $5 hold, $6 new amount, $7 new expire time, $8 amount and
# $9 expire time as read, $10 balance and $11 held as read. The gate locks
# the hold, then its account, like a settle. Returns the spendable balance
# after; no row when the hold or the account changed since the read.
_ESCROW_EXTEND = _TO_ESCROW.format(
    amount="($6::bigint - $8::bigint)", account="a.account_id", note="'hold extended'"
)
SQL_EXTEND_HOLD = f"""
WITH g AS MATERIALIZED (
    SELECT h.hold_id, a.account_id
    FROM (VALUES (1)) AS one (x)
    CROSS JOIN LATERAL (
        SELECT hold_id, user_id FROM holds
        WHERE hold_id = $5 AND state = 'pending' AND amount_credits = $8 AND expire_time = $9
        FOR UPDATE
    ) h
    CROSS JOIN LATERAL (
        SELECT account_id FROM accounts WHERE user_id = h.user_id AND balance = $10 AND held = $11
        FOR UPDATE
    ) a
), s AS (
    INSERT INTO idempotency_keys (method, key, request_hash, response)
    SELECT $1, $2, $3, $4 FROM g
), h AS (
    UPDATE holds SET amount_credits = $6, expire_time = $7
    FROM g WHERE holds.hold_id = g.hold_id
    RETURNING holds.hold_id, holds.user_id
), a AS (
    UPDATE accounts
    SET balance = accounts.balance - ($6::bigint - $8::bigint),
        held = accounts.held + ($6::bigint - $8::bigint)
    FROM g, h WHERE accounts.account_id = g.account_id
    RETURNING accounts.account_id, accounts.balance, accounts.held
), {_ESCROW_EXTEND}
SELECT a.balance FROM a
"""  # noqa: S608 - only this module's constant account ids are formatted in

# Settles a pending hold: the captured part goes to revenue, the rest back
# to the user. Returns the spendable balance after, or no row when the gate
# is empty. The gate locks the hold, then its account (the nested loop runs
# the second LATERAL only once the first produced its locked row): the
# order every other writer takes them in. Written once, rendered for the
# RPCs (key saved, account guarded) and for the reaper (neither).
_SETTLE = """
WITH g AS MATERIALIZED (
    SELECT h.hold_id, a.account_id
    FROM (VALUES (1)) AS one (x)
    CROSS JOIN LATERAL (
        SELECT hold_id, user_id FROM holds
        WHERE hold_id = {hold} AND state = 'pending'
        FOR UPDATE
    ) h
    CROSS JOIN LATERAL (
        SELECT account_id FROM accounts WHERE user_id = h.user_id{guard}
        FOR UPDATE
    ) a
), {save}h AS (
    UPDATE holds SET state = {state}, captured_credits = {captured}, settle_time = now()
    FROM g WHERE holds.hold_id = g.hold_id
    RETURNING holds.hold_id, holds.user_id, holds.amount_credits, holds.captured_credits
), j AS (
    -- A plain Reserve's job row mirrors its hold and, settled, no longer
    -- needs the file id (retention). A durable job's state is its runner's.
    UPDATE jobs SET state = {job_state}, file_id = '', update_time = now()
    FROM g WHERE jobs.hold_id = g.hold_id AND NOT jobs.durable
), a AS (
    UPDATE accounts
    SET balance = accounts.balance + h.amount_credits - h.captured_credits,
        held = accounts.held - h.amount_credits
    FROM g, h WHERE accounts.account_id = g.account_id
    RETURNING accounts.account_id, accounts.balance, accounts.held
), t AS (
    INSERT INTO ledger_transactions
        (kind, user_id, amount_credits, debit_account_id, credit_account_id, balance_after,
         hold_id, description)
    SELECT 'capture', h.user_id, h.captured_credits, {escrow}, {revenue},
           a.balance + a.held, h.hold_id, 'job ' || h.hold_id
    FROM h, a WHERE h.captured_credits > 0
    UNION ALL
    SELECT 'release', h.user_id, h.amount_credits - h.captured_credits, {escrow},
           a.account_id, a.balance + a.held, h.hold_id, {note}::text
    FROM h, a WHERE h.amount_credits > h.captured_credits
    RETURNING transaction_id, debit_account_id, credit_account_id, amount_credits
), e AS (
    INSERT INTO ledger_entries (transaction_id, account_id, amount_credits)
    SELECT transaction_id, debit_account_id, -amount_credits FROM t
    UNION ALL
    SELECT transaction_id, credit_account_id, amount_credits FROM t
)
SELECT a.balance FROM h, a
"""


def _settle(first: int, *, save: str = "", guard: str = "") -> str:
    """_SETTLE with hold, captured, hold state, job state and note as $first.. $first+4."""
    names = ("hold", "captured", "state", "job_state", "note")
    params = {name: f"${first + n}" for n, name in enumerate(names)}
    return _SETTLE.format(
        save=save, guard=guard, escrow=ESCROW_ACCOUNT, revenue=REVENUE_ACCOUNT, **params
    )


# $1 method, $2 key, $3 request hash, $4 response, $5 hold, $6 captured,
# $7 hold state, $8 job state, $9 note, $10 balance and $11 held as read.
SQL_SETTLE = _settle(
    5,
    save="""s AS (
    INSERT INTO idempotency_keys (method, key, request_hash, response)
    SELECT $1, $2, $3, $4 FROM g
), """,
    guard=" AND balance = $10 AND held = $11",
)
# The reaper's variant, inside its transaction that already locked the hold:
# no key, no guard. $1 hold, $2 captured, $3 hold state, $4 job state, $5 note.
SQL_EXPIRE = _settle(1)

# Moves credits between a user and a system account. {sign} "+" credits the
# user from the system account (TopUp, Grant, Refund), "-" debits the user
# to it (RefundTopUp: the CHECK on accounts.balance refuses going below 0).
# $1 kind, $2 user, $3 amount, $4 system account, $5 hold, $6 provider,
# $7 charge id, $8 description.
_MOVE = """
WITH a AS (
    UPDATE accounts SET balance = balance {sign} $3 WHERE user_id = $2
    RETURNING account_id, balance, held
), t AS (
    INSERT INTO ledger_transactions
        (kind, user_id, amount_credits, debit_account_id, credit_account_id, balance_after,
         hold_id, provider, provider_charge_id, description)
    SELECT $1::text, $2, $3, {debit}, {credit}, a.balance + a.held,
           $5::uuid, $6::text, $7::text, $8::text
    FROM a
    RETURNING transaction_id, kind, amount_credits, balance_after, description, create_time,
              debit_account_id, credit_account_id
), e AS (
    INSERT INTO ledger_entries (transaction_id, account_id, amount_credits)
    SELECT transaction_id, debit_account_id, -amount_credits FROM t
    UNION ALL
    SELECT transaction_id, credit_account_id, amount_credits FROM t
)
SELECT t.transaction_id, t.kind, t.amount_credits, t.balance_after, t.description,
       t.create_time, a.balance
FROM t, a
"""
SQL_CREDIT = _MOVE.format(sign="+", debit="$4::bigint", credit="a.account_id")
SQL_DEBIT = _MOVE.format(sign="-", debit="a.account_id", credit="$4::bigint")

# Claim + the top-up of a provider charge, its refund if any, and the
# owner's account, locked (RefundTopUp). $4 provider, $5 charge id.
SQL_CLAIM_CHARGE = f"""{_CLAIM}
SELECT k.request_hash, k.response, t.user_id, t.amount_credits,
       (SELECT count(*) FROM ledger_transactions r
         WHERE r.kind = 'top_up_refund' AND r.provider = $4 AND r.provider_charge_id = $5)
           AS refunds,
       a.account_id, a.balance, a.held
FROM k
LEFT JOIN LATERAL (
    SELECT user_id, amount_credits FROM ledger_transactions
    WHERE kind = 'top_up' AND provider = $4 AND provider_charge_id = $5 AND k.response IS NULL
) t ON true
LEFT JOIN LATERAL (
    SELECT account_id, balance, held FROM accounts WHERE user_id = t.user_id
    FOR UPDATE
) a ON true
"""  # noqa: S608 - constant SQL fragments only

SQL_ADD_REFUNDED = "UPDATE holds SET refunded_credits = refunded_credits + $2 WHERE hold_id = $1"

_USER_COLUMNS = "user_id, username, language_code, role, create_time"

# Creates a user, their account and the trial in one statement; no row if
# the user already exists. $1 user, $2 username, $3 language, $4 role, $5 trial.
SQL_CREATE_USER = f"""
WITH u AS (
    INSERT INTO users (user_id, username, language_code, role) VALUES ($1, $2, $3, $4)
    ON CONFLICT (user_id) DO NOTHING
    RETURNING {_USER_COLUMNS}
), a AS (
    INSERT INTO accounts (kind, user_id, balance) SELECT 'user', u.user_id, $5 FROM u
    RETURNING account_id, balance
), t AS (
    INSERT INTO ledger_transactions
        (kind, user_id, amount_credits, debit_account_id, credit_account_id, balance_after,
         description)
    SELECT 'trial', $1, $5, {PROMO_ACCOUNT}, a.account_id, a.balance, 'free trial'
    FROM a WHERE $5 > 0
    RETURNING transaction_id, debit_account_id, credit_account_id, amount_credits
), e AS (
    INSERT INTO ledger_entries (transaction_id, account_id, amount_credits)
    SELECT transaction_id, debit_account_id, -amount_credits FROM t
    UNION ALL
    SELECT transaction_id, credit_account_id, amount_credits FROM t
)
SELECT {_USER_COLUMNS} FROM u
"""  # noqa: S608 - only this module's constants are formatted in

# Returns the user, writing only when something changed: EnsureUser runs on
# every update the gateway sees, and a no-op UPDATE would still write a new
# row version. $4: make admin. No row if the user does not exist.
SQL_REFRESH_USER = f"""
WITH upd AS (
    UPDATE users
    SET username = $2, language_code = $3,
        role = CASE WHEN $4 THEN 'admin' ELSE role END, update_time = now()
    WHERE user_id = $1
      AND (username, language_code, role)
          IS DISTINCT FROM ($2, $3, CASE WHEN $4 THEN 'admin' ELSE role END)
    RETURNING {_USER_COLUMNS}
)
SELECT {_USER_COLUMNS} FROM upd
UNION ALL
SELECT {_USER_COLUMNS} FROM users WHERE user_id = $1 AND NOT EXISTS (SELECT 1 FROM upd)
"""  # noqa: S608 - only this module's constants are formatted in

SQL_GET_USER = f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = $1"  # noqa: S608

SQL_GET_ROLE = "SELECT role FROM users WHERE user_id = $1"

SQL_SET_ROLE = f"""
UPDATE users SET role = $2, update_time = now() WHERE user_id = $1
RETURNING {_USER_COLUMNS}
"""  # noqa: S608 - constant SQL fragments only

SQL_GET_BALANCE = "SELECT balance, held FROM accounts WHERE user_id = $1"

SQL_LIST_TRANSACTIONS = """
SELECT transaction_id, kind, amount_credits, balance_after, description, create_time
FROM ledger_transactions
WHERE user_id = $1 AND transaction_id < $2
  AND kind IN ('trial', 'top_up', 'capture', 'refund', 'grant', 'top_up_refund')
ORDER BY transaction_id DESC
LIMIT $3
"""

SQL_STATS = """
SELECT (SELECT count(*) FROM users) AS users,
       (SELECT count(*) FROM holds WHERE state = 'pending') AS holds_pending,
       (SELECT coalesce(sum(amount_credits), 0)::bigint FROM holds
         WHERE state = 'pending') AS held,
       (SELECT coalesce(sum(amount_credits), 0)::bigint FROM ledger_transactions
         WHERE kind = 'capture') AS captured,
       (SELECT coalesce(sum(amount_credits), 0)::bigint FROM ledger_transactions
         WHERE kind = 'top_up') AS topped_up,
       (SELECT count(*) FROM holds WHERE state = 'expired') AS holds_expired,
       (SELECT coalesce(sum(amount_credits), 0)::bigint FROM ledger_transactions
         WHERE kind = 'top_up_refund') AS top_up_refunded
"""

SQL_DUE_HOLDS = """
SELECT hold_id, user_id FROM holds
WHERE state = 'pending' AND expire_time <= now()
ORDER BY expire_time
LIMIT $1
FOR UPDATE SKIP LOCKED
"""

# Pending holds placed before now() - $1 seconds, oldest first, after the
# cursor ($2 create time, $3 hold id; NULLs: from the start), with their job
# and the owner's language. No index of its own: holds_pending_expire_time_idx
# is partial on state = 'pending', so scanning it visits only the live holds
# (a few per active user, never the history); they are then filtered and
# sorted by create_time in memory.
SQL_STALE_JOBS = f"""
SELECT h.hold_id, h.user_id, h.amount_credits, h.captured_credits, h.refunded_credits,
       h.state, h.expire_time, h.create_time,
{_HOLD_JOB},
       u.language_code
FROM holds h
LEFT JOIN jobs j ON j.job_id = h.job_id
JOIN users u ON u.user_id = h.user_id
WHERE h.state = 'pending'
  AND h.create_time < now() - make_interval(secs => $1)
  AND ($2::timestamptz IS NULL OR (h.create_time, h.hold_id) > ($2, $3::uuid))
ORDER BY h.create_time, h.hold_id
LIMIT $4
"""  # noqa: S608 - constant SQL fragments only

SQL_PRUNE_KEYS = """
WITH doomed AS (
    SELECT method, key FROM idempotency_keys
    WHERE create_time < now() - make_interval(hours => $1)
    ORDER BY create_time
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
DELETE FROM idempotency_keys k USING doomed d WHERE k.method = d.method AND k.key = d.key
"""

# Personal data of a user, gone; amounts and the ledger stay. $1 user.
# Returns the number of job rows cleared; no row if the user is unknown.
SQL_ERASE_USER = """
WITH u AS (
    UPDATE users SET username = '', language_code = '', update_time = now()
    WHERE user_id = $1
    RETURNING user_id
), j AS (
    UPDATE jobs
    SET chat_id = 0, message_id = 0, file_id = '', trace_id = '', spec = NULL,
        status_message_id = 0, lease_owner = '', update_time = now()
    FROM u WHERE jobs.user_id = u.user_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM j) AS jobs_erased FROM u
"""
