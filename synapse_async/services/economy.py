"""Manual awards, achievement grants and revokes, and purchases (SPEC §10.2, §10.3, §12.3, §12.4, §14, §22).

Each operation is ONE transaction with the pipeline's guarantees, and for the same reasons:

- Balances move only through atomic SQL (`xp = GREATEST(xp + Δ, 0)`, `gold = gold − cost WHERE gold >= cost`), never
  read-modify-write, so a concurrent message, award or purchase can never lose an update; negative amounts are
  clamped by the database itself and the journal, ledger and result report the APPLIED delta (§10.3).
- Level changes, level-up gold, automatic achievements and achievement payouts are the ledger engine's code
  (`LevelEngine.after_xp_change`, `LevelEngine.earn`), run on a `Tx` of this transaction — one definition of "level"
  and of "earning" for events and admin actions alike (§27 item 4).
- Every operation is keyed (§7.5: `award:`, `grant:`, `revoke:` + request id, `buy:` + interaction id). A repeated
  key applies nothing and returns the first result (`replayed=True`); a concurrent duplicate that slips past the
  up-front check hits the unique key, rolls its whole transaction back and reads the winner's rows instead.
- Nothing outside the database changes inside the transaction: announcements, role syncs and level-ups are
  collected as `Effects`, and the `Economy` object hands them to its `publish` callback itself once the transaction
  has COMMITTED (they are also returned on the result). Manual-award announcement candidates travel in
  `Effects.awards`; grants mark `Earned.granted_by`.
- Admin mutations write their audit row (§22) in the same transaction, so an award without its audit trail (or
  the reverse) cannot exist.

Lock order is always member row first, then template rows (the pipeline's order), so grants, awards and events for
the same member serialize instead of deadlocking. Any transient fault (db/faults.py: a deadlock, a serialization
failure, a connection lost even at COMMIT) retries the whole transaction a few times, then raises (busy reply /
503). That is safe because it changed nothing outside the database and each attempt reads its key back first.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import asyncpg

from synapse_async.cache.config_cache import ConfigCache
from synapse_async.db.engine import Database
from synapse_async.db.faults import INTERACTIVE, log_retries, retry_transient
from synapse_async.db.notify import notify_config_raw
from synapse_async.ledger import Cause, Effects, LevelEngine, ManualAward, Tx, sql
from synapse_async.rewards.config import TemplateInfo, season_at
from synapse_async.rewards.leveling import clamp_delta
from synapse_async.services.audit import Actor, record_raw

__all__ = [
    "AMOUNT_LIMIT",
    "REASON_MAX",
    "AwardResult",
    "Economy",
    "GrantRejected",
    "GrantResult",
    "PurchaseResult",
    "RevokeRejected",
    "RevokeResult",
]

AMOUNT_LIMIT = 1_000_000
"""Largest absolute XP or gold amount of one manual award (SPEC §17.3)."""
REASON_MAX = 200
"""Longest award/grant/revoke reason; it is also the gold ledger's note (VARCHAR(200))."""
_REQUEST_ID_MAX = 64
"""API `Idempotency-Key`s, interaction ids and UUIDs all fit (§7.5, §18); derived keys such as
`award:<id>#ach:<template>#lvl` must stay within the journal's 160 characters."""

T = TypeVar("T")


# --- results and rejections --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AwardResult:
    """A manual award: its journal row, the APPLIED deltas and the member's balances afterwards.

    On a replay (`replayed=True`) the ids and applied deltas are those of the first request, `xp`/`gold`/`level` the
    member's current values, and `effects` is empty — the first call already announced.
    """

    journal_id: int
    xp_applied: int
    gold_applied: int
    xp: int
    gold: int
    level: int
    effects: Effects
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class BadgeResult(AwardResult):
    """A grant (its `achievement` journal row and paid rewards) or a revoke (its `revoke` journal row, always
    written so the request id is exactly-once even without reversal, and the applied ≤ 0 reversal), with the
    balances afterwards: an award's fields plus the template."""

    template_id: int = field(kw_only=True)


