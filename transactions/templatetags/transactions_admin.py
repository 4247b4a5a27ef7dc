"""Django's date drill-down, without its DISTINCT scans over the whole table.

Django lists the years, months or days that have rows with SELECT DISTINCT
date_trunc(...), which reads every matching row: seconds on a big table. This tag
runs Django's own drill-down with the choices taken from the first and last date
(two index probes) instead, so a month with no rows at all may be listed too.
Search results get no drill-down.
"""

from datetime import datetime, timedelta
from typing import Any

from django import template
from django.contrib.admin.templatetags.admin_list import date_hierarchy
from django.contrib.admin.templatetags.base import InclusionAdminNode
from django.contrib.admin.views.main import ChangeList
from django.db.models import Max, Min, QuerySet
from django.utils import timezone

register = template.Library()


class _DateRange:
    """Stands in for the changelist's queryset: `datetimes()` from the date range only."""

    def __init__(self, queryset: QuerySet) -> None:
        self.queryset = queryset

    def aggregate(self, **kwargs: Any) -> dict[str, Any]:
        return self.queryset.aggregate(**kwargs)

    def datetimes(self, field_name: str, kind: str) -> list[datetime]:
        bounds = self.queryset.aggregate(first=Min(field_name), last=Max(field_name))
        if bounds["first"] is None:
            return []
        current, last = (timezone.localtime(bounds[k]) for k in ("first", "last"))
        current = _truncate(current, kind)
        choices = []
        while current <= last:
            choices.append(current)
            current = _step(current, kind)
        return choices


def _truncate(value: datetime, kind: str) -> datetime:
    value = value.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind in ("month", "year"):
        value = value.replace(day=1)
    if kind == "year":
        value = value.replace(month=1)
    return value


def _step(value: datetime, kind: str) -> datetime:
    if kind == "day":
        return _truncate(value + timedelta(days=1, hours=2), "day")  # survives DST changes
    if kind == "month":
        return _truncate(value.replace(day=28) + timedelta(days=4), "month")
    return value.replace(year=value.year + 1)


class _ChangeListView:
    def __init__(self, cl: ChangeList) -> None:
        self._cl = cl
        self.queryset = _DateRange(cl.queryset)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cl, name)


def range_date_hierarchy(cl: ChangeList) -> dict[str, Any] | None:
    if cl.query:
        # A search finds a handful of rows; worse, PostgreSQL may answer MIN/MAX over
        # them by walking the whole created_at index backwards.
        return {"show": False}
    return date_hierarchy(_ChangeListView(cl))


@register.tag(name="range_date_hierarchy")
def range_date_hierarchy_tag(parser: template.base.Parser, token: template.base.Token) -> InclusionAdminNode:
    return InclusionAdminNode(
        parser, token, func=range_date_hierarchy, template_name="date_hierarchy.html", takes_context=False
    )
