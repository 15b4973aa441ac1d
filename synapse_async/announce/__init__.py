"""Announcements (SPEC §14): pure embed builders and the throttled, bounded, after-commit announcer."""

from synapse_async.announce.announcer import Announcement, AnnouncementKind, Announcer
from synapse_async.announce.embeds import achievement_embed, award_embed, level_up_embed, mention

__all__ = [
    "Announcement",
    "AnnouncementKind",
    "Announcer",
    "achievement_embed",
    "award_embed",
    "level_up_embed",
    "mention",
]
