from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from .reports import spend_report, usage_api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("reports/", spend_report, name="spend-report"),
    path("api/usage/", usage_api, name="usage-api"),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