GrantResult = BadgeResult
RevokeResult = BadgeResult
# What a write method returns and publishes the effects of (see `Economy._commit`).
_Published = TypeVar("_Published", bound=AwardResult)


@dataclass(frozen=True, slots=True)
class PurchaseResult:
    """`/buy-coffee`: `ok` False means nothing was written; `balance` is the gold after the purchase (or the current
    gold when it failed, 0 without a member row)."""

    ok: bool
    cost: int
    balance: int
    replayed: bool = False


GrantReason = Literal["unknown", "inactive", "already_earned", "max_earners"]


class GrantRejected(Exception):
    """The grant was refused and nothing was written; `reason` maps to 404 (unknown) or 409 (the others)."""

    def __init__(self, reason: GrantReason) -> None:
        super().__init__(reason)
        self.reason: GrantReason = reason


class RevokeRejected(Exception):
    """The revoke was refused (the member does not have the badge: 404) and nothing was written."""

    def __init__(self, reason: Literal["not_earned"]) -> None:
        super().__init__(reason)
        self.reason: Literal["not_earned"] = reason


class _Replay(Exception):
    """A concurrent request with the same key committed first: roll back everything and read its result."""


# --- SQL of this module (the shared statements are the ledger's, in `synapse_async.ledger.sql`) -----------------

# The member row an admin action needs; a name not yet known is the user id, replaced once a real one is given.
_ENSURE_MEMBER = """
INSERT INTO members AS mm (guild_id, user_id, display_name) VALUES ($1, $2, $3)
ON CONFLICT (guild_id, user_id) DO UPDATE SET display_name = EXCLUDED.display_name, updated_at = now()
 WHERE mm.display_name = $2::text AND EXCLUDED.display_name <> $2::text
"""
_LOCK_MEMBER = f"SELECT {sql.MEMBER_COLUMNS} FROM members WHERE guild_id = $1 AND user_id = $2 FOR UPDATE"
# Clamped in the database: the locked sub-select yields the values the update starts from, so the applied delta is
# `new − old` from one atomic statement and XP/gold can never go below 0 (§10.3).
_CLAMPED_ADD = f"""
UPDATE members AS m
   SET xp = GREATEST(m.xp + $3::bigint, 0), gold = GREATEST(m.gold + $4::bigint, 0), updated_at = now()
  FROM (SELECT xp AS old_xp, gold AS old_gold FROM members WHERE guild_id = $1 AND user_id = $2 FOR UPDATE) AS old
 WHERE m.guild_id = $1 AND m.user_id = $2
RETURNING {sql.MEMBER_COLUMNS}, old.old_xp, old.old_gold
"""
_BALANCES = "SELECT xp, gold, level FROM members WHERE guild_id = $1 AND user_id = $2"
# The first result of a keyed admin action: its journal row, its gold movement (same key) and current balances.
_READ_BACK = """
SELECT j.id AS journal_id, j.user_id, j.xp_delta, j.details, COALESCE(l.delta, 0) AS gold_delta,
       COALESCE(m.xp, 0) AS xp, COALESCE(m.gold, 0) AS gold, COALESCE(m.level, 1) AS level
  FROM reward_journal j
  LEFT JOIN gold_ledger l ON l.guild_id = j.guild_id AND l.idempotency_key = j.idempotency_key
  LEFT JOIN members m ON m.guild_id = j.guild_id AND m.user_id = j.user_id
 WHERE j.guild_id = $1 AND j.idempotency_key = $2
"""
_TEMPLATE = """
SELECT id, name, description, category_id, rarity_id, series_id, series_order, trigger_type, trigger_config,
       xp_reward, gold_reward, badge_image_url, announce_channel_id, is_hidden, max_earners, active
  FROM achievement_templates WHERE id = $1 AND guild_id = $2
"""
_HAS_BADGE = "SELECT true FROM member_achievements WHERE guild_id = $1 AND user_id = $2 AND template_id = $3"
_TEMPLATE_ACTIVE = "SELECT active FROM achievement_templates WHERE guild_id = $1 AND id = $2"
_DELETE_BADGE = """
DELETE FROM member_achievements WHERE guild_id = $1 AND user_id = $2 AND template_id = $3
RETURNING earned_at, source, granted_by, journal_id
"""
_RELEASE_TEMPLATE = """
UPDATE achievement_templates SET earned_count = GREATEST(earned_count - 1, 0), updated_at = now()
 WHERE guild_id = $1 AND id = $2
"""
# What the badge's earning really paid (§20 revoke): its `achievement` journal row's XP and the gold ledger row of
# the same key — not the template's rewards now, which may have been edited since, or never paid (imports).
_PAID = """
SELECT j.xp_delta AS xp, COALESCE(l.delta, 0) AS gold
  FROM reward_journal j
  LEFT JOIN gold_ledger l
    ON l.guild_id = j.guild_id AND l.idempotency_key = j.idempotency_key AND l.reason = 'achievement'
 WHERE j.id = $1 AND j.guild_id = $2 AND j.user_id = $3 AND j.event_type = 'achievement'
"""
# ONE conditional update (§10.3): it charges only if the gold suffices, atomically against concurrent spending.
_CHARGE = """
UPDATE members SET gold = gold - $3, updated_at = now() WHERE guild_id = $1 AND user_id = $2 AND gold >= $3
RETURNING gold
"""
_GOLD = "SELECT gold FROM members WHERE guild_id = $1 AND user_id = $2"
_PRIOR_PURCHASE = "SELECT delta, balance_after FROM gold_ledger WHERE guild_id = $1 AND idempotency_key = $2"


