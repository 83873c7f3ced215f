from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from . import api, me
from .reports import views as reports

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="/login/"), name="logout"),
    path("reports/", reports.overview, name="reports-overview"),
    path("reports/requests/", reports.request_list, name="reports-requests"),
    path("reports/requests/<str:request_id>/", reports.request_detail, name="reports-request"),
    path("reports/sessions/<path:session_id>/", reports.session_detail, name="reports-session"),
    path("live/", reports.live, name="live"),
    path("me/", me.me, name="me"),
    path("me/keys/", me.issue_own_key, name="me-issue-key"),
    path("me/keys/<int:key_id>/revoke/", me.revoke_own_key, name="me-revoke-key"),
    path("me/sessions/<path:session_id>/", me.my_session, name="me-session"),
    path("api/usage/", api.usage_api, name="usage-api"),
    path("api/reports/overview/", api.report_overview, name="api-report-overview"),
    path("api/keys/", api.keys, name="api-keys"),
    path("api/keys/<int:key_id>/revoke/", api.revoke_key, name="api-revoke-key"),
    path("api/budgets/", api.budgets, name="api-budgets"),
    path("favicon.ico", RedirectView.as_view(url="/static/reports/favicon.svg", permanent=True)),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
