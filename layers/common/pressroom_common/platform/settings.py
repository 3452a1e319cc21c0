"""Environment configuration every function shares, parsed once per cold start into pydantic
settings: the store, the reader key, the HTTP API's stage and CORS.

Templates set these variables on every function; the local gateway passes the same ones. Field
names map to upper-case environment variables (`cors_allowed_origins` → `CORS_ALLOWED_ORIGINS`).
Each function's settings compose these with the experiment's (`experiment.settings`): see
`generation.settings.GenerateSettings` and `feedback.settings.FeedbackSettings`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class StoreSettings(BaseSettings):
    """`DATABASE_URL`: one of the forms `pressroom_common.feedback.store.engines` documents."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    database_url: str = Field(min_length=1)


class ReaderKeySettings(BaseSettings):
    """Where the reader key lives: `READER_KEY_SECRET_ID` (a Secrets Manager secret, on AWS) or
    `READER_KEY_FILE` (a file, locally). Exactly one is set."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    reader_key_secret_id: str = ""
    reader_key_file: str = ""

    @model_validator(mode="after")
    def _one_source(self) -> ReaderKeySettings:
        if bool(self.reader_key_secret_id) == bool(self.reader_key_file):
            raise ValueError(
                "set exactly one of READER_KEY_SECRET_ID (Secrets Manager) and READER_KEY_FILE"
            )
        return self


class ApiSettings(BaseSettings):
    """What every HTTP function needs: its stage and the origins allowed by CORS."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    stage: str = "local"
    # Comma-separated; empty means same-origin only (the site and the API share one origin).
    cors_allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("cors_allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(origin.strip() for origin in value.split(",") if origin.strip())
        return value
