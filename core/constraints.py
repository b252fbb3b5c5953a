"""CHECK constraints that validate in Python: the same rule in the database and in forms, without a query per row.

Django validates a CheckConstraint in a form (and in ``full_clean``) by running a query with the row's values,
inside a savepoint when a transaction is open: about 2 ms a constraint. A catalog load validates hundreds of rows
with five constraints each, so that was most of its time. :class:`Check` evaluates the simple conditions our
models use (comparisons with a value or another field, ``isnull``, AND/OR/NOT) on the instance itself, with SQL's
rule that an unknown (NULL) result passes, and falls back to Django's query for anything else. The database
constraint it creates is Django's own, unchanged.
"""

from __future__ import annotations

import operator

from django.core.exceptions import ValidationError
from django.db.models import CheckConstraint, F, Q
from django.db.models.constants import LOOKUP_SEP

_COMPARE = {
    "exact": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


class Unsupported(Exception):
    """A condition this evaluator does not handle; the caller asks the database instead."""


def _value(instance, name: str, exclude: set[str]):
    if name in exclude:
        raise LookupError(name)  # Django skips a constraint over an excluded field; so do we
    field = instance._meta.get_field(name)
    if field.is_relation:
        raise Unsupported(name)
    return getattr(instance, field.attname)


def _leaf(instance, key: str, wanted, exclude: set[str]) -> bool | None:
    name, _, lookup = key.partition(LOOKUP_SEP)
    lookup = lookup or "exact"
    if LOOKUP_SEP in lookup or (lookup not in _COMPARE and lookup != "isnull"):
        raise Unsupported(key)
    left = _value(instance, name, exclude)
    if lookup == "isnull":
        return (left is None) == bool(wanted)
    if isinstance(wanted, F):
        wanted = _value(instance, wanted.name, exclude)
    elif hasattr(wanted, "resolve_expression"):
        raise Unsupported(key)
    if left is None or wanted is None:
        return None  # SQL: a comparison with NULL is unknown
    return _COMPARE[lookup](left, wanted)


def evaluate(condition: Q, instance, exclude: set[str] | None = None) -> bool | None:
    """Returns the condition's three-valued truth for the instance: True, False, or None (unknown, as SQL NULL).

    Raises Unsupported for lookups or expressions it does not evaluate, LookupError when a field is excluded.
    """
    exclude = exclude or set()
    results = []
    for child in condition.children:
        if isinstance(child, Q):
            results.append(evaluate(child, instance, exclude))
        else:
            results.append(_leaf(instance, child[0], child[1], exclude))
    if condition.connector == Q.AND:
        result = False if False in results else (None if None in results else True)
    else:
        result = True if True in results else (None if None in results else False)
    if condition.negated and result is not None:
        result = not result
    return result


class Check(CheckConstraint):
    """A CheckConstraint whose validation runs in Python when it can (migrations see Django's own class)."""

    def validate(self, model, instance, exclude=None, using=None):
        try:
            verdict = evaluate(self.condition, instance, set(exclude or ()))
        except LookupError:
            return
        except Unsupported:
            return super().validate(model, instance, exclude=exclude, **({"using": using} if using else {}))
        if verdict is False:
            raise ValidationError(self.get_violation_error_message(), code=self.violation_error_code)

    def deconstruct(self):
        _, args, kwargs = super().deconstruct()
        return "django.db.models.CheckConstraint", args, kwargs
