"""Seeded random member activity for the sandbox (`SANDBOX_ACTIVITY_PER_MINUTE`, §3.5).

Members post messages (sometimes replies, links, code, emoji or attachments), react to recent messages and move
between voice channels at a Poisson rate, so a local run shows the bot's reward pipeline working without anyone
typing. The same seed produces the same sequence of actions (timing aside), which keeps demo data reproducible.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from synapse_async.sandbox.driver import SimulatorDriver
from synapse_async.sandbox.world import ChannelType

_LOGGER = logging.getLogger("synapse_async.sandbox.community")

_WORDS = (
    "hello", "anyone", "tried", "the", "new", "build", "today", "it", "works", "great", "thanks", "for", "help",
    "looks", "nice", "what", "do", "you", "think", "about", "this", "idea", "maybe", "later", "sounds", "good",
)  # fmt: skip
_EMOJI = ("👍", "🎉", "❤️", "😂", "🔥", "👀", "👩‍💻", "🇫🇷")


class CommunityActivity:
    """Runs random activity as an asyncio task at `per_minute` events per minute."""

    def __init__(self, driver: SimulatorDriver, *, per_minute: float, seed: int = 42) -> None:
        self.driver = driver
        self.per_minute = per_minute
        self.rng = random.Random(seed)
        self.actions = 0
        self._task: asyncio.Task[None] | None = None
        self._recent: list[int] = []

    def start(self) -> None:
        if self.per_minute <= 0:
            raise ValueError("per_minute must be > 0 to start activity")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sandbox community activity")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        rate = self.per_minute / 60.0
        while True:
            await asyncio.sleep(self.rng.expovariate(rate))
            try:
                await self.step()
            except (LookupError, ValueError) as exc:
                # The world changed under us (a member left, a channel was deleted): skip this action.
                _LOGGER.debug("community action skipped: %s", exc)

    async def step(self) -> None:
        """Perform one random action."""
        driver = self.driver
        guild = driver.guild()
        members = driver.member_ids(guild.id)
        if not members:
            return
        user = self.rng.choice(members)
        roll = self.rng.random()
        self.actions += 1
        if roll < 0.6 or not self._recent:
            await self._message(user)
        elif roll < 0.85:
            await driver.react(user, self.rng.choice(self._recent), self.rng.choice(_EMOJI))
        else:
            voice = [c.id for c in guild.channels.values() if c.type.is_voice]
            target = self.rng.choice([*voice, None]) if voice else None
            await driver.voice(user, target, self_mute=self.rng.random() < 0.2, guild=guild.id)

    async def _message(self, user: int) -> None:
        guild = self.driver.guild()
        texts = [c.id for c in guild.channels.values() if c.type in (ChannelType.TEXT, ChannelType.ANNOUNCEMENT)]
        if not texts:
            return
        words = [self.rng.choice(_WORDS) for _ in range(self.rng.randint(1, 14))]
        extra = self.rng.random()
        if extra < 0.1:
            words.append("https://example.com/" + self.rng.choice(_WORDS))
        elif extra < 0.15:
            words.append("```py\nprint('hi')\n```")
        elif extra < 0.3:
            words.append(self.rng.choice(_EMOJI))
        reply_to = self.rng.choice(self._recent) if self._recent and self.rng.random() < 0.15 else None
        channel = self.rng.choice(texts)
        if reply_to is not None:
            channel = self.driver.world.message(reply_to).channel_id
        message_id = await self.driver.message(
            user,
            channel,
            " ".join(words),
            attachments=1 if self.rng.random() < 0.05 else 0,
            reply_to=reply_to,
        )
        self._recent = [*self._recent[-49:], int(message_id)]
