"""The pipeline's SQL (SPEC §8.1): few statements per event, atomic increments only, never read-modify-write.

Each reward item is ONE statement: the journal insert (ON CONFLICT DO NOTHING — the idempotency gate), and only if
it inserted, the member upsert-increment and the season-stats upsert-increment, returning the member's state after
the change. Each lake row is one statement: the key insert into `event_lake_keys` (the whole-event duplicate gate,
kept outside the partitioned lake, docs/decisions.md), the row only if the key was new, plus its counters. A run
of messages in a micro-batch is one set-based statement for all of them (`MESSAGE_BATCH`, its rows sent as JSON).
Statements are run through asyncpg, which prepares and caches them. What follows a reward item (level change,
achievements, gold) is the ledger engine's, with its SQL in `ledger/sql.py`.
"""

from __future__ import annotations

from functools import cache

from synapse_async.ledger.sql import MEMBER_COLUMNS, SEASON_COLUMNS

LAKE = """
WITH gate AS (
    INSERT INTO event_lake_keys (guild_id, source_key, user_id, occurred_at) VALUES ($1, $6, $2, $8)
    ON CONFLICT (guild_id, source_key) DO NOTHING
    RETURNING 1
), lake AS (
    INSERT INTO event_lake (guild_id, user_id, event_type, channel_id, target_id, source_key, payload, occurred_at)
    SELECT $1, $2, $3, $4, $5, $6, $7::jsonb, $8 FROM gate
    RETURNING id, user_id
), counters AS (
    INSERT INTO event_counters AS ec (guild_id, user_id, event_type, period, count)
    SELECT $1, lake.user_id, $3, p, 1 FROM lake CROSS JOIN unnest($9::text[]) AS p
     WHERE lake.user_id IS NOT NULL
    ON CONFLICT (guild_id, user_id, event_type, period)
    DO UPDATE SET count = ec.count + 1, updated_at = now()
    RETURNING 1
)
SELECT (SELECT id FROM lake) AS lake_id, (SELECT count(*) FROM counters) AS counters
"""

STAT_COLUMNS = {
    "message": "messages_sent",
    "reaction_given": "reactions_given",
    "reaction_received": "reactions_received",
    "thread_create": "threads_created",
    "voice_tick": "voice_minutes",
}


