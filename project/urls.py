from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # Log in and out with the app's registration/ templates.
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("streaming.urls")),
]
