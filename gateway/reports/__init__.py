"""Spend reports (staff), the live view and the developers' own page.

queries.py  rollup-aware aggregation (every report number)
filters.py  the filter bar (query string ⇄ Filters)
views.py    overview, request list, request page, session page, CSV exports
access.py   can_view_spend(): who sees everyone's spend
export.py   CSV with formula injection neutralised
"""
