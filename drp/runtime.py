"""Everything a command or a flow needs, built once from the settings: the engine, the
protocol, the calendar, the taxonomy, and a factory for the service layer."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from . import db, mail
from .alerts import AlertService
from .calendar import WorkingCalendar, default_calendar
from .clock import Clock
from .errors import ConfigError
from .notify import Notifier
from .protocol import Protocol, protocol_from
from .settings import Settings, get_settings
from .themes import Taxonomy, load_taxonomy


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    protocol: Protocol
    calendar: WorkingCalendar
    taxonomy: Taxonomy

    def service(self, session: Session, clock: Clock,
                notifier: Notifier | None = None) -> AlertService:
        return AlertService(
            session, protocol=self.protocol, calendar=self.calendar, clock=clock,
            tz=self.settings.tz, taxonomy=self.taxonomy, notifier=notifier,
        )

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
        calendar=default_calendar(),
        taxonomy=load_taxonomy(settings.themes),
    )
