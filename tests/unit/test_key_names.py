"""A key's name fits every column that records who did what, whatever the key's role."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from tracker.db import models
from tracker.services.keys import NAME_MAX, Role


def test_every_actor_column_holds_the_longest_role_and_name() -> None:
    actor_columns = [
        (model.__name__, name, field.max_length)
        for model in vars(models).values()
        if isinstance(model, type) and issubclass(model, Model) and model is not Model
        for name, field in model._meta.fields_map.items()
        if isinstance(field, fields.CharField) and (name == "actor" or name.endswith("_by"))
    ]
    longest = max(len(role.value) for role in Role) + 1 + NAME_MAX

    assert len(actor_columns) >= 6, actor_columns
    assert [column for column in actor_columns if column[2] < longest] == []