# --- plumbing ----------------------------------------------------------------------------------------------------


def _replayed_award(row: Mapping[str, Any]) -> AwardResult:
    """The first result of a repeated award request id, read back from its journal row (`_READ_BACK`)."""
    return AwardResult(*_replayed_fields(row), Effects(), replayed=True)


def _replayed_badge(row: Mapping[str, Any]) -> BadgeResult:
    """The first result of a repeated grant/revoke request id, read back from its journal row."""
    return BadgeResult(*_replayed_fields(row), Effects(), replayed=True, template_id=int(_details(row)["template_id"]))


def _replayed_fields(row: Mapping[str, Any]) -> tuple[int, int, int, int, int, int]:
    """journal id, applied XP and gold, current XP, gold and level of a `_READ_BACK` row: a result's leading fields."""
    names = ("journal_id", "xp_delta", "gold_delta", "xp", "gold", "level")
    journal_id, xp_applied, gold_applied, xp, gold, level = (int(row[name]) for name in names)
    return journal_id, xp_applied, gold_applied, xp, gold, level


async def _retrying(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run a whole transaction again after any transient fault (db/faults.py): connection lost (even at COMMIT),
    pool timeout, deadlock, serialization failure. It changed nothing outside the database, and every attempt
    first reads its key back, so a retry after a COMMIT that did happen returns that result (`replayed`)."""
    return await retry_transient(attempt, policy=INTERACTIVE, on_retry=log_retries("economy"))


def _check_request_id(request_id: str) -> None:
    if not request_id or len(request_id) > _REQUEST_ID_MAX or not request_id.isascii() or not request_id.isprintable():
        raise ValueError(f"request_id must be 1–{_REQUEST_ID_MAX} printable ASCII characters")


def _check_reason(reason: str | None, *, required: bool) -> None:
    if reason is None:
        if required:
            raise ValueError("reason is required")
        return
    if not reason.strip() or len(reason) > REASON_MAX:
        raise ValueError(f"reason must be 1–{REASON_MAX} characters and not blank")


def _request_key(kind: str, request_id: str, reason: str | None, *, reason_required: bool) -> str:
    """Validate an admin write's reason and request id (ValueError before anything is read) and return its
    idempotency key `<kind>:<request_id>` (§7.5)."""
    _check_reason(reason, required=reason_required)
    _check_request_id(request_id)
    return f"{kind}:{request_id}"


def _check_amount(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not -AMOUNT_LIMIT <= value <= AMOUNT_LIMIT:
        raise ValueError(f"{name} must be an integer between -{AMOUNT_LIMIT:,} and {AMOUNT_LIMIT:,}")


def _cause(cache: ConfigCache, guild_id: int, key: str, channel_id: int | None) -> Cause:
    """Admin actions happen now: they belong to the season active now (§11 attribution)."""
    now = datetime.now(UTC)
    season = season_at(cache.guild(guild_id), now)
    return Cause(guild_id, now, key, season.season_id if season is not None else None, channel_id)


def _details(row: Mapping[str, Any]) -> dict[str, Any]:
    value = row["details"]
    return dict(value) if isinstance(value, Mapping) else dict(json.loads(value))


async def _read_back(conn: asyncpg.Connection, guild_id: int, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_READ_BACK, guild_id, key)


async def _replayed(db: Database, guild_id: int, key: str) -> asyncpg.Record:
    """The committed winner of a key race (read after our rollback)."""

    async def read() -> asyncpg.Record | None:
        async with db.raw_transaction() as conn:
            return await _read_back(conn, guild_id, key)

    row = await _retrying(read)
    # ON CONFLICT only reports a conflict once the other transaction COMMITTED, so its row is visible now.
    assert row is not None, f"{key} conflicted but is not committed"
    return row


async def _journal_applied(
    conn: asyncpg.Connection,
    cause: Cause,
    *,
    user_id: int,
    event_type: str,
    xp_applied: int,
    gold_applied: int,
    balance: int,
    details: Mapping[str, Any],
    actor: Actor,
    note: str,
) -> int:
    """The keyed journal row of a clamped admin change (award, revoke) with its ledger and season rows, all by the
    APPLIED deltas (§10.3); season gold counts earnings only. Raises `_Replay` when the key is already journaled."""
    gid, season_id = cause.guild_id, cause.season_id
    journal_id = await sql.journal(
        conn,
        guild_id=gid,
        user_id=user_id,
        event_type=event_type,
        key=cause.key,
        season_id=season_id,
        xp_delta=xp_applied,
        details=details,
        occurred_at=cause.occurred_at,
        actor_id=actor.actor_id,
    )
    if journal_id is None:
        raise _Replay()
    if gold_applied != 0:
        await sql.gold_entry(
            conn,
            guild_id=gid,
            user_id=user_id,
            delta=gold_applied,
            balance_after=balance,
            reason=event_type,
            key=cause.key,
            journal_id=journal_id,
            actor_id=actor.actor_id,
            note=note,
        )
    if season_id is not None:
        if xp_applied != 0:
            await sql.season_xp(conn, guild_id=gid, season_id=season_id, user_id=user_id, xp=xp_applied)
        if gold_applied > 0:
            await sql.season_gold(conn, guild_id=gid, season_id=season_id, user_id=user_id, gold=gold_applied)
    return journal_id


async def _balances(conn: asyncpg.Connection, guild_id: int, user_id: int) -> tuple[int, int, int]:
    row = await conn.fetchrow(_BALANCES, guild_id, user_id)
    assert row is not None  # the member row is locked by this transaction
    return int(row["xp"]), int(row["gold"]), int(row["level"])


# --- audit snapshots (§22): one spelling of each part, so award, grant and revoke rows read alike ---------------


def _balance_snapshot(xp: int, gold: int, level: int) -> dict[str, int]:
    """A member's balances as an award's audit `before`/`after` shows them."""
    return {"xp": xp, "gold": gold, "level": level}


def _applied_snapshot(journal_id: int, xp_applied: int, gold_applied: int) -> dict[str, int]:
    """What a clamped change (award, revoke) really moved: its journal row and the APPLIED deltas (§10.3)."""
    return {"journal_id": journal_id, "xp_applied": xp_applied, "gold_applied": gold_applied}


def _badge_snapshot(user_id: int, template_id: int, **fields: Any) -> dict[str, Any]:
    """A member's badge as a grant's `after` and a revoke's `before` show it: which member, which template, then the
    badge's own fields."""
    return {"user_id": str(user_id), "template_id": template_id, **fields}


def _audit_target(user_id: int, template_id: int | None) -> tuple[str, str]:
    """The audit target of an admin change: the member (award), or the member's badge `user:template` (grant,
    revoke)."""
    if template_id is None:
        return "member", str(user_id)
    return "member_achievement", f"{user_id}:{template_id}"


async def _audit(
    conn: asyncpg.Connection,
    actor: Actor,
    action: str,
    target: tuple[int, int, int | None],
    *,
    reason: str | None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any],
) -> None:
    """The audit row of an economy change, written by the change's own transaction (§22). `target` is
    `(guild_id, user_id, template_id or None)`."""
    guild_id, user_id, template_id = target
    target_type, target_id = _audit_target(user_id, template_id)
    await record_raw(
        conn,
        actor,
        guild_id=guild_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=before,
        after=after,
        reason=reason,
    )