# A run of messages as ONE set-based statement (SPEC §8.1): every table is written once per batch. The rows arrive
# as four JSON arrays of positional rows (`MessageBatch.arguments`: messages in event order, then counters, members
# and season stats), read with `jsonb_array_elements`. The lake keys (only those of guilds with the source on; a
# row follows each new key, once per key) and the journal rows are multi-row inserts whose ON CONFLICT DO NOTHING
# stays the duplicate gate: the counts they return tell the caller whether every event was new (if not, it rolls
# back and replays the batch one event per transaction). Members, season stats and counters arrive already summed
# per member / per (season, member) / per counter, sorted by (guild, user), so each row is updated once, in
# ascending user order. Data-modifying CTEs always run to completion, read or not.
MESSAGE_BATCH = f"""
WITH msg AS (
    SELECT (e->>0)::bigint AS g, (e->>1)::bigint AS u, (e->>2)::bigint AS c, (e->>3)::bigint AS r, e->>4 AS k,
           (e->>5)::bigint AS s, (e->>6)::bigint AS x, (e->>7)::bigint AS st, e->>8 AS z, e->9 AS d,
           (e->>10)::timestamptz AS o, e->>11 AS lk, (e->>12)::bigint AS t, e->13 AS p, n
      FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS a(e, n)
), rows AS (
    SELECT g, u, c, t, lk AS k, p, o, n FROM msg WHERE lk IS NOT NULL
), gate AS (
    INSERT INTO event_lake_keys (guild_id, source_key, user_id, occurred_at)
    SELECT g, k, u, o FROM rows ORDER BY n
    ON CONFLICT (guild_id, source_key) DO NOTHING
    RETURNING guild_id, source_key
), lake AS (
    INSERT INTO event_lake (guild_id, user_id, event_type, channel_id, target_id, source_key, payload, occurred_at)
    SELECT r.g, r.u, 'message_create', r.c, r.t, r.k, r.p, r.o
      FROM (SELECT DISTINCT ON (g, k) * FROM rows ORDER BY g, k, n) AS r
      JOIN gate ON gate.guild_id = r.g AND gate.source_key = r.k
     ORDER BY r.n
    RETURNING 1
), counters AS (
    INSERT INTO event_counters AS ec (guild_id, user_id, event_type, period, count)
    SELECT (e->>0)::bigint, (e->>1)::bigint, 'message_create', e->>2, (e->>3)::bigint
      FROM jsonb_array_elements($2::jsonb) AS e
    ON CONFLICT (guild_id, user_id, event_type, period)
    DO UPDATE SET count = ec.count + EXCLUDED.count, updated_at = now()
    RETURNING 1
), j AS (
    INSERT INTO reward_journal (guild_id, user_id, event_type, idempotency_key, season_id, channel_id,
                                counterpart_id, ref_id, xp_delta, star_delta, zero_reason, details, occurred_at)
    SELECT g, u, 'message', k, s, c, NULL, r, x, st, z, d, o FROM msg ORDER BY n
    ON CONFLICT (guild_id, idempotency_key) DO NOTHING
    RETURNING 1
), m AS (
    INSERT INTO members AS mm (guild_id, user_id, display_name, avatar_hash, xp, lifetime_stars, messages_sent,
                               last_active_at)
    SELECT (e->>0)::bigint, (e->>1)::bigint, e->>2, e->>3, (e->>4)::bigint, (e->>5)::bigint, (e->>6)::bigint,
           (e->>7)::timestamptz
      FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS a(e, i)
     ORDER BY i
    ON CONFLICT (guild_id, user_id) DO UPDATE SET
        xp = mm.xp + EXCLUDED.xp,
        lifetime_stars = mm.lifetime_stars + EXCLUDED.lifetime_stars,
        messages_sent = mm.messages_sent + EXCLUDED.messages_sent,
        display_name = CASE WHEN EXCLUDED.display_name = EXCLUDED.user_id::text THEN mm.display_name
                            ELSE EXCLUDED.display_name END,
        avatar_hash = COALESCE(EXCLUDED.avatar_hash, mm.avatar_hash),
        last_active_at = GREATEST(mm.last_active_at, EXCLUDED.last_active_at),
        updated_at = now()
    RETURNING guild_id, user_id, {MEMBER_COLUMNS}
), s AS (
    INSERT INTO season_stats AS ss (season_id, user_id, guild_id, stars, xp, messages_sent)
    SELECT (e->>0)::bigint, (e->>1)::bigint, (e->>2)::bigint, (e->>3)::bigint, (e->>4)::bigint, (e->>5)::bigint
      FROM jsonb_array_elements($4::jsonb) WITH ORDINALITY AS a(e, i)
     ORDER BY i
    ON CONFLICT (guild_id, season_id, user_id) DO UPDATE SET
        stars = ss.stars + EXCLUDED.stars,
        xp = GREATEST(ss.xp + EXCLUDED.xp, 0),
        messages_sent = ss.messages_sent + EXCLUDED.messages_sent
    RETURNING 1
)
SELECT (SELECT count(*) FROM lake) AS lake_rows, (SELECT count(*) FROM j) AS journal_rows, m.* FROM m
"""


