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

# Claim + lock a user's account. $4 user, $5 actor (0: none). new_id is
# the id a Reserve gives its hold.
SQL_CLAIM_ACCOUNT = f"""{_CLAIM}
SELECT k.request_hash, k.response, now() AS now, gen_random_uuid() AS new_id,
       a.role, a.account_id, a.balance, a.held,
       (SELECT role FROM users WHERE user_id = $5::bigint) AS actor_role
FROM k
LEFT JOIN LATERAL (
    SELECT u.role, acc.account_id, acc.balance, acc.held
    FROM accounts acc JOIN users u ON u.user_id = acc.user_id
    WHERE acc.user_id = $4 AND k.response IS NULL
    FOR UPDATE OF acc
) a ON true
"""  # noqa: S608 - constant SQL fragments only

# Claim + lock a hold, then its owner's account (the nested loop runs the
# second LATERAL only once the first produced its locked row). $4 hold.
SQL_CLAIM_HOLD = f"""{_CLAIM}
SELECT k.request_hash, k.response, now() AS now,
       h.hold_id, h.user_id, h.amount_credits, h.captured_credits, h.refunded_credits,
       h.state, h.expire_time, h.chat_id, h.message_id, h.file_id, h.duration_seconds,
       h.trace_id, a.account_id, a.balance, a.held
FROM k
LEFT JOIN LATERAL (
    SELECT h.hold_id, h.user_id, h.amount_credits, h.captured_credits, h.refunded_credits,
           h.state, h.expire_time,
           j.chat_id, j.message_id, j.file_id, j.duration_seconds, j.trace_id
    FROM holds h JOIN jobs j ON j.hold_id = h.hold_id
    WHERE h.hold_id = $4 AND k.response IS NULL
    FOR UPDATE OF h
) h ON true
LEFT JOIN LATERAL (
    SELECT account_id, balance, held FROM accounts WHERE user_id = h.user_id FOR UPDATE
) a ON true
"""  # noqa: S608 - constant SQL fragments only

SQL_SAVE_RESPONSE = "UPDATE idempotency_keys SET response = $3 WHERE method = $1 AND key = $2"

# $1 method, $2 key, $3 response, $4 hold, $5 user, $6 amount, $7 expire time,
# $8 account, $9.. job fields. Returns the user's spendable balance after.
SQL_RESERVE = f"""
WITH s AS (
    UPDATE idempotency_keys SET response = $3 WHERE method = $1 AND key = $2
), h AS (
    INSERT INTO holds (hold_id, user_id, amount_credits, expire_time)
    VALUES ($4, $5, $6, $7)
    RETURNING hold_id
), j AS (
    INSERT INTO jobs (hold_id, user_id, chat_id, message_id, file_id, duration_seconds, trace_id)
    VALUES ($4, $5, $9, $10, $11, $12, $13)
), a AS (
    UPDATE accounts SET balance = balance - $6, held = held + $6
    WHERE account_id = $8
    RETURNING balance, held
), t AS (
    INSERT INTO ledger_transactions
        (kind, user_id, amount_credits, debit_account_id, credit_account_id, balance_after,
         hold_id, description)
    SELECT 'hold', $5, $6, $8, {ESCROW_ACCOUNT}, a.balance + a.held, h.hold_id, 'hold'
    FROM h, a
    RETURNING transaction_id, debit_account_id, credit_account_id, amount_credits
), e AS (
    INSERT INTO ledger_entries (transaction_id, account_id, amount_credits)
    SELECT transaction_id, debit_account_id, -amount_credits FROM t
    UNION ALL
    SELECT transaction_id, credit_account_id, amount_credits FROM t
)
SELECT a.balance FROM a
"""  # noqa: S608 - only this module's constant account ids are formatted in

# Settles a pending hold: the captured part goes to revenue, the rest back
# to the user. Returns the spendable balance after. Written once, rendered
# with and without the saved response (placeholders become $n below).
_SETTLE = """
WITH {save}h AS (
    UPDATE holds SET state = {state}, captured_credits = {captured}, settle_time = now()
    WHERE hold_id = {hold} AND state = 'pending'
    RETURNING hold_id, user_id, amount_credits, captured_credits
), j AS (
    UPDATE jobs SET state = {job_state}, update_time = now() WHERE hold_id = {hold}
), a AS (
    UPDATE accounts
    SET balance = accounts.balance + h.amount_credits - h.captured_credits,
        held = accounts.held - h.amount_credits
    FROM h WHERE accounts.user_id = h.user_id
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
_SAVE_CTE = """s AS (
    UPDATE idempotency_keys SET response = $3 WHERE method = $1 AND key = $2
), """

# $1 method, $2 key, $3 response, $4 hold, $5 captured, $6 hold state,
# $7 job state, $8 note.
SQL_SETTLE = _SETTLE.format(
    save=_SAVE_CTE,
    hold="$4",
    captured="$5",
    state="$6",
    job_state="$7",
    note="$8",
    escrow=ESCROW_ACCOUNT,
    revenue=REVENUE_ACCOUNT,
)
# The reaper's variant, with no idempotency key: $1 hold ... $5 note.
SQL_EXPIRE = _SETTLE.format(
    save="",
    hold="$1",
    captured="$2",
    state="$3",
    job_state="$4",
    note="$5",
    escrow=ESCROW_ACCOUNT,
    revenue=REVENUE_ACCOUNT,
)

# Credits a user from a system account. $1 kind, $2 user, $3 amount,
# $4 debited system account, $5 hold, $6 provider, $7 charge id, $8 description.
SQL_CREDIT = """
WITH a AS (
    UPDATE accounts SET balance = balance + $3 WHERE user_id = $2
    RETURNING account_id, balance, held
), t AS (
    INSERT INTO ledger_transactions
        (kind, user_id, amount_credits, debit_account_id, credit_account_id, balance_after,
         hold_id, provider, provider_charge_id, description)
    SELECT $1::text, $2, $3, $4::bigint, a.account_id, a.balance + a.held,
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
  AND kind IN ('trial', 'top_up', 'capture', 'refund', 'grant')
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
       (SELECT count(*) FROM holds WHERE state = 'expired') AS holds_expired
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
SQL_STALE_JOBS = """
SELECT h.hold_id, h.user_id, h.amount_credits, h.captured_credits, h.refunded_credits,
       h.state, h.expire_time, h.create_time,
       j.chat_id, j.message_id, j.file_id, j.duration_seconds, j.trace_id,
       u.language_code
FROM holds h
JOIN jobs j ON j.hold_id = h.hold_id
JOIN users u ON u.user_id = h.user_id
WHERE h.state = 'pending'
  AND h.create_time < now() - make_interval(secs => $1)
  AND ($2::timestamptz IS NULL OR (h.create_time, h.hold_id) > ($2, $3::uuid))
ORDER BY h.create_time, h.hold_id
LIMIT $4
"""

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