# --- the service -------------------------------------------------------------------------------------------------


class Economy:
    """The economy's write operations, built once by the runtime (`Economy(db, engine, cache, publish)`).

    Each write method runs its one transaction, and once it has COMMITTED hands the effects (announcements, role
    syncs) to `publish` itself — no caller can forget to, and none can publish before the commit. The results still
    carry the effects, for the adapters' replies and for tests.
    """

    def __init__(
        self, db: Database, engine: LevelEngine, cache: ConfigCache, publish: Callable[[Effects], None]
    ) -> None:
        self._db = db
        self._engine = engine
        self._cache = cache
        self._publish = publish

    # --- manual award ------------------------------------------------------------------------------------------------

    async def _commit(
        self,
        attempt: Callable[[asyncpg.Connection], Awaitable[_Published]],
        guild_id: int,
        key: str,
        replayed: Callable[[Mapping[str, Any]], _Published],
    ) -> _Published:
        """Run the keyed write in one transaction (retried on transient faults); publish its effects once it has
        committed. Every attempt first reads its key back, so a repeated request (or a retry after a COMMIT that did
        happen) is answered from the first result without calling `attempt`; a concurrent duplicate that committed
        first (`_Replay`) is answered from its journal row, with nothing to publish."""

        async def keyed() -> _Published:
            async with self._db.raw_transaction() as conn:
                done = await _read_back(conn, guild_id, key)
                if done is not None:
                    return replayed(done)
                return await attempt(conn)

        try:
            result = await _retrying(keyed)
        except _Replay:
            return replayed(await _replayed(self._db, guild_id, key))
        self._publish(result.effects)
        return result

    async def award(
        self,
        *,
        guild_id: int,
        user_id: int,
        xp: int,
        gold: int,
        reason: str,
        actor: Actor,
        request_id: str,
        display_name: str | None = None,
        channel_id: int | None = None,
    ) -> AwardResult:
        """Give (or take, clamped at 0) XP and gold to a member, creating the member row if needed (§10.2, §10.3, §14).

        Journal `manual_award` with the applied XP delta, ledger `manual_award` with the applied gold delta (if any),
        season XP by the applied delta and season gold only when positive, the level change with gold only above the
        peak, automatic achievements, audit `award.create`. `channel_id` is where a command was used (announcement
        fallback channel); API awards have none. Raises ValueError for amounts outside ±1,000,000, both amounts 0, or a
        reason that is blank or longer than 200 characters.
        """
        _check_amount("xp", xp)
        _check_amount("gold", gold)
        if xp == 0 and gold == 0:
            raise ValueError("at least one of xp and gold must be non-zero")
        key = _request_key("award", request_id, reason, reason_required=True)

        async def attempt(conn: asyncpg.Connection) -> AwardResult:
            tx = Tx(conn, singles=True)
            guild = self._cache.guild(guild_id)
            cause = _cause(self._cache, guild_id, key, channel_id)
            await conn.execute(_ENSURE_MEMBER, guild_id, user_id, (display_name or str(user_id))[:100])
            row = await conn.fetchrow(_CLAMPED_ADD, guild_id, user_id, xp, gold)
            assert row is not None  # ensured just above, in this transaction
            old_xp, old_gold = int(row["old_xp"]), int(row["old_gold"])
            xp_applied, gold_applied = int(row["xp"]) - old_xp, int(row["gold"]) - old_gold
            assert (xp_applied, gold_applied) == (clamp_delta(old_xp, xp), clamp_delta(old_gold, gold))
            journal_id = await _journal_applied(
                conn,
                cause,
                user_id=user_id,
                event_type="manual_award",
                xp_applied=xp_applied,
                gold_applied=gold_applied,
                balance=int(row["gold"]),
                details={"reason": reason, "requested": {"xp": xp, "gold": gold}, "gold": gold_applied},
                actor=actor,
                note=reason,
            )
            await self._engine.after_xp_change(tx, guild, user_id, row, cause)
            if (
                (xp_applied > 0 or gold_applied > 0)
                and guild.settings.bool("announce.manual_awards")
                and (await self._engine.preferences(tx, guild_id, user_id)).awards
            ):
                tx.effects.awards.append(
                    ManualAward(
                        guild_id, user_id, xp_applied, gold_applied, reason, actor.actor_id, channel_id, journal_id
                    )
                )
            new_xp, new_gold, new_level = await _balances(conn, guild_id, user_id)
            after = {
                **_balance_snapshot(new_xp, new_gold, new_level),
                **_applied_snapshot(journal_id, xp_applied, gold_applied),
                "requested": {"xp": xp, "gold": gold},
            }
            before = _balance_snapshot(old_xp, old_gold, int(row["level"]))
            await _audit(
                conn, actor, "award.create", (guild_id, user_id, None), reason=reason, before=before, after=after
            )
            return AwardResult(journal_id, xp_applied, gold_applied, new_xp, new_gold, new_level, tx.effects)

        return await self._commit(attempt, guild_id, key, _replayed_award)

    # --- achievement grant -------------------------------------------------------------------------------------------

    async def grant(
        self,
        *,
        guild_id: int,
        user_id: int,
        template_id: int,
        actor: Actor,
        request_id: str,
        reason: str | None = None,
        display_name: str | None = None,
        channel_id: int | None = None,
    ) -> GrantResult:
        """Grant an achievement manually (§12.4): series order is not required, rewards are paid like an automatic earn.

        Refused (GrantRejected, nothing written) when the template is unknown in this guild, inactive, already earned by
        the member, or full. Fullness is decided by the same conditional `earned_count` increment the pipeline uses, so
        concurrent grants can never exceed `max_earners` (§12.3). Badge `source = 'grant'` with `granted_by` = the
        actor; journal `achievement` and ledger `achievement` keyed `grant:<request_id>`; audit `achievement.grant`.
        """
        key = _request_key("grant", request_id, reason, reason_required=False)

        async def attempt(conn: asyncpg.Connection) -> GrantResult:
            found = await conn.fetchrow(_TEMPLATE, template_id, guild_id)
            if found is None:
                raise GrantRejected("unknown")
            if not found["active"]:
                raise GrantRejected("inactive")
            template = TemplateInfo.from_row(found)  # as the database has it now: honours a deactivation
            await conn.execute(_ENSURE_MEMBER, guild_id, user_id, (display_name or str(user_id))[:100])
            await conn.fetchrow(_LOCK_MEMBER, guild_id, user_id)  # member before template: the pipeline's order
            if await conn.fetchval(_HAS_BADGE, guild_id, user_id, template_id):
                raise GrantRejected("already_earned")
            if not await sql.claim_template(conn, guild_id=guild_id, template_id=template_id):
                # Deactivated since the read above, or full (possibly by a concurrent grant that just committed).
                active = await conn.fetchval(_TEMPLATE_ACTIVE, guild_id, template_id)
                raise GrantRejected("max_earners" if active else "inactive")
            tx = Tx(conn, singles=True)
            guild = self._cache.guild(guild_id)
            cause = _cause(self._cache, guild_id, key, channel_id)
            earning = await self._engine.earn(
                tx, guild, user_id, template, cause, key=key, source="grant", granted_by=actor.actor_id
            )
            if earning is None:
                raise _Replay()
            if not earning.recorded:
                raise GrantRejected("already_earned")
            if earning.row is not None:  # rewards changed XP: evaluate automatic achievements again (§12.4)
                await self._engine.after_xp_change(tx, guild, user_id, earning.row, cause)
            new_xp, new_gold, new_level = await _balances(conn, guild_id, user_id)
            after = _badge_snapshot(
                user_id,
                template_id,
                source="grant",
                granted_by=actor.actor_id,
                journal_id=earning.journal_id,
                xp=template.xp_reward,
                gold=template.gold_reward,
            )
            await _audit(conn, actor, "achievement.grant", (guild_id, user_id, template_id), reason=reason, after=after)
            return GrantResult(
                earning.journal_id,
                template.xp_reward,
                template.gold_reward,
                new_xp,
                new_gold,
                new_level,
                tx.effects,
                template_id=template_id,
            )

        return await self._commit(attempt, guild_id, key, _replayed_badge)

    # --- achievement revoke ------------------------------------------------------------------------------------------

    async def revoke(
        self,
        *,
        guild_id: int,
        user_id: int,
        template_id: int,
        actor: Actor,
        request_id: str,
        reason: str,
        reverse_rewards: bool = False,
    ) -> RevokeResult:
        """Take an earned badge away (§12.4): delete it and release its `earned_count` slot.

        With `reverse_rewards` exactly what the badge's earning paid (its journal row's XP and that row's gold ledger
        entry; 0 for an import or a reward-less grant, whatever the template pays today) is subtracted, clamped at 0
        in the database, and the level recomputed (a level-down pays and announces nothing). Every revoke writes a
        `revoke` journal row keyed `revoke:<request_id>` (XP delta = the applied reversal, 0 without one) so a
        repeated request is recognised in both modes; a `revoke` ledger row follows when gold moved. Automatic
        achievements are NOT evaluated here: the only one that could fire is the template just revoked, which §12.4
        leaves to the member's next change. Raises RevokeRejected("not_earned") (nothing written) when the member
        does not have the badge.
        """
        key = _request_key("revoke", request_id, reason, reason_required=True)

        async def attempt(conn: asyncpg.Connection) -> RevokeResult:
            member = await conn.fetchrow(_LOCK_MEMBER, guild_id, user_id)  # member before template
            badge = await conn.fetchrow(_DELETE_BADGE, guild_id, user_id, template_id)
            if badge is None or member is None:
                raise RevokeRejected("not_earned")
            await conn.execute(_RELEASE_TEMPLATE, guild_id, template_id)
            paid = await conn.fetchrow(_PAID, badge["journal_id"], guild_id, user_id)
            paid_xp, paid_gold = (max(int(paid["xp"]), 0), max(int(paid["gold"]), 0)) if paid is not None else (0, 0)
            # A freed slot makes a full template earnable again: every process reloads its templates at COMMIT and
            # forgets that it had found this one full (SPEC §12.3, §12.4).
            await notify_config_raw(conn, "achievement_templates", guild_id)
            tx = Tx(conn, singles=True)
            guild = self._cache.guild(guild_id)
            cause = _cause(self._cache, guild_id, key, None)
            row: Mapping[str, Any] = member
            xp_applied = gold_applied = 0
            if reverse_rewards and (paid_xp or paid_gold):
                updated = await conn.fetchrow(_CLAMPED_ADD, guild_id, user_id, -paid_xp, -paid_gold)
                assert updated is not None
                row = updated
                xp_applied = int(updated["xp"]) - int(updated["old_xp"])
                gold_applied = int(updated["gold"]) - int(updated["old_gold"])
            requested = {"xp": -paid_xp, "gold": -paid_gold}
            journal_id = await _journal_applied(
                conn,
                cause,
                user_id=user_id,
                event_type="revoke",
                xp_applied=xp_applied,
                gold_applied=gold_applied,
                balance=int(row["gold"]),
                details={
                    "template_id": template_id,
                    "reason": reason,
                    "reverse_rewards": reverse_rewards,
                    "requested": requested if reverse_rewards else None,
                    "gold": gold_applied,
                },
                actor=actor,
                note=reason,
            )
            if xp_applied != 0:
                await self._engine.after_xp_change(tx, guild, user_id, row, cause, achievements=False)
            new_xp, new_gold, new_level = await _balances(conn, guild_id, user_id)
            before = _badge_snapshot(
                user_id,
                template_id,
                earned_at=badge["earned_at"].isoformat(),
                source=badge["source"],
                granted_by=badge["granted_by"],
                journal_id=badge["journal_id"],
            )
            after = {"reverse_rewards": reverse_rewards, **_applied_snapshot(journal_id, xp_applied, gold_applied)}
            await _audit(
                conn,
                actor,
                "achievement.revoke",
                (guild_id, user_id, template_id),
                reason=reason,
                before=before,
                after=after,
            )
            return RevokeResult(
                journal_id, xp_applied, gold_applied, new_xp, new_gold, new_level, tx.effects, template_id=template_id
            )

        result = await self._commit(attempt, guild_id, key, _replayed_badge)
        if not result.replayed:
            self._engine.template_freed(template_id)  # committed: this process need not wait for the reload
        return result

    # --- purchase ----------------------------------------------------------------------------------------------------

    async def buy_coffee(self, *, guild_id: int, user_id: int, interaction_id: int) -> PurchaseResult:
        """`/buy-coffee` (§10.3, §27 item 5): one conditional update plus one `purchase` ledger row, or nothing at all.

        The price is `economy.coffee_cost` from the cache. Too little gold or no member row → `ok=False` and no write.
        The ledger row is keyed `buy:<interaction_id>`; a repeated interaction returns the first purchase's result,
        and a concurrent duplicate that charged before seeing the key is rolled back, so nobody pays twice.
        """
        cost = self._cache.settings(guild_id).int("economy.coffee_cost")
        key = f"buy:{int(interaction_id)}"

        async def read_prior(conn: asyncpg.Connection) -> PurchaseResult | None:
            prior = await conn.fetchrow(_PRIOR_PURCHASE, guild_id, key)
            if prior is None:
                return None
            return PurchaseResult(True, -int(prior["delta"]), int(prior["balance_after"]), replayed=True)

        async def attempt() -> PurchaseResult:
            async with self._db.raw_transaction() as conn:
                prior = await read_prior(conn)
                if prior is not None:
                    return prior
                balance = await conn.fetchval(_CHARGE, guild_id, user_id, cost)
                if balance is None:
                    # The update may have waited for a concurrent delivery of this interaction that has committed
                    # (and spent the gold): that purchase is the answer. Otherwise report the balance as it is NOW —
                    # read by a new statement, since the update's snapshot predates whatever it waited for.
                    current = await conn.fetchval(_GOLD, guild_id, user_id)
                    return await read_prior(conn) or PurchaseResult(False, cost, int(current or 0))
                charged = await sql.gold_entry(
                    conn,
                    guild_id=guild_id,
                    user_id=user_id,
                    delta=-cost,
                    balance_after=int(balance),
                    reason="purchase",
                    key=key,
                    actor_id=str(user_id),
                )
                if not charged:  # the same interaction committed meanwhile: undo this charge
                    raise _Replay()
                return PurchaseResult(True, cost, int(balance))

        try:
            return await _retrying(attempt)
        except _Replay:

            async def reread() -> PurchaseResult | None:
                async with self._db.raw_transaction() as conn:
                    return await read_prior(conn)

            prior = await _retrying(reread)
            assert prior is not None  # the conflicting row is committed
            return prior
