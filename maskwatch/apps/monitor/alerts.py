"""Alert rules on closed windows, debounced into episodes, and notifications that never block detection.

A rule fires on a window whose people count is within its bounds and whose ``unmasked_share`` is above its
maximum. Consecutive firing windows of one camera are one *episode*: it is opened (stored, logged,
notified) on the first, its peak share raised on the next ones, and closed (its end stored) on the first
window that does not fire. :class:`RuleEngine` is pure (windows in, events out) so the debounce is tested
on synthetic window sequences; the monitor applies its events to the database and the notifier.

Notifications go through apprise (Slack, Teams, e-mail, Telegram, ``json://`` webhooks…) on a background
thread fed by a queue: a webhook that hangs costs the video loop nothing. A failed delivery is logged and
retried with back-off; what is still undelivered when the monitor stops is logged, not waited for long.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from maskwatch.apps.store import Window
from maskwatch.errors import MaskwatchError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    """Fires when ``min_people <= people <= max_people`` and ``unmasked_share > max_unmasked_share``."""

    name: str
    max_unmasked_share: float
    min_people: int = 1
    max_people: int | None = None

    def fires(self, window: Window) -> bool:
        if window.people < self.min_people:
            return False
        if self.max_people is not None and window.people > self.max_people:
            return False
        return window.unmasked_share > self.max_unmasked_share


# The reference design's two thresholds: a small group tolerates one unmasked person in four, a crowd
# almost none.
DEFAULT_RULES = (
    Rule("small-group", max_unmasked_share=0.25, min_people=1, max_people=5),
    Rule("crowd", max_unmasked_share=0.05, min_people=6),
)


def load_rules(path: str | Path | None) -> tuple[Rule, ...]:
    """Rules from a YAML file (``alerts: [{name, min_people, max_people, max_unmasked_share}]``), or the
    defaults; every mistake in the file is a one-line error before any video is opened."""
    if path is None:
        return DEFAULT_RULES
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise MaskwatchError(f"{path}: cannot read the rules ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise MaskwatchError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    items = doc.get("alerts") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise MaskwatchError(f"{path}: expected a list of rules under 'alerts:'")
    rules, known = [], {"name", "min_people", "max_people", "max_unmasked_share"}
    for i, item in enumerate(items, 1):
        where = f"{path}: rule {i}"
        if not isinstance(item, dict):
            raise MaskwatchError(f"{where}: expected a mapping")
        if unknown := set(item) - known:
            raise MaskwatchError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        if "max_unmasked_share" not in item:
            raise MaskwatchError(f"{where}: needs max_unmasked_share")
        try:
            rule = Rule(
                name=str(item.get("name", f"rule-{i}")),
                max_unmasked_share=float(item["max_unmasked_share"]),
                min_people=int(item.get("min_people", 1)),
                max_people=None if item.get("max_people") is None else int(item["max_people"]),
            )
        except (TypeError, ValueError) as e:
            raise MaskwatchError(f"{where}: {e}") from None
        if rule.max_people is not None and rule.max_people < rule.min_people:
            raise MaskwatchError(f"{where}: max_people {rule.max_people} < min_people {rule.min_people}")
        rules.append(rule)
    if len({r.name for r in rules}) < len(rules):
        raise MaskwatchError(f"{path}: two rules have the same name")
    return tuple(rules)


@dataclass
class Episode:
    camera: str
    rule: str
    start_time: str
    end_time: str  # of the last firing window so far
    peak_unmasked_share: float
    people: int


@dataclass
class AlertEvent:
    """``open``: a new episode (store, log, notify); ``update``: it goes on (raise peak); ``close``: it
    cleared (store its end)."""

    kind: str
    episode: Episode


class RuleEngine:
    """Debounce rules into episodes, per camera; feed windows in time order."""

    def __init__(self, rules: Sequence[Rule] = DEFAULT_RULES) -> None:
        self.rules = tuple(rules)
        self.open: dict[tuple[str, str], Episode] = {}

    def feed(self, window: Window) -> list[AlertEvent]:
        events = []
        for rule in self.rules:
            key = (window.camera, rule.name)
            episode = self.open.get(key)
            if rule.fires(window):
                if episode is None:
                    episode = Episode(
                        window.camera,
                        rule.name,
                        window.start_time,
                        window.end_time,
                        window.unmasked_share,
                        window.people,
                    )
                    self.open[key] = episode
                    events.append(AlertEvent("open", episode))
                else:
                    episode.end_time = window.end_time
                    episode.peak_unmasked_share = max(episode.peak_unmasked_share, window.unmasked_share)
                    episode.people = max(episode.people, window.people)
                    events.append(AlertEvent("update", episode))
            elif episode is not None:
                events.append(AlertEvent("close", self.open.pop(key)))
        return events

    def finish(self, camera: str) -> list[AlertEvent]:
        """The camera's source ended: its open episodes end with its last window."""
        keys = [k for k in self.open if k[0] == camera]
        return [AlertEvent("close", self.open.pop(k)) for k in keys]


def check_notify_urls(urls: Sequence[str]) -> None:
    """Every ``--notify`` URL must be one apprise knows, before any video is opened."""
    import apprise

    for url in urls:
        if not apprise.Apprise().add(url):
            raise MaskwatchError(f"--notify {url}: not a notification URL apprise understands")


class Notifier:
    """Deliver messages to every URL, with retries, on one background thread per URL (a URL that hangs
    delays neither the video loop nor the other URLs); :meth:`send` never blocks."""

    def __init__(
        self, urls: Sequence[str], retries: int = 3, backoff: float = 1.0, grace: float = 2.0
    ) -> None:
        self.urls = list(urls)
        self.retries = retries
        self.backoff = backoff
        self.grace = grace
        self.delivered = self.failed = 0
        self._queues: list[queue.Queue[tuple[str, str] | None]] = [queue.Queue() for _ in self.urls]
        self._threads = [
            threading.Thread(target=self._run, args=(url, q), name="maskwatch-notify", daemon=True)
            for url, q in zip(self.urls, self._queues, strict=True)
        ]
        for t in self._threads:
            t.start()

    def send(self, title: str, body: str) -> None:
        for q in self._queues:
            q.put((title, body))

    def _run(self, url: str, q: queue.Queue[tuple[str, str] | None]) -> None:
        import apprise

        while (item := q.get()) is not None:
            self._deliver(apprise, url, *item)

    def _deliver(self, apprise: Any, url: str, title: str, body: str) -> None:
        delay = self.backoff
        for attempt in range(1, self.retries + 1):
            notifier = apprise.Apprise()
            notifier.add(url)
            try:
                ok = bool(notifier.notify(title=title, body=body))
            except Exception as e:  # a plugin bug must not kill the delivery thread
                log.warning("notification to %s raised %s", _redact(url), e)
                ok = False
            if ok:
                self.delivered += 1
                return
            log.warning("notification to %s failed (attempt %d of %d)", _redact(url), attempt, self.retries)
            if attempt < self.retries:
                time.sleep(delay)
                delay *= 2
        self.failed += 1

    def close(self) -> None:
        """Give pending deliveries ``grace`` seconds in all, then leave them (logged) rather than hold the
        exit: the alerts are in the database either way."""
        for q in self._queues:
            q.put(None)
        deadline = time.monotonic() + self.grace
        for url, t in zip(self.urls, self._threads, strict=True):
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                log.warning("notifications to %s still pending at exit were not delivered", _redact(url))


def _redact(url: str) -> str:
    """A notification URL for the log: scheme and host only (the rest often holds a token)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].rsplit('@', 1)[-1]}/…"
