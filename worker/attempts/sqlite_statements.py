"""The statements of the SQLite attempt store (:mod:`worker.attempts.sqlite`).

Lists are passed as one JSON array (``json_each``) so that each statement has one text
whatever the batch's size, prepared once and kept in the connection's statement cache.
Every lookup is an index seek on its whole predicate (``EXPLAIN QUERY PLAN`` in the tests).
"""

# Both kinds of challenge read as rows of one shape: the challenge, its device, the key that
# signs it (a binding challenge is signed by the device's binding key), and the person's run
# of failures and lock (SPEC §9; a seek on person_limits' primary key, none when no row).
READ_CHALLENGES = """
SELECT c.id, c.status, c.failed_attempts, c.expires_at, c.otp_digest,
       d.id, d.key_id, d.client_id, d.person_id, d.public_key, d.status, d.key_purpose,
       p.consecutive_failures, p.locked_until, p.locked_by, p.lock_event_json
FROM challenges AS c JOIN devices AS d ON d.id = c.device_id
     LEFT JOIN person_limits AS p ON p.client_id = d.client_id AND p.person_id = d.person_id
WHERE c.id IN (SELECT value FROM json_each(?))
"""
READ_DEVICE_CHALLENGES = """
SELECT c.id, c.status, c.failed_attempts, c.expires_at, c.message_digest,
       d.id, k.id, d.client_id, d.person_id, k.public_key, d.status, k.key_purpose,
       p.consecutive_failures, p.locked_until, p.locked_by, p.lock_event_json
FROM device_challenges AS c JOIN devices AS d ON d.id = c.device_id
     JOIN device_keys AS k ON k.id = c.key_id
     LEFT JOIN person_limits AS p ON p.client_id = d.client_id AND p.person_id = d.person_id
WHERE c.id IN (SELECT value FROM json_each(?))
"""
READ_PENDING_KEYS = """
SELECT c.id, d.key_id, d.public_key, c.otp_digest, 'binding'
FROM challenges AS c JOIN devices AS d ON d.id = c.device_id
WHERE c.id IN (SELECT value FROM json_each(?1)) AND c.status = 'pending'
  AND c.otp_digest IS NOT NULL
UNION ALL
SELECT c.id, k.id, k.public_key, c.message_digest, 'device'
FROM device_challenges AS c JOIN device_keys AS k ON k.id = c.key_id
WHERE c.id IN (SELECT value FROM json_each(?2)) AND c.status = 'pending'
  AND c.message_digest IS NOT NULL
"""
READ_ATTEMPTS = """
SELECT challenge_id, signature, outcome, number, event_json FROM attempts
WHERE challenge_id IN (SELECT value FROM json_each(?1))
UNION ALL
SELECT challenge_id, signature, outcome, number, event_json FROM device_attempts
WHERE challenge_id IN (SELECT value FROM json_each(?2))
"""
READ_REFUSALS = """
SELECT command_id, reason, challenge_id, event_json FROM refusals
WHERE command_id IN (SELECT value FROM json_each(?))
"""
# One count per (client, person): a seek on ix_devices_owner (client_id, person_id, status).
READ_BOUND = """
SELECT json_extract(owner.value, '$[0]'), json_extract(owner.value, '$[1]'),
       (SELECT count(*) FROM devices AS d
        WHERE d.client_id = json_extract(owner.value, '$[0]')
          AND d.person_id = json_extract(owner.value, '$[1]')
          AND d.status = 'bound')
FROM json_each(?) AS owner
"""
# Refusals of identical requests: a seek on ix_refusals_request each.
READ_REPEATS = """
SELECT r.challenge_id, r.signature, r.client_id, r.reason, r.event_json
FROM json_each(?) AS request JOIN refusals AS r
  ON r.challenge_id = json_extract(request.value, '$[0]')
 AND r.signature = json_extract(request.value, '$[1]')
 AND r.client_id = json_extract(request.value, '$[2]')
"""
WRITE_PERSON = """
INSERT INTO person_limits
    (client_id, person_id, consecutive_failures, locked_until, locked_by, lock_event_json)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (client_id, person_id) DO UPDATE SET
    consecutive_failures = excluded.consecutive_failures,
    locked_until = excluded.locked_until,
    locked_by = excluded.locked_by,
    lock_event_json = excluded.lock_event_json
"""
# The digest is kept as stored (sealed, for a binding challenge) or dropped, never written:
# the decision sees it opened, and that must not reach the disk.
WRITE_CHALLENGE = """
UPDATE challenges SET status = ?, failed_attempts = ?,
                      otp_digest = CASE WHEN ? THEN otp_digest END,
                      decided_at = coalesce(?, decided_at)
WHERE id = ?
"""
WRITE_DEVICE_CHALLENGE = """
UPDATE device_challenges SET status = ?, failed_attempts = ?,
                             message_digest = CASE WHEN ? THEN message_digest END,
                             decided_at = coalesce(?, decided_at)
WHERE id = ?
"""
WRITE_BOUND = "UPDATE devices SET status = 'bound', bound_at = ? WHERE id = ?"
WRITE_KEY_USED = "UPDATE device_keys SET used_at = ? WHERE id = ?"
WRITE_ATTEMPT = """
INSERT INTO attempts (challenge_id, signature, outcome, number, event_json, decided_at)
VALUES (?, ?, ?, ?, ?, ?)
"""
WRITE_DEVICE_ATTEMPT = """
INSERT INTO device_attempts (challenge_id, signature, outcome, number, event_json, decided_at)
VALUES (?, ?, ?, ?, ?, ?)
"""
WRITE_REFUSAL = """
INSERT INTO refusals
    (command_id, challenge_id, reason, event_json, decided_at, signature, client_id)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
