"""Writing thousands of rows at once: one prepared statement run over every row (the database's executemany).

bulk_create() and bulk_update() compile every value of every row into SQL in Python; bulk_update() also builds a
CASE expression per field and row. For an import of a few thousand catalog rows that compiling is most of the
time. These helpers prepare each value the way a save would (``pre_save``, ``get_db_prep_save``) and hand the
rows to the driver as parameters of a single statement. They send no signals and read no ids back.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connections, models, router


def insert_many(objs: Sequence[models.Model]) -> None:
    """Inserts the unsaved rows, all of one model, without their ids; returns nothing.

    The database assigns the ids; a caller that needs them reads them back by a unique field.
    """
    if not objs:
        return
    model = type(objs[0])
    connection = connections[router.db_for_write(model)]
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"
    params = [[f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields] for obj in objs]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def update_many(objs: Sequence[models.Model], names: Sequence[str]) -> None:
    """Writes the named fields of every saved row, all of one model, by primary key; returns nothing."""
    if not objs:
        return
    model = type(objs[0])
    connection = connections[router.db_for_write(model)]
    fields = [model._meta.get_field(name) for name in names]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    sql = f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {quote(model._meta.pk.column)} = %s"
    params = [[f.get_db_prep_save(f.pre_save(obj, False), connection) for f in fields] + [obj.pk] for obj in objs]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
