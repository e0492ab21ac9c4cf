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
# A hold with its job, then its owner's account: claimed, the hold is locked
# first (the nested loop runs the second LATERAL only once the first
# produced its locked row), the order every writer takes them in.
_HOLD_ROWS = """
SELECT k.request_hash, k.response, now() AS now,
       h.hold_id, h.user_id, h.amount_credits, h.captured_credits, h.refunded_credits,
       h.state, h.expire_time, h.chat_id, h.message_id, h.file_id, h.duration_seconds,
       h.trace_id, a.account_id, a.balance, a.held
FROM {source}
LEFT JOIN LATERAL (
    SELECT h.hold_id, h.user_id, h.amount_credits, h.captured_credits, h.refunded_credits,
           h.state, h.expire_time,
           j.chat_id, j.message_id, j.file_id, j.duration_seconds, j.trace_id
    FROM holds h JOIN jobs j ON j.hold_id = h.hold_id
    WHERE h.hold_id = {hold}{lock_hold}
) h ON true
LEFT JOIN LATERAL (
    SELECT account_id, balance, held FROM accounts WHERE user_id = h.user_id{lock_account}
) a ON true
"""
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

# $1 method, $2 key, $3 request hash, $4 response, $5 hold, $6 user, $7 amount,
# $8 expire time, $9 account, $10.. $14 job fields, $15 balance and $16 held
# as read. Returns the user's spendable balance after; no row if the account
# changed since the read.
SQL_RESERVE = f"""
WITH g AS MATERIALIZED (
    SELECT account_id FROM accounts
    WHERE account_id = $9 AND balance = $15 AND held = $16
    FOR UPDATE
), s AS (
    INSERT INTO idempotency_keys (method, key, request_hash, response)
    SELECT $1, $2, $3, $4 FROM g
), h AS (
    INSERT INTO holds (hold_id, user_id, amount_credits, expire_time)
    SELECT $5, $6, $7, $8 FROM g
    RETURNING hold_id
), j AS (
    INSERT INTO jobs (hold_id, user_id, chat_id, message_id, file_id, duration_seconds, trace_id)
    SELECT $5, $6, $10, $11, $12, $13, $14 FROM g
), a AS (
    UPDATE accounts SET balance = accounts.balance - $7, held = accounts.held + $7
    FROM g WHERE accounts.account_id = g.account_id
    RETURNING accounts.balance, accounts.held
), t AS (
    INSERT INTO ledger_transactions
        (kind, user_id, amount_credits, debit_account_id, credit_account_id, balance_after,
         hold_id, description)
    SELECT 'hold', $6, $7, $9, {ESCROW_ACCOUNT}, a.balance + a.held, h.hold_id, 'hold'
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
    UPDATE jobs SET state = {job_state}, update_time = now()
    FROM g WHERE jobs.hold_id = g.hold_id
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
