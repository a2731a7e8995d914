"""The cost report's pages in the admin, added to the usage admin through ``get_urls``: the whole site's
report and one user's drill-down, both behind ``admin_view`` and the *view usage* permission."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from streaming import cost_report
from streaming.admin_display import CSS
from streaming.cost_period import EARLIEST, LATEST, SHORTCUTS, period_form


class CostReportViews:
    """Mixed into the usage admin: ``report/`` and ``report/user/<id>/``."""

    admin_site: Any
    opts: Any

    def report_urls(self) -> list[URLPattern]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("report/", wrap(self.report_view), name=f"{prefix}_report"),
            path("report/user/<str:user_id>/", wrap(self.user_report_view), name=f"{prefix}_user_report"),
            path("export/", wrap(self.export_view), name=f"{prefix}_export"),  # type: ignore[attr-defined]
        ]

    def _url(self, name: str, *args: Any) -> str:
        return reverse(f"{self.admin_site.name}:streaming_{name}", args=args)

    def _page(self, request: HttpRequest, template: str, title: str, **context: Any) -> TemplateResponse:
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        form = context["form"]
        return TemplateResponse(
            request,
            f"admin/streaming/usage/{template}",
            {
                **self.admin_site.each_context(request),
                "title": title,
                "opts": self.opts,
                "css": CSS,
                "changelist_url": self._url("usage_changelist"),
                "report_url": self._url("usage_report"),
                "shortcuts": SHORTCUTS,
                "earliest": EARLIEST,
                "latest": LATEST,
                "period": form.period(),
                **context,
            },
        )

    def report_view(self, request: HttpRequest) -> HttpResponse:
        form = period_form(request.GET)
        figures = cost_report.report(
            form.period(), self._url("usage_changelist"), lambda pk: self._url("usage_user_report", pk)
        )
        return self._page(request, "cost_report.html", "Cost report", form=form, **figures)

    def user_report_view(self, request: HttpRequest, user_id: str) -> HttpResponse:
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        try:
            person = get_user_model()._default_manager.get(pk=user_id)
        except (get_user_model().DoesNotExist, ValueError, ValidationError):
            raise Http404("No such user.") from None
        form = period_form(request.GET)
        figures = cost_report.user_report(
            form.period(),
            person.pk,
            self._url("usage_changelist"),
            lambda pk: self._url("conversation_change", pk),
        )
        title = f"Cost report: {person.get_username()}"
        return self._page(request, "user_report.html", title, form=form, person=person, **figures)
