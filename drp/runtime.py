"""Everything a command or a flow needs, built once from the settings: the engine, the
protocol, the calendar, the taxonomy, and a factory for the service layer.

The calendar is the bank holidays plus the council's closure days, which live in the database
and may be added while a process runs (`drp calendar close` beside a running web app): so it
is read where it is used, one small query (`calendar` on its own connection, `calendar_for`
in a unit of work's session), and the calendar built for a set of days is kept while the days
stay the same."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlmodel import Session, col, select

from . import db, mail
from .alerts import AlertService
from .alerts.closures import closure_days
from .calendar import WorkingCalendar, default_calendar
from .classifier import (
    Example,
    ModelCache,
    Suggestion,
    ThemeClassifier,
    clean,
    corpus_path,
    load_corpus,
)
from .clock import Clock
from .errors import ConfigError
from .ladder.protocol import Protocol, protocol_from
from .models import Alert
from .notify import Notifier
from .settings import Settings, get_settings
from .themes import Taxonomy, load_taxonomy


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    protocol: Protocol
    holidays: WorkingCalendar  # the bank holidays alone
    taxonomy: Taxonomy
    _classifier: ThemeClassifier | None = field(default=None, repr=False)
    warnings: list[str] = field(default_factory=list)
    _closures: tuple[tuple[tuple[date, str], ...], WorkingCalendar] | None = field(
        default=None, repr=False)

    def calendar_for(self, session: Session) -> WorkingCalendar:
        """Working days as they stand in this session: bank holidays and closure days."""
        days = tuple(sorted(closure_days(session).items()))
        if not days:
            return self.holidays
        if self._closures is None or self._closures[0] != days:
            self._closures = (days, self.holidays.with_days(dict(days)))
        return self._closures[1]

    @property
    def calendar(self) -> WorkingCalendar:
        """Working days as they stand now (read on a connection of its own; before `drp init`
        the bank holidays alone)."""
        try:
            with Session(self.engine) as session:
                return self.calendar_for(session)
        except (OperationalError, ProgrammingError):  # no database, or no tables yet
            return self.holidays

    def service(self, session: Session, clock: Clock, notifier: Notifier | None = None,
                calendar: WorkingCalendar | None = None) -> AlertService:
        """The service layer on `session`; `calendar`: one the caller read already (a run of
        many units of work reads it once), else read in the session."""
        return AlertService(
            session, protocol=self.protocol,
            calendar=calendar if calendar is not None else self.calendar_for(session),
            clock=clock, tz=self.settings.tz, taxonomy=self.taxonomy, notifier=notifier,
            suggester=self.suggest,
        )

    def corpus(self) -> list[Example]:
        return load_corpus(corpus_path(self.settings.themes, self.taxonomy), self.taxonomy)

    def own_labels(self) -> list[Example]:
        """Themes IROs have chosen or confirmed in this council's database."""
        try:
            with Session(self.engine) as session:
                rows = session.exec(select(Alert).where(col(Alert.theme_confirmed))).all()
        except (OperationalError, ProgrammingError):  # no database yet
            return []
        keys = set(self.taxonomy.keys)
        return [Example(clean(" ".join(t for t in (a.summary, a.detail, a.impact) if t)),
                        a.theme) for a in rows if a.theme in keys]

    def classifier(self, retrain: bool = False) -> ThemeClassifier:
        """Trained on first use (about a second): the shipped corpus, plus the council's own
        confirmed themes once there are enough of them."""
        if self._classifier is None or retrain:
            corpus, own = self.corpus(), self.own_labels()
            cache = ModelCache(self.settings)
            key = cache.key(self.taxonomy, corpus, own)
            found = None if retrain else cache.load(key)
            if found is None:
                found = ThemeClassifier.train(self.taxonomy, corpus, own)
                cache.save(key, found)
            self._classifier = found
        return self._classifier

    def suggest(self, texts: list[str]) -> list[Suggestion]:
        """Suggestions for new alerts; a classifier that cannot be built never stops an alert
        being raised (the problem is reported, and the IRO picks the theme)."""
        try:
            return self.classifier().suggest_many(texts)
        except ConfigError as exc:
            self.warnings.append(f"no theme suggested: {exc.message}")
            return []

    def notifier(self) -> Notifier:
        return mail.notifier(self.settings)


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "DRP_" + str(first["loc"][0]).upper() if first["loc"] else "a DRP_ setting"
        raise ConfigError(f"{name}: {first['msg'].removeprefix('Value error, ')}") from None


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    settings = load_settings()
    return Runtime(
        settings=settings,
        engine=db.engine_for(settings.database_url),
        protocol=protocol_from(settings.protocol),
        holidays=default_calendar(),
        taxonomy=load_taxonomy(settings.themes),
    )
