"""The statements of the PostgreSQL attempt store (:mod:`worker.attempts.postgres`)."""

# Both kinds of challenge as rows of one shape (the challenge, its device, the key that
# signs it), locked, binding challenges first (a batch of one kind takes one round trip),
# each kind in id order: every batch locks rows in the same order, so two never wait for
# each other in a circle.
READ_CHALLENGES = """
SELECT c.id, c.status, c.failed_attempts, c.expires_at, c.otp_digest,
       d.id, d.key_id, d.client_id, d.person_id, d.public_key, d.status, d.key_purpose
FROM challenges AS c JOIN devices AS d ON d.id = c.device_id
WHERE c.id = any($1::varchar[])
ORDER BY c.id
FOR UPDATE OF c
"""
READ_DEVICE_CHALLENGES = """
SELECT c.id, c.status, c.failed_attempts, c.expires_at, c.message_digest,
       d.id, k.id, d.client_id, d.person_id, k.public_key, d.status, k.key_purpose
FROM device_challenges AS c JOIN devices AS d ON d.id = c.device_id
     JOIN device_keys AS k ON k.id = c.key_id
WHERE c.id = any($1::varchar[])
ORDER BY c.id
FOR UPDATE OF c
"""
# A person's challenges may bind on different partitions at once: one at a time, or two
# could each see four bound devices and make six. Sorted, for the same reason as above.
LOCK_PEOPLE = """
SELECT pg_advisory_xact_lock(hashtextextended(owner, 0))
FROM unnest($1::text[]) WITH ORDINALITY AS o(owner, position)
ORDER BY position
"""
READ_PENDING_KEYS = """
SELECT c.id, d.key_id, d.public_key, c.otp_digest, 'binding'
FROM challenges AS c JOIN devices AS d ON d.id = c.device_id
WHERE c.id = any($1::varchar[]) AND c.status = 'pending' AND c.otp_digest IS NOT NULL
UNION ALL
SELECT c.id, k.id, k.public_key, c.message_digest, 'device'
FROM device_challenges AS c JOIN device_keys AS k ON k.id = c.key_id
WHERE c.id = any($2::varchar[]) AND c.status = 'pending' AND c.message_digest IS NOT NULL
"""
# What was decided before, as row kinds of one result: 'a' attempts, 'r' refusals by
# command, 'q' refusals by request (challenge, signature, client), 'b' bound-device counts
# (a seek on ix_devices_owner per person), 'p' people's failures and locks.
READ_DECIDED = """
SELECT 'a', challenge_id, signature, outcome, number, event_json, NULL::timestamptz, NULL
FROM attempts WHERE challenge_id = any($1::varchar[])
UNION ALL
SELECT 'a', challenge_id, signature, outcome, number, event_json, NULL, NULL
FROM device_attempts WHERE challenge_id = any($2::varchar[])
UNION ALL
SELECT 'r', challenge_id, command_id, reason, NULL, event_json, NULL, NULL
FROM refusals WHERE command_id = any($3::varchar[])
UNION ALL
SELECT 'b', o.client_id, o.person_id, NULL,
       (SELECT count(*) FROM devices AS d
        WHERE d.client_id = o.client_id AND d.person_id = o.person_id AND d.status = 'bound'),
       NULL, NULL, NULL
FROM unnest($4::varchar[], $5::varchar[]) AS o(client_id, person_id)
UNION ALL
SELECT 'p', p.client_id, p.person_id, p.locked_by, p.consecutive_failures, p.lock_event_json,
       p.locked_until, NULL
FROM unnest($6::varchar[], $7::varchar[]) AS o(client_id, person_id)
     JOIN person_limits AS p ON p.client_id = o.client_id AND p.person_id = o.person_id
UNION ALL
SELECT 'q', r.challenge_id, r.signature, r.reason, NULL, r.event_json, NULL, r.client_id
FROM unnest($8::varchar[], $9::varchar[], $10::varchar[]) AS q(challenge_id, signature, client_id)
     JOIN refusals AS r ON r.challenge_id = q.challenge_id AND r.signature = q.signature
                       AND r.client_id = q.client_id
"""
# Every write of a batch in one statement: data-modifying CTEs over unnested arrays. A
# challenge's digest is kept as stored (sealed, for a binding challenge) or dropped, never
# written: the decision sees it opened, and that must not reach the disk.
WRITE = """
WITH changed AS (
    UPDATE challenges AS c
    SET status = u.status, failed_attempts = u.failed_attempts,
        otp_digest = CASE WHEN u.keeps_digest THEN c.otp_digest END,
        decided_at = coalesce(u.decided_at, c.decided_at)
    FROM unnest($1::varchar[], $2::varchar[], $3::int[], $4::bool[], $5::timestamptz[])
        AS u(id, status, failed_attempts, keeps_digest, decided_at)
    WHERE c.id = u.id
    RETURNING 1
), device_changed AS (
    UPDATE device_challenges AS c
    SET status = u.status, failed_attempts = u.failed_attempts,
        message_digest = CASE WHEN u.keeps_digest THEN c.message_digest END,
        decided_at = coalesce(u.decided_at, c.decided_at)
    FROM unnest($6::varchar[], $7::varchar[], $8::int[], $9::bool[], $10::timestamptz[])
        AS u(id, status, failed_attempts, keeps_digest, decided_at)
    WHERE c.id = u.id
    RETURNING 1
), bound AS (
    UPDATE devices AS d SET status = 'bound', bound_at = b.bound_at
    FROM unnest($11::varchar[], $12::timestamptz[]) AS b(id, bound_at)
    WHERE d.id = b.id
    RETURNING 1
), used AS (
    UPDATE device_keys AS k SET used_at = u.used_at
    FROM unnest($13::varchar[], $14::timestamptz[]) AS u(id, used_at)
    WHERE k.id = u.id
    RETURNING 1
), attempts AS (
    INSERT INTO attempts (challenge_id, signature, outcome, number, event_json, decided_at)
    SELECT * FROM unnest($15::varchar[], $16::varchar[], $17::varchar[], $18::int[],
                         $19::text[], $20::timestamptz[])
    RETURNING 1
), device_attempts AS (
    INSERT INTO device_attempts
        (challenge_id, signature, outcome, number, event_json, decided_at)
    SELECT * FROM unnest($21::varchar[], $22::varchar[], $23::varchar[], $24::int[],
                         $25::text[], $26::timestamptz[])
    RETURNING 1
), refusals AS (
    INSERT INTO refusals
        (command_id, challenge_id, reason, event_json, decided_at, signature, client_id)
    SELECT * FROM unnest($27::varchar[], $28::varchar[], $29::varchar[], $30::text[],
                         $31::timestamptz[], $32::varchar[], $33::varchar[])
    RETURNING 1
), people AS (
    INSERT INTO person_limits
        (client_id, person_id, consecutive_failures, locked_until, locked_by, lock_event_json)
    SELECT * FROM unnest($34::varchar[], $35::varchar[], $36::int[], $37::timestamptz[],
                         $38::text[], $39::text[])
    ON CONFLICT (client_id, person_id) DO UPDATE SET
        consecutive_failures = excluded.consecutive_failures,
        locked_until = excluded.locked_until,
        locked_by = excluded.locked_by,
        lock_event_json = excluded.lock_event_json
    RETURNING 1
)
SELECT (SELECT count(*) FROM changed), (SELECT count(*) FROM device_changed),
       (SELECT count(*) FROM bound), (SELECT count(*) FROM used),
       (SELECT count(*) FROM attempts), (SELECT count(*) FROM device_attempts),
       (SELECT count(*) FROM refusals), (SELECT count(*) FROM people)
"""