@cache
def reward_item(kind: str) -> str:
    """One reward item as ONE statement (the one-event path; runs of messages use `MESSAGE_BATCH`).

    $1 guild, $2 user, $3 kind, $4 key, $5 season, $6 channel, $7 counterpart, $8 ref, $9 xp, $10 stars,
    $11 zero_reason, $12 details, $13 occurred_at, $14 display name, $15 avatar, $16 stat increment, $17 active.
    """
    stat = STAT_COLUMNS[kind]
    return f"""
WITH j AS (
    INSERT INTO reward_journal (guild_id, user_id, event_type, idempotency_key, season_id, channel_id,
                                counterpart_id, ref_id, xp_delta, star_delta, zero_reason, details, occurred_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13)
    ON CONFLICT (guild_id, idempotency_key) DO NOTHING
    RETURNING id
), m AS (
    INSERT INTO members AS mm (guild_id, user_id, display_name, avatar_hash, xp, lifetime_stars, {stat},
                               last_active_at)
    SELECT $1, $2, $14, $15, $9, $10, $16, CASE WHEN $17::boolean THEN $13::timestamptz END FROM j
    ON CONFLICT (guild_id, user_id) DO UPDATE SET
        xp = mm.xp + EXCLUDED.xp,
        lifetime_stars = mm.lifetime_stars + EXCLUDED.lifetime_stars,
        {stat} = mm.{stat} + EXCLUDED.{stat},
        display_name = CASE WHEN EXCLUDED.display_name = $2::text THEN mm.display_name ELSE EXCLUDED.display_name END,
        avatar_hash = COALESCE(EXCLUDED.avatar_hash, mm.avatar_hash),
        last_active_at = GREATEST(mm.last_active_at, EXCLUDED.last_active_at),
        updated_at = now()
    RETURNING {MEMBER_COLUMNS}
), s AS (
    INSERT INTO season_stats AS ss (season_id, user_id, guild_id, stars, xp, {stat})
    SELECT $5, $2, $1, $10, $9, $16 FROM j WHERE $5::bigint IS NOT NULL
    ON CONFLICT (guild_id, season_id, user_id) DO UPDATE SET
        stars = ss.stars + EXCLUDED.stars,
        xp = GREATEST(ss.xp + EXCLUDED.xp, 0),
        {stat} = ss.{stat} + EXCLUDED.{stat}
    RETURNING {SEASON_COLUMNS}
)
SELECT (SELECT id FROM j) AS journal_id, m.*, s.*
  FROM (SELECT 1) AS one LEFT JOIN m ON true LEFT JOIN s ON true
"""


PAIR_COUNT = """
SELECT count(*) FROM reward_journal
 WHERE guild_id = $1 AND user_id = $2 AND counterpart_id = $3 AND event_type = $4 AND zero_reason IS NULL
   AND occurred_at > $5::timestamptz - make_interval(hours => $6) AND occurred_at < $5
"""
REACTOR_COUNT = """
SELECT count(*) FROM reward_journal
 WHERE guild_id = $1 AND ref_id = $2 AND event_type = 'reaction_received' AND zero_reason IS NULL
"""
PAID_TICKS_LAST_HOUR = """
SELECT count(*) FROM reward_journal
 WHERE guild_id = $1 AND user_id = $2 AND event_type = 'voice_tick' AND zero_reason IS NULL
   AND occurred_at > $3::timestamptz - interval '60 minutes' AND occurred_at < $3
"""

MEMBER_JOIN = """
INSERT INTO members AS mm (guild_id, user_id, display_name, avatar_hash, joined_at, left_at)
VALUES ($1, $2, $3, $4, $5, NULL)
ON CONFLICT (guild_id, user_id) DO UPDATE SET joined_at = EXCLUDED.joined_at, left_at = NULL,
    display_name = EXCLUDED.display_name, avatar_hash = COALESCE(EXCLUDED.avatar_hash, mm.avatar_hash),
    updated_at = now()
RETURNING (xmax <> 0) AS existed, level
"""
MEMBER_LEAVE = "UPDATE members SET left_at = $3, updated_at = now() WHERE guild_id = $1 AND user_id = $2"
