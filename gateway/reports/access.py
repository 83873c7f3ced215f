"""Who may see spend: the one place to change it. Everyone's spend needs staff status and
the explicit `gateway.view_spend` permission (a group can carry it; superusers have it):
a staff user who may only edit providers does not see what every developer spends."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

VIEW_SPEND = "gateway.view_spend"


def can_view_spend(user) -> bool:
    """Everyone's usage and spend: reports, live view, the management API's reports."""
    return bool(user and user.is_active and user.is_staff and user.has_perm(VIEW_SPEND))


def spend_viewer_required(view):
    """Anonymous → the login page; logged in without the right → 403."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not can_view_spend(request.user):
            raise PermissionDenied("You may not view spend reports.")
        return view(request, *args, **kwargs)

    return wrapper
