"""The API's blueprint: flask-smorest's, with arguments checked for text that can be stored.

Every JSON body and query string a view takes is refused with 422 (the field named)
when a string in it holds U+0000 or an unpaired surrogate (``ihook.storable``); before,
such a value reached the database and failed there as a 500 (PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flask_smorest
from marshmallow import Schema, ValidationError
from webargs.flaskparser import FlaskParser

from ihook.storable import REASON, storable, unstorable_at


class StorableTextParser(FlaskParser):
    """webargs' Flask parser that refuses text no database column can hold."""

    def pre_load(
        self, location_data: Mapping, *, schema: Schema, req: Any, location: str
    ) -> Mapping:
        where = _unstorable(location_data, req, location)
        if where is not None:
            raise ValidationError({where or "<body>": [f"this value {REASON}"]})
        return super().pre_load(location_data, schema=schema, req=req, location=location)


def _unstorable(location_data: Any, req: Any, location: str) -> str | None:
    if location == "query":
        for name, values in req.args.lists():
            if not storable(name) or not all(storable(value) for value in values):
                return str(name)
        return None
    if location == "json":
        return unstorable_at(location_data)
    return None


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's blueprint whose arguments go through ``StorableTextParser``."""

    ARGUMENTS_PARSER = StorableTextParser()
